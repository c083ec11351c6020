"""The `/graphql` endpoint: bearer-token authentication in front of Strawberry's ASGI app."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from domain.access import Actor
from domain.authn import Authenticator
from domain.errors import Unauthenticated
from domain.services import Platform
from graph.resolvers.context import Context
from graph.schema import Schema

# Our own scope keys: scope["state"] may be shared between requests by some servers.
PRINCIPAL_KEY = "terrakube.principal"
REQUEST_ID_KEY = "terrakube.request_id"


def bearer_token(headers: Any) -> str | None:
    value = headers.get("authorization") or ""
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def unauthorized(message: str) -> JSONResponse:
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": "UNAUTHENTICATED"}}]},
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="terrakube"'},
    )


class StrawberryApp(GraphQL[Context, None]):
    def __init__(self, schema: Schema, platform: Platform) -> None:
        super().__init__(schema, graphql_ide="graphiql", allow_queries_via_get=True)
        self.platform = platform

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        principal = request.scope.get(PRINCIPAL_KEY)
        if principal is None:  # GraphQLEndpoint lets nothing unauthenticated through
            raise Unauthenticated("authentication required")
        request_id = request.scope.get(REQUEST_ID_KEY) or uuid.uuid4().hex
        return Context(platform=self.platform, actor=Actor(principal), request_id=request_id)


class GraphQLEndpoint:
    """Every GraphQL request carries a bearer token; only the GraphiQL page is public."""

    def __init__(self, schema: Schema, platform: Platform, authenticator: Authenticator) -> None:
        self.strawberry = StrawberryApp(schema, platform)
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope, receive)
            if self._is_ide_page(request):
                # The page is static and executes nothing, so it needs no context (nor a token).
                await (await self.strawberry.render_graphql_ide(request))(scope, receive, send)
                return
            token = bearer_token(request.headers)
            if token is None:
                await unauthorized("a bearer token is required")(scope, receive, send)
                return
            try:
                principal = await self.authenticator.authenticate(token)
            except Unauthenticated as exc:
                await unauthorized(exc.message)(scope, receive, send)
                return
            scope[PRINCIPAL_KEY] = principal
        elif scope["type"] == "websocket":
            # Subscriptions (and their connection_params authentication) arrive with live logs.
            await WebSocket(scope, receive, send).close(code=4403, reason="subscriptions are not available")
            return
        await self.strawberry(scope, receive, send)

    @staticmethod
    def _is_ide_page(request: Request) -> bool:
        return (
            request.method == "GET"
            and "query" not in request.query_params
            and "text/html" in request.headers.get("accept", "")
        )
