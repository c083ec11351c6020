"""The composition root: builds the platform, storage, queue and job runtime from settings,
and closes them again. The API (app.py), `terrakube worker` and `terrakube up` all use it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from domain.authn import Authenticator, OidcConfig
from domain.crypto import SecretBox
from domain.db import Database
from domain.services import Platform
from domain.tokens import TokenSigner
from jwks import JwksKeySource
from settings import ConfigurationError, Mode, Settings, StorageBackend
from storage import BlobStore, LocalBlobStore
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


def open_store(settings: Settings) -> BlobStore:
    if settings.storage_backend is not StorageBackend.local:
        raise ConfigurationError(
            f"TERRAKUBE_STORAGE_BACKEND={settings.storage_backend.value} is not available yet; use 'local'"
        )
    return LocalBlobStore(settings.effective_storage_path)


def api_url(settings: Settings) -> str:
    """Where executors reach the API (state backend, registry)."""
    return (settings.public_url or "http://127.0.0.1:8080").rstrip("/")


async def open_platform(settings: Settings) -> Platform:
    if not settings.secret_key:
        raise ConfigurationError("TERRAKUBE_SECRET_KEY is not set")
    store = open_store(settings)
    await store.check()
    return Platform(
        db=Database(settings.effective_database_url, pool_size=settings.database_pool_size),
        box=SecretBox(settings.secret_key),
        signer=TokenSigner(settings.secret_key),
        admin_group=settings.admin_group,
        access_token_max_days=settings.access_token_max_days,
        store=store,
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
    if embedded:
        queue = InProcessQueue(concurrency=settings.worker_concurrency + 4)
    else:
        queue = await ArqQueue.connect(settings.redis_url, queue_name(settings.redis_prefix))
    runtime = Runtime(platform=platform, settings=settings, queue=queue, api_url=api_url(settings))
    platform.dispatch = runtime.dispatch
    services = Services(settings, platform, authenticator, platform.blobs, queue, keys, runtime)
    if isinstance(queue, InProcessQueue):
        queue.context["runtime"] = runtime
        services.background.append(asyncio.create_task(_sweeper(runtime), name="sweeper"))
    return services


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
    await services.store.close()
    if services.keys is not None:
        await services.keys.aclose()
    await services.platform.db.dispose()


async def open_runtime(settings: Settings) -> tuple[Runtime, Callable[[], Awaitable[None]]]:
    """For `terrakube worker`: the platform plus an arq queue to enqueue follow-up work."""
    platform = await open_platform(settings)
    queue = await ArqQueue.connect(settings.redis_url, queue_name(settings.redis_prefix))
    runtime = Runtime(platform=platform, settings=settings, queue=queue, api_url=api_url(settings))
    platform.dispatch = runtime.dispatch

    async def close() -> None:
        await queue.close()
        await platform.blobs.close()
        await platform.db.dispose()

    return runtime, close
