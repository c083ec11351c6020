"""What the registry routes share: authentication, the error body terraform prints, absolute
URLs, and short-lived signed URLs for archives and release files.

Terraform shows the ``errors`` of a registry answer to the user, so every refusal here is
``{"errors": ["<message>"]}`` with the matching status.
"""

from __future__ import annotations

import base64
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from domain.access import Actor
from domain.crypto import derive_key
from domain.errors import DomainError, Unauthenticated
from registry.answer_cache import AnswerCache
from registry.state_backend import bearer_or_basic_token
from registry.statuses import http_status

log = logging.getLogger("terrakube.registry")

WWW_AUTHENTICATE = 'Bearer realm="terrakube"'
NO_STORE = {"Cache-Control": "no-store"}


def errors(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"errors": [message]}, status_code=status, headers={**NO_STORE, **(headers or {})})


def error_response(exc: DomainError) -> JSONResponse:
    """Domain errors as registry answers (terraform prints the ``errors``)."""
    status = http_status(exc)
    return errors(status, exc.message, {"WWW-Authenticate": WWW_AUTHENTICATE} if status == 401 else None)


def services(request: Request) -> Any:
    # A plain attribute of the app (``PlatformApp.services``): read several times per request, and
    # ``app.state``'s ``__getattr__`` measured a few per cent of the registry's hot path.
    return request.scope["app"].services


def per_app(request: Request, name: str, make: Callable[[], Any]) -> Any:
    """An object made once per app (caches, signers), kept as a plain attribute of the app."""
    app = request.scope["app"]
    value = app.__dict__.get(name)
    if value is None:
        value = make()
        setattr(app, name, value)
    return value


def registry_cache(request: Request) -> AnswerCache:
    """Registry answers (versions lists, download lookups), kept ``TERRAKUBE_REGISTRY_CACHE_SECONDS``:
    a new version is seen up to that many seconds later by this process. Who the caller is and
    what it may see is the access cache's business (``domain.access_cache``), which forgets at
    once when a token or team changes."""
    ttl = float(services(request).settings.registry_cache_seconds)
    cache: AnswerCache = per_app(request, "registry_cache", lambda: AnswerCache(ttl))
    cache.ttl = ttl
    return cache


async def authenticate(request: Request) -> Actor:
    token = bearer_or_basic_token(request)
    if token is None:
        raise Unauthenticated(
            "this registry needs a token: add a credentials block for this host to the terraform CLI config "
            "(TF_CLI_CONFIG_FILE), or set TF_TOKEN_<host>"
        )
    # Remembered only until a token, team or organization changes anywhere (domain.access_cache).
    svc = services(request)
    return Actor(await svc.authenticator.authenticate(token), svc.platform.access_cache)


Handler = Callable[[Request], Awaitable[Response]]


def endpoint(handler: Handler) -> Handler:
    """Domain errors become terraform's error body; anything else is logged and a 500."""

    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except DomainError as exc:
            return error_response(exc)
        except Exception:
            log.exception("registry %s %s failed", request.method, request.url.path)
            return errors(500, "the registry failed to answer; the server log has the details")

    return run


def base_url(request: Request) -> str:
    """Where clients reach this API: ``TERRAKUBE_PUBLIC_URL`` or else the request's own origin."""
    configured = services(request).settings.public_url
    if configured:
        return configured.rstrip("/")
    return str(request.base_url).rstrip("/")


async def not_found(request: Request) -> Response:
    return errors(404, f"{request.url.path} is not a registry endpoint")


# -- signed URLs -----------------------------------------------------------------------------


class UrlSigner:
    """HMAC-signed, expiring URLs: terraform fetches archives and zips without sending its token."""

    def __init__(self, secret_key: str, ttl_seconds: int) -> None:
        self._key = derive_key(secret_key, "terrakube/registry-download-urls")
        self.ttl = ttl_seconds

    def _mac(self, path: str, expires: int) -> str:
        # Over the decoded path: the server sees ``scope["path"]`` decoded (1.0.0%2Bb1 → 1.0.0+b1).
        digest = hmac.digest(self._key, f"{unquote(path)}\n{expires}".encode(), "sha256")
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def sign(self, path: str, now: float | None = None) -> str:
        """``path`` plus its query string; valid for ``ttl`` seconds."""
        expires = int((now or time.time()) + self.ttl)
        # Both values are URL-safe as they are (digits; unpadded URL-safe base64).
        return f"{path}?expires={expires}&signature={self._mac(path, expires)}"

    def valid(self, path: str, expires: str | None, signature: str | None, now: float | None = None) -> bool:
        if not expires or not signature or not expires.isdigit():
            return False
        if int(expires) < (now or time.time()):
            return False
        return hmac.compare_digest(self._mac(path, int(expires)), signature)


def url_signer(request: Request) -> UrlSigner:
    settings = services(request).settings
    made: UrlSigner = per_app(
        request, "registry_url_signer",
        lambda: UrlSigner(settings.secret_key or "", int(settings.registry_url_ttl_seconds)),
    )
    return made


async def signed_or_authenticated(request: Request) -> Actor | None:
    """A file route accepts a valid signature (no token needed) or a token; None = signed."""
    signer = url_signer(request)
    query = request.query_params
    if "signature" in query:
        if signer.valid(request.url.path, query.get("expires"), query.get("signature")):
            return None
        if bearer_or_basic_token(request) is None:
            raise Unauthenticated("the download link has expired or is not valid; ask the registry for a new one")
    return await authenticate(request)
