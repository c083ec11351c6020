"""`PUT /api/workspaces/{id}/configuration`: upload a workspace's code as a .tar.gz."""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from domain.access import Actor
from domain.errors import DomainError, Unauthenticated, ValidationFailed
from domain.services.configuration import ConfigurationTooLarge, upload_configuration
from registry.state_backend import bearer_or_basic_token, error_response


async def put_configuration(request: Request) -> Response:
    services = request.app.state.services
    try:
        token = bearer_or_basic_token(request)
        if token is None:
            raise Unauthenticated("a bearer token is required")
        actor = Actor(await services.authenticator.authenticate(token), services.platform.access_cache)
        try:
            workspace_id = uuid.UUID(request.path_params["workspace_id"])
        except ValueError:
            raise ValidationFailed("id", "not a workspace id") from None
        limit = services.settings.max_configuration_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise ConfigurationTooLarge(limit)
        version = await upload_configuration(services.platform, actor, workspace_id, request.stream(), limit)
    except DomainError as exc:
        return error_response(exc)
    return JSONResponse(
        {"id": str(version.id), "size": version.size, "sha256": version.sha256, "createdAt": version.created_at.isoformat()},
        status_code=201,
    )


def configuration_routes() -> list[BaseRoute]:
    return [Route("/api/workspaces/{workspace_id}/configuration", put_configuration, methods=["PUT"])]
