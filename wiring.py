"""The composition root: builds the platform, storage, queue and job runtime from settings,
and closes them again. The API (app.py), `terrakube worker` and `terrakube up` all use it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from domain.access_cache import AccessCache
from domain.authn import Authenticator, OidcConfig
from domain.crypto import SecretBox
from domain.db import Database
from domain.jobs import is_terminal
from domain.live import Broker, JobEvent
from domain.services import Platform
from domain.tokens import TokenSigner
from jwks import JwksKeySource
from settings import ConfigurationError, Mode, Settings
from storage import BlobStore, StorageError
from storage.factory import open_store as _open_store
from workers.broker import MemoryBroker, RedisBroker
from workers.keys import queue_name
from workers.queue import ArqQueue, InProcessQueue, JobQueue
from workers.runtime import Runtime

log = logging.getLogger("terrakube.wiring")


@dataclass
class Services:
    """What the lifespan opened; routes find it on ``app.state.services``."""

    settings: Settings
    platform: Platform
    authenticator: Authenticator
    store: BlobStore
    queue: JobQueue
    keys: JwksKeySource | None
    runtime: Runtime | None = None
    background: list[asyncio.Task[None]] = field(default_factory=list)
    broker: MemoryBroker | RedisBroker | None = None


def open_store(settings: Settings) -> BlobStore:
    try:
        return _open_store(settings)
    except StorageError as exc:
        raise ConfigurationError(str(exc)) from None


async def verify_storage(settings: Settings) -> None:
    """Open, check and close the configured store: for commands that must fail before serving."""
    store = open_store(settings)
    await check_store(store)
    await store.close()


async def check_store(store: BlobStore) -> None:
    """Startup check: the store must be reachable and writable; a failure names the setting."""
    try:
        await store.check()
    except StorageError as exc:
        await store.close()
        raise ConfigurationError(f"storage is not usable: {exc}") from None


def api_url(settings: Settings) -> str:
    """Where executors reach the API (state backend, registry)."""
    return (settings.public_url or "http://127.0.0.1:8080").rstrip("/")


async def open_platform(settings: Settings) -> Platform:
    if not settings.secret_key:
        raise ConfigurationError("TERRAKUBE_SECRET_KEY is not set")
    store = open_store(settings)
    await check_store(store)
    return Platform(
        db=Database(settings.effective_database_url, pool_size=settings.database_pool_size),
        box=SecretBox(settings.secret_key),
        signer=TokenSigner(settings.secret_key),
        admin_group=settings.admin_group,
        access_token_max_days=settings.access_token_max_days,
        store=store,
        allow_file_sources=settings.file_sources_allowed,
    )


def _authenticator(settings: Settings, platform: Platform) -> tuple[Authenticator, JwksKeySource | None]:
    if not settings.oidc_issuer:
        return Authenticator(platform), None
    if not settings.oidc_audience:
        raise ConfigurationError("TERRAKUBE_OIDC_AUDIENCE is required when TERRAKUBE_OIDC_ISSUER is set")
    oidc = OidcConfig(settings.oidc_issuer, settings.oidc_audience, settings.oidc_groups_claim)
    keys = JwksKeySource(
        settings.oidc_issuer, jwks_url=settings.oidc_jwks_url, cache_seconds=settings.oidc_jwks_cache_seconds
    )
    return Authenticator(platform, oidc, keys), keys


async def open_services(settings: Settings, *, run_workers: bool | None = None) -> Services:
    """The API's services. In embedded mode the same process also runs the job engine
    (an in-process queue and a periodic sweep); in production the API only enqueues."""
    platform = await open_platform(settings)
    authenticator, keys = _authenticator(settings, platform)
    embedded = settings.mode is Mode.embedded if run_workers is None else run_workers
    queue: JobQueue
    broker: MemoryBroker | RedisBroker
    if embedded:
        queue = InProcessQueue(concurrency=settings.worker_concurrency + 4)
        broker = MemoryBroker()
    else:
        queue = await ArqQueue.connect(settings.redis_url, queue_name(settings.redis_prefix))
        broker = RedisBroker.connect(settings.redis_url, settings.redis_prefix)
    runtime = _runtime(settings, platform, queue, broker)
    # Off until the broker can tell this process about changes made by the others.
    cache = platform.access_cache = AccessCache(settings.access_cache_seconds, live=False)
    services = Services(settings, platform, authenticator, platform.blobs, queue, keys, runtime, broker=broker)
    services.background.append(
        asyncio.create_task(broker.watch_access(cache.set_live, cache.invalidate), name="access-changes")
    )
    if isinstance(queue, InProcessQueue):
        queue.context["runtime"] = runtime
        services.background.append(asyncio.create_task(_sweeper(runtime), name="sweeper"))
    return services


def _runtime(settings: Settings, platform: Platform, queue: JobQueue, broker: MemoryBroker | RedisBroker) -> Runtime:
    """The job runtime, and what a commit tells the others: queue effects, job events, access changes."""
    runtime = Runtime(platform=platform, settings=settings, queue=queue, api_url=api_url(settings), broker=broker)
    platform.dispatch = runtime.dispatch
    platform.db.on_events = _event_publisher(broker)
    platform.db.on_access_changed = broker.access_changed
    return runtime


def _event_publisher(broker: Broker) -> Callable[[list[JobEvent]], Awaitable[None]]:
    async def publish(events: list[JobEvent]) -> None:
        await broker.publish(events)
        for event in events:
            if event.step_id is None and is_terminal(event.job_status):
                await broker.job_ended(event.job_id)

    return publish


async def _sweeper(runtime: Runtime) -> None:
    from workers.engine import sweep

    while True:
        try:
            await sweep({"runtime": runtime})
        except Exception:
            log.exception("sweep failed")
        await asyncio.sleep(runtime.settings.sweep_seconds)


async def close_services(services: Services) -> None:
    for task in services.background:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await services.queue.close()
    if services.broker is not None:
        await services.broker.close()
    await services.store.close()
    if services.keys is not None:
        await services.keys.aclose()
    await services.platform.db.dispose()


async def open_runtime(settings: Settings) -> tuple[Runtime, Callable[[], Awaitable[None]]]:
    """For `terrakube worker`: the platform plus an arq queue to enqueue follow-up work."""
    platform = await open_platform(settings)
    queue = await ArqQueue.connect(settings.redis_url, queue_name(settings.redis_prefix))
    broker = RedisBroker.connect(settings.redis_url, settings.redis_prefix)
    runtime = _runtime(settings, platform, queue, broker)

    async def close() -> None:
        await queue.close()
        await broker.close()
        await platform.blobs.close()
        await platform.db.dispose()

    return runtime, close
