"""Terraform's module registry protocol for an organization's private modules.

    GET /terraform/modules/v1/{org}/{name}/{provider}/versions
    GET /terraform/modules/v1/{org}/{name}/{provider}/{version}/download       → 204, X-Terraform-Get
    GET /terraform/modules/v1/{org}/{name}/{provider}/{version}/archive.tar.gz  (signed URL or token)

Every call but the archive needs a token of someone who can see the organization (personal,
team, OIDC or a job token of that organization). ``download`` answers with a signed URL valid for
``TERRAKUBE_REGISTRY_URL_TTL_SECONDS``, because terraform fetches the archive without its token.
Downloads are counted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from domain.errors import NotFound
from domain.services import Platform
from domain.services import modules as service
from registry.discovery import MODULES_PATH
from registry.http import (
    authenticate,
    base_url,
    endpoint,
    per_app,
    registry_cache,
    services,
    signed_or_authenticated,
    url_signer,
)

log = logging.getLogger("terrakube.registry.modules")


def _parts(request: Request) -> tuple[str, str, str]:
    p = request.path_params
    return p["org"], p["name"], p["provider"]


@dataclass(frozen=True)
class ModuleAnswer:
    """One load per module serves both ``versions`` and every version's ``download``."""

    module_id: uuid.UUID
    organization_id: uuid.UUID
    versions: frozenset[str]
    body: bytes  # the versions document, rendered once per load: the same for every caller


async def _module_answer(platform: Platform, org: str, name: str, provider: str) -> ModuleAnswer:
    index = await service.module_index(platform, org, name, provider)
    document = {"modules": [{"versions": [{"version": v} for v in index.versions]}]}
    body = json.dumps(document, separators=(",", ":")).encode()
    return ModuleAnswer(index.module_id, index.organization_id, frozenset(index.versions), body)


async def _readable_module(request: Request) -> ModuleAnswer:
    actor = await authenticate(request)
    org, name, provider = _parts(request)
    platform, cache = services(request).platform, registry_cache(request)
    answer: ModuleAnswer = await cache.get_or_load(
        ("module", org, name, provider), lambda: _module_answer(platform, org, name, provider)
    )
    await service.require_reader(platform, actor, answer.organization_id, f"module {org}/{name}/{provider}")
    return answer


async def versions(request: Request) -> Response:
    answer = await _readable_module(request)
    return Response(answer.body, media_type="application/json", headers={"Cache-Control": "no-store"})


def archive_path(org: str, name: str, provider: str, version: str) -> str:
    return MODULES_PATH + "/".join(quote(p, safe="") for p in (org, name, provider, version)) + "/archive.tar.gz"


async def download(request: Request) -> Response:
    answer = await _readable_module(request)
    org, name, provider = _parts(request)
    version = request.path_params["version"]
    if version not in answer.versions:
        raise NotFound(f"module {org}/{name}/{provider} has no version {version[:64]!r}")
    counter(request).record(answer.module_id)
    url = base_url(request) + url_signer(request).sign(archive_path(org, name, provider, version))
    return Response(status_code=204, headers={"X-Terraform-Get": url, "Cache-Control": "no-store"})


async def archive(request: Request) -> Response:
    actor = await signed_or_authenticated(request)
    org, name, provider = _parts(request)
    version = request.path_params["version"]
    platform = services(request).platform
    # actor None: the signature vouches for organization, module and version.
    found = await service.registry_download(platform, actor, org, name, provider, version)
    chunks = await service.open_archive(platform, found.archive_key)
    filename = f"{name}-{provider}-{found.version}.tar.gz"
    return StreamingResponse(
        chunks,
        media_type="application/gzip",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "private, max-age=300"},
    )


# -- download counting ---------------------------------------------------------------------


class CounterFlusher:
    """Keeps the in-memory download counts and writes them every ``interval`` seconds (and once
    more when the app shuts down)."""

    def __init__(self, platform: Platform, interval: float) -> None:
        self.platform = platform
        self.interval = interval
        self.counter = service.DownloadCounter()
        self.task: asyncio.Task[None] | None = None

    def record(self, module_id: Any) -> None:
        self.counter.record(module_id)

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.interval)
                await self._flush()
        except asyncio.CancelledError:
            await self._flush()
            raise

    async def _flush(self) -> None:
        try:
            await self.counter.flush(self.platform)
        except Exception:
            log.warning("recording module download counts failed; retrying", exc_info=True)


def counter(request: Request) -> CounterFlusher:
    def start() -> CounterFlusher:
        svc = services(request)
        flusher = CounterFlusher(svc.platform, float(svc.settings.registry_download_flush_seconds))
        flusher.task = asyncio.get_running_loop().create_task(flusher.run(), name="module-download-counter")
        # The lifespan cancels (and awaits) background tasks before closing the database.
        background = getattr(svc, "background", None)
        if isinstance(background, list):
            background.append(flusher.task)
        return flusher

    made: CounterFlusher = per_app(request, "module_download_counter", start)
    return made


PREFIX = MODULES_PATH.rstrip("/") + "/{org}/{name}/{provider}"


def module_read_routes() -> list[Route]:
    """What ``terraform init`` asks for every module block (also served by ``HotPath``)."""
    return [
        Route(PREFIX + "/versions", endpoint(versions), methods=["GET"]),
        Route(PREFIX + "/{version}/download", endpoint(download), methods=["GET"]),
    ]


def module_routes() -> list[BaseRoute]:
    return [*module_read_routes(), Route(PREFIX + "/{version}/archive.tar.gz", endpoint(archive), methods=["GET"])]
