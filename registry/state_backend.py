"""Terraform's ``http`` state backend.

    GET    /tfstate/{org}/{workspace}                    current state (204 when there is none)
    POST   /tfstate/{org}/{workspace}?ID=<lock id>       write a new state version
    LOCK   /tfstate/{org}/{workspace}/lock               take the lock (body: terraform's LockInfo)
    UNLOCK /tfstate/{org}/{workspace}/lock               release it (no body: force-unlock)
    GET    /tfstate/{org}/{workspace}/versions/{id}      download one state version

Credentials: HTTP basic auth whose password is a platform or OIDC token (the username is
ignored), or ``Authorization: Bearer <token>``. Every call needs manageState on the workspace.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from domain.access import Actor
from domain.errors import (
    DomainError,
    NotFound,
    Unauthenticated,
    ValidationFailed,
)
from domain.models import StateVersion
from domain.services import state as service
from registry.statuses import http_status

log = logging.getLogger("terrakube.state_backend")

MAX_LOCK_BODY = 64 * 1024
WWW_AUTHENTICATE = 'Basic realm="terrakube", charset="UTF-8", Bearer realm="terrakube"'


def error_response(exc: Exception) -> Response:
    """The one mapping of domain (and storage) errors to http backend answers."""
    if isinstance(exc, service.StateLocked):
        # Terraform reads the holder's LockInfo from this body and shows it to the user.
        return JSONResponse(exc.lock, status_code=423)
    if isinstance(exc, service.StateStorageFailed):
        return _error(503, exc.message)
    if isinstance(exc, service.StateCorrupted):
        return _error(500, exc.message)
    if isinstance(exc, DomainError):
        status = http_status(exc)
        return _error(status, exc.message, {"WWW-Authenticate": WWW_AUTHENTICATE} if status == 401 else None)
    raise exc


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def bearer_or_basic_token(request: Request) -> str | None:
    """The token in ``Authorization: Bearer`` or the password of ``Authorization: Basic``."""
    scheme, _, value = (request.headers.get("authorization") or "").partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _, _, password = decoded.partition(":")
        return password.strip() or None
    return None


Handler = Callable[[Request, Actor], Awaitable[Response]]


def _endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            token = bearer_or_basic_token(request)
            if token is None:
                raise Unauthenticated("credentials are required (basic auth with a token as password, or Bearer)")
            services = request.app.state.services
            principal = await services.authenticator.authenticate(token)
            return await handler(request, Actor(principal, services.platform.access_cache))
        except (DomainError, service.StateStorageFailed, service.StateCorrupted) as exc:
            if isinstance(exc, service.StateStorageFailed | service.StateCorrupted):
                log.error("state backend %s %s: %s", request.method, request.url.path, exc)
            return error_response(exc)

    return endpoint


def _platform(request: Request) -> Any:
    return request.app.state.services.platform


def _state_response(version: StateVersion, chunks: Any, filename: str | None = None) -> StreamingResponse:
    headers = {
        "Content-Length": str(version.size),
        "Content-MD5": service.content_md5(version),
        "ETag": f'"{version.sha256}"',
        "Cache-Control": "no-store",
    }
    if filename:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return StreamingResponse(chunks, media_type="application/json", headers=headers)


async def _lock_body(request: Request) -> dict[str, Any] | None:
    """Terraform's LockInfo, or None for an empty body."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_LOCK_BODY:
            raise ValidationFailed("lock", f"the lock info is larger than {MAX_LOCK_BODY} bytes")
    if not body.strip():
        return None
    try:
        info = json.loads(body)
    except ValueError:
        raise ValidationFailed("lock", "the lock info is not valid JSON") from None
    if not isinstance(info, dict):
        raise ValidationFailed("lock", "the lock info must be a JSON object")
    return info


class StateBackend:
    def __init__(self, max_state_bytes: int = service.MAX_STATE_BYTES) -> None:
        self.max_state_bytes = max_state_bytes

    async def get_state(self, request: Request, actor: Actor) -> Response:
        org, ws = request.path_params["org"], request.path_params["workspace"]
        found = await service.read_current_state(_platform(request), actor, org, ws)
        if found is None:
            return Response(status_code=204)
        version, chunks = found
        return _state_response(version, chunks)

    async def post_state(self, request: Request, actor: Actor) -> Response:
        org, ws = request.path_params["org"], request.path_params["workspace"]
        length = request.headers.get("content-length")
        version = await service.write_state(
            _platform(request),
            actor,
            org,
            ws,
            request.stream(),
            request.query_params.get("ID") or None,
            size_hint=int(length) if length and length.isdigit() else None,
            max_bytes=self.max_state_bytes,
        )
        return JSONResponse({"id": str(version.id), "serial": version.serial, "lineage": version.lineage})

    async def state(self, request: Request, actor: Actor) -> Response:
        if request.method in ("GET", "HEAD"):
            return await self.get_state(request, actor)
        return await self.post_state(request, actor)

    async def lock(self, request: Request, actor: Actor) -> Response:
        org, ws = request.path_params["org"], request.path_params["workspace"]
        info = await _lock_body(request)
        if request.method == "LOCK":
            if info is None:
                raise ValidationFailed("lock", "LOCK needs terraform's lock info as the body")
            lock = await service.lock_state(_platform(request), actor, org, ws, info)
            return JSONResponse(service.lock_info(lock))
        lock_id = info.get("ID") if info is not None else None
        if info is not None and not isinstance(lock_id, str):
            raise ValidationFailed("ID", "the lock info needs an ID")
        await service.unlock_state(_platform(request), actor, org, ws, lock_id)
        return Response(status_code=200)

    async def version(self, request: Request, actor: Actor) -> Response:
        org, ws = request.path_params["org"], request.path_params["workspace"]
        try:
            version_id = uuid.UUID(request.path_params["version_id"])
        except ValueError:
            raise NotFound("state version not found") from None
        version, chunks = await service.read_state_version(_platform(request), actor, org, ws, version_id)
        return _state_response(version, chunks, f"{ws}-{version.serial}.tfstate")


def state_routes(max_state_bytes: int = service.MAX_STATE_BYTES) -> list[BaseRoute]:
    backend = StateBackend(max_state_bytes)
    return [
        Route("/tfstate/{org}/{workspace}", _endpoint(backend.state), methods=["GET", "POST"]),
        Route("/tfstate/{org}/{workspace}/lock", _endpoint(backend.lock), methods=["LOCK", "UNLOCK"]),
        Route(
            "/tfstate/{org}/{workspace}/versions/{version_id}", _endpoint(backend.version), methods=["GET"]
        ),
    ]
