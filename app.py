"""The Starlette app factory. The lifespan opens (and closes) every engine, pool and client."""

from __future__ import annotations

import gc
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from graph.asgi import REQUEST_ID_KEY, GraphQLEndpoint
from graph.ide import ide_assets_mount
from graph.schema import schema
from registry.configuration import configuration_routes
from registry.discovery import registry_routes
from registry.state_backend import state_routes
from settings import Mode, Settings, load_settings
from wiring import Services, close_services, open_runtime, open_services

__all__ = ["Services", "close_services", "create_app", "open_runtime", "open_services"]

log = logging.getLogger("terrakube.app")
VERSION = "0.1.0"


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
            self._endpoint = GraphQLEndpoint(
                schema, services.platform, services.authenticator, services.broker,
                allowed_origins=services.settings.allowed_origins,
            )
        await self._endpoint(scope, receive, send)


def create_app(settings: Settings) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = await open_services(settings)
        app.state.services = services
        # Everything alive now lives as long as the process: keep it out of every future full
        # collection (measured: the largest cause of p99 latency of big GraphQL responses).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await close_services(services)

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/graphql", LazyGraphQL(), methods=["GET", "POST"]),
            WebSocketRoute("/graphql", LazyGraphQL()),
            ide_assets_mount(),
            *state_routes(),
            *configuration_routes(),
            *registry_routes(),
        ],
        lifespan=lifespan,
    )
    app.add_middleware(RequestId)
    return app


def production_app() -> Starlette:
    """What each process of `terrakube serve --workers N` runs (settings from the environment)."""
    return create_app(load_settings(mode=Mode.production))
