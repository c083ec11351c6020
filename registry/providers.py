"""Terraform's provider registry protocol, and the upload of provider releases.

    GET  /terraform/providers/v1/{org}/{name}/versions
    GET  /terraform/providers/v1/{org}/{name}/{version}/download/{os}/{arch}
    GET  /terraform/providers/v1/{org}/{name}/{version}/files/{filename}   (signed URL or token)
    POST /api/providers/{org}/{name}/versions/{version}/{os}/{arch}        (manageProvider)

The upload is ``multipart/form-data`` with the zip in a file field (``file``) and a ``protocols``
field (``6.0``, or ``5.0,6.0``); a raw ``application/zip`` body with ``?protocols=6.0`` works too.
The zip must hold ``terraform-provider-{name}_v{version}`` at its top level.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import quote

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from domain.access import Actor
from domain.errors import ValidationFailed
from domain.services import providers as service
from domain.services.lookups import require_reader
from registry.discovery import PROVIDERS_PATH
from registry.http import (
    authenticate,
    base_url,
    endpoint,
    registry_cache,
    services,
    signed_or_authenticated,
    url_signer,
)

MULTIPART_LIMITS = {"max_files": 1, "max_fields": 16, "max_part_size": 64 * 1024}


async def _readable_answer(request: Request, actor: Actor) -> service.ProviderAnswer:
    """The provider's remembered answer (one per provider serves its versions and every
    download), once ``actor`` may see its organization."""
    org, name = request.path_params["org"], request.path_params["name"]
    platform = services(request).platform
    answer: service.ProviderAnswer = await registry_cache(request).get_or_load(
        ("provider", org, name), lambda: service.provider_answer(platform, org, name)
    )
    await require_reader(platform, actor, answer.organization_id, f"provider {org}/{name}")
    return answer


async def versions(request: Request) -> Response:
    answer = await _readable_answer(request, await authenticate(request))
    return JSONResponse({"versions": answer.versions}, headers={"Cache-Control": "no-store"})


def file_path(org: str, name: str, version: str, filename: str) -> str:
    return PROVIDERS_PATH + "/".join(quote(x, safe="") for x in (org, name, version)) + f"/files/{quote(filename, safe='')}"


async def download(request: Request) -> Response:
    answer = await _readable_answer(request, await authenticate(request))
    p = request.path_params
    org, name, version = p["org"], p["name"], p["version"]
    found = service.require_found(answer.download(version, p["os"], p["arch"]), org, name, version)
    base, signer = base_url(request), url_signer(request)
    sums = service.sums_filename(name, version)
    body = {
        "protocols": found.protocols,
        "os": found.os,
        "arch": found.arch,
        "filename": found.filename,
        "download_url": base + signer.sign(file_path(org, name, version, found.filename)),
        "shasums_url": base + signer.sign(file_path(org, name, version, sums)),
        "shasums_signature_url": base + signer.sign(file_path(org, name, version, sums + ".sig")),
        "shasum": found.shasum,
        "signing_keys": {
            "gpg_public_keys": [
                {
                    "key_id": found.key_id,
                    "ascii_armor": found.ascii_armor,
                    "trust_signature": "",
                    "source": "Terrakube",
                    "source_url": None,
                }
            ]
        },
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


async def release_file(request: Request) -> Response:
    actor = await signed_or_authenticated(request)
    p = request.path_params
    platform = services(request).platform
    if actor is not None:  # a token instead of a signature: it must see the organization
        await _readable_answer(request, actor)
    media, chunks = await service.open_release_file(platform, p["org"], p["name"], p["version"], p["filename"])
    return StreamingResponse(
        chunks,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{p["filename"]}"', "Cache-Control": "private, max-age=300"},
    )


async def publish(request: Request) -> Response:
    actor = await authenticate(request)
    p = request.path_params
    svc = services(request)
    target = service.PublishTarget(p["org"], p["name"], p["version"], p["os"], p["arch"])
    # Refuse what can be refused before reading a possibly large body.
    await service.check_publish(svc.platform, actor, target)
    limit = int(svc.settings.max_provider_bytes)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise service.ProviderTooLarge(limit)
    scratch = Path(tempfile.mkdtemp(prefix="tk-provider-"))
    try:
        upload, protocols = await _receive(request, scratch / "upload.zip", limit)
        row = await service.publish_platform(svc.platform, actor, target, protocols, upload)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return JSONResponse(
        {
            "organization": target.organization,
            "name": target.name,
            "version": target.version,
            "os": row.os,
            "arch": row.arch,
            "filename": row.filename,
            "shasum": row.shasum,
            "protocols": service.parse_protocols(protocols),
        },
        status_code=201,
    )


async def _receive(request: Request, dest: Path, limit: int) -> tuple[Path, list[str]]:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        try:
            form = await request.form(**MULTIPART_LIMITS)
        except Exception as exc:  # malformed multipart: starlette's MultiPartException and friends
            raise ValidationFailed("file", f"the multipart body cannot be read: {exc}") from None
        try:
            files = [v for v in form.values() if isinstance(v, UploadFile)]
            if len(files) != 1:
                raise ValidationFailed("file", "send exactly one file: the provider zip (field 'file')")
            protocols = [v for v in form.getlist("protocols") if isinstance(v, str)]
            await _copy(files[0], dest, limit)
        finally:
            await form.close()
        return dest, protocols
    # A raw zip body; protocols in the query string.
    size = 0
    with dest.open("wb") as fh:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise service.ProviderTooLarge(limit)
            fh.write(chunk)
    if size == 0:
        raise ValidationFailed("file", "the request has no body; send the provider zip as multipart field 'file'")
    return dest, request.query_params.getlist("protocols")


async def _copy(upload: UploadFile, dest: Path, limit: int) -> None:
    size = 0
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        while chunk := await upload.read(1 << 20):
            size += len(chunk)
            if size > limit:
                raise service.ProviderTooLarge(limit)
            fh.write(chunk)
    if size == 0:
        raise ValidationFailed("file", "the uploaded file is empty")


PREFIX = PROVIDERS_PATH.rstrip("/") + "/{org}/{name}"


def provider_read_routes() -> list[Route]:
    """What ``terraform init`` asks for every provider (also served by ``HotPath``)."""
    return [
        Route(PREFIX + "/versions", endpoint(versions), methods=["GET"]),
        Route(PREFIX + "/{version}/download/{os}/{arch}", endpoint(download), methods=["GET"]),
    ]


def provider_routes() -> list[BaseRoute]:
    return [
        *provider_read_routes(),
        Route(PREFIX + "/{version}/files/{filename}", endpoint(release_file), methods=["GET"]),
        Route("/api/providers/{org}/{name}/versions/{version}/{os}/{arch}", endpoint(publish), methods=["POST"]),
    ]
