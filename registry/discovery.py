"""Terraform's service discovery: ``GET /.well-known/terraform.json``.

Terraform asks a host for this document before any registry call. The namespace of every
address is the organization name: ``HOST/acme/vpc/aws`` (module), ``HOST/acme/mycloud`` (provider).
The document is public: it names endpoints, not data.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from registry.http import base_url

MODULES_PATH = "/terraform/modules/v1/"
PROVIDERS_PATH = "/terraform/providers/v1/"


def discovery_document(base: str) -> dict[str, str]:
    base = base.rstrip("/")
    return {"modules.v1": base + MODULES_PATH, "providers.v1": base + PROVIDERS_PATH}


async def terraform_json(request: Request) -> Response:
    return JSONResponse(discovery_document(base_url(request)), headers={"Cache-Control": "max-age=60"})


def discovery_routes() -> list[BaseRoute]:
    return [Route("/.well-known/terraform.json", terraform_json, methods=["GET"])]


def registry_routes() -> list[BaseRoute]:
    """Discovery, modules, providers, and terraform's JSON 404 for any other registry path."""
    from registry.http import not_found
    from registry.modules import module_routes
    from registry.providers import provider_routes

    return [
        *discovery_routes(),
        *module_routes(),
        *provider_routes(),
        Route("/terraform/{rest:path}", not_found, methods=["GET", "HEAD", "POST"]),
    ]


def hot_routes() -> list[Route]:
    """The reads ``HotPath`` answers before the general stack: versions and download lists."""
    from registry.modules import module_read_routes
    from registry.providers import provider_read_routes

    return [*module_read_routes(), *provider_read_routes()]
