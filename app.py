"""The Starlette app factory. The lifespan opens (and closes) every engine, pool and client."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from domain.authn import Authenticator, OidcConfig
from domain.crypto import SecretBox
from domain.db import Database
from domain.services import Platform
from domain.tokens import TokenSigner
from graph.asgi import REQUEST_ID_KEY, GraphQLEndpoint
from graph.schema import schema
from jwks import JwksKeySource
from settings import ConfigurationError, Mode, Settings, StorageBackend
from storage import BlobStore, LocalBlobStore
from workers.keys import queue_name
from workers.queue import ArqQueue, InProcessQueue, JobQueue

log = logging.getLogger("terrakube.app")
VERSION = "0.1.0"


@dataclass
class Services:
    """What the lifespan opened; routes find it on ``app.state.services``."""

    settings: Settings
    platform: Platform
    authenticator: Authenticator
    store: BlobStore
    queue: JobQueue
    keys: JwksKeySource | None


def open_store(settings: Settings) -> BlobStore:
    if settings.storage_backend is not StorageBackend.local:
        raise ConfigurationError(
            f"TERRAKUBE_STORAGE_BACKEND={settings.storage_backend.value} is not available yet; use 'local'"
        )
    return LocalBlobStore(settings.effective_storage_path)


async def open_services(settings: Settings) -> Services:
    if not settings.secret_key:
        raise ConfigurationError("TERRAKUBE_SECRET_KEY is not set")
    db = Database(settings.effective_database_url, pool_size=settings.database_pool_size)
    platform = Platform(
        db=db,
        box=SecretBox(settings.secret_key),
        signer=TokenSigner(settings.secret_key),
        admin_group=settings.admin_group,
        access_token_max_days=settings.access_token_max_days,
    )
    keys = None
    oidc = None
    if settings.oidc_issuer:
        if not settings.oidc_audience:
            raise ConfigurationError("TERRAKUBE_OIDC_AUDIENCE is required when TERRAKUBE_OIDC_ISSUER is set")
        oidc = OidcConfig(settings.oidc_issuer, settings.oidc_audience, settings.oidc_groups_claim)
        keys = JwksKeySource(
            settings.oidc_issuer, jwks_url=settings.oidc_jwks_url, cache_seconds=settings.oidc_jwks_cache_seconds
        )
    store = open_store(settings)
    await store.check()
    queue: JobQueue
    if settings.mode is Mode.embedded:
        queue = InProcessQueue(concurrency=settings.worker_concurrency)
    else:
        queue = await ArqQueue.connect(settings.redis_url, queue_name(settings.redis_prefix))
    return Services(settings, platform, Authenticator(platform, oidc, keys), store, queue, keys)


async def close_services(services: Services) -> None:
    await services.queue.close()
    await services.store.close()
    if services.keys is not None:
        await services.keys.aclose()
    await services.platform.db.dispose()


async def healthz(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    try:
        await services.platform.db.ping()
    except Exception as exc:  # any driver error means "not ready"
        log.warning("health check: database unreachable: %s", type(exc).__name__)
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok", "version": VERSION, "mode": services.settings.mode})


class RequestId:
    """Gives every HTTP request an id (or keeps the caller's), echoed in ``X-Request-ID``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex
        scope[REQUEST_ID_KEY] = request_id

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        await self.app(scope, receive, send_with_id)


class LazyGraphQL:
    """Built on the first request, once the lifespan has opened the services."""

    def __init__(self) -> None:
        self._endpoint: GraphQLEndpoint | None = None

    # Starlette treats a non-function endpoint as a raw ASGI app.

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._endpoint is None:
            services: Services = scope["app"].state.services
            self._endpoint = GraphQLEndpoint(schema, services.platform, services.authenticator)
        await self._endpoint(scope, receive, send)


def create_app(settings: Settings) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = await open_services(settings)
        app.state.services = services
        try:
            yield
        finally:
            await close_services(services)

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/graphql", LazyGraphQL(), methods=["GET", "POST"]),
            WebSocketRoute("/graphql", LazyGraphQL()),
        ],
        lifespan=lifespan,
    )
    app.add_middleware(RequestId)
    return app
