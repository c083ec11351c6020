"""The `/graphql` endpoint: bearer-token authentication in front of Strawberry's ASGI app."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from domain.access import Actor
from domain.authn import Authenticator
from domain.errors import Unauthenticated
from domain.live import Broker
from domain.principal import Principal, PrincipalKind
from domain.services import Platform
from graph.ide import local_assets_available, render_ide_page
from graph.resolvers.context import Context
from graph.schema import Schema

# Our own scope keys: scope["state"] may be shared between requests by some servers.
PRINCIPAL_KEY = "terrakube.principal"
REQUEST_ID_KEY = "terrakube.request_id"
CONTEXT_KEY = "terrakube.graphql_context"  # released once the request is answered
# The actor of a websocket before connection_init: sees nothing, may do nothing.
NOBODY = Principal(name="anonymous", subject="", groups=frozenset(), kind=PrincipalKind.user)


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
    def __init__(
        self, schema: Schema, platform: Platform, authenticator: Authenticator, broker: Broker | None,
        allowed_origins: Sequence[str] = (),
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql",
            allow_queries_via_get=True,
            subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL],
            allowed_origins=allowed_origins,
        )
        self.platform = platform
        self.authenticator = authenticator
        self.broker = broker

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        request_id = request.scope.get(REQUEST_ID_KEY) or uuid.uuid4().hex
        principal = request.scope.get(PRINCIPAL_KEY)
        if principal is None:
            if request.scope["type"] != "websocket":  # GraphQLEndpoint lets no such request through
                raise Unauthenticated("authentication required")
            # A websocket authenticates in connection_init (on_ws_connect); until it has, it
            # cannot subscribe at all (the protocol refuses before connection_ack).
            principal = NOBODY
        actor = Actor(principal, self.platform.access_cache)
        context = Context(platform=self.platform, actor=actor, request_id=request_id, broker=self.broker)
        request.scope[CONTEXT_KEY] = context
        return context

    async def on_ws_connect(self, context: Context) -> dict[str, object] | None:
        """graphql-transport-ws: the token comes in `connection_params` as
        `{"Authorization": "Bearer <token>"}`; anything else closes the socket (4403)."""
        params = context.connection_params or {}
        raw = params.get("Authorization") or params.get("authorization") or ""
        token = bearer_token({"authorization": raw}) if isinstance(raw, str) else None
        if token is None:
            raise ConnectionRejectionError({"message": "connection_params must carry an Authorization bearer token"})
        try:
            context.actor = Actor(await self.authenticator.authenticate(token), self.platform.access_cache)
        except Unauthenticated as exc:
            raise ConnectionRejectionError({"message": exc.message}) from None
        return None


class GraphQLEndpoint:
    """Every GraphQL request carries a bearer token; only the GraphiQL page is public."""

    def __init__(
        self, schema: Schema, platform: Platform, authenticator: Authenticator, broker: Broker | None = None,
        allowed_origins: Sequence[str] = (),
    ) -> None:
        self.strawberry = StrawberryApp(schema, platform, authenticator, broker, allowed_origins)
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope, receive)
            if self._is_ide_page(request):
                # The page is static and executes nothing, so it needs no context (nor a token).
                # Ours loads its scripts from /graphql-ide/; Strawberry's (their fallback) from a CDN.
                if local_assets_available():
                    await render_ide_page(request)(scope, receive, send)
                else:
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
        try:
            await self.strawberry(scope, receive, send)
        finally:
            context = scope.pop(CONTEXT_KEY, None)
            if context is not None:
                context.release()

    @staticmethod
    def _is_ide_page(request: Request) -> bool:
        return (
            request.method == "GET"
            and "query" not in request.query_params
            and "text/html" in request.headers.get("accept", "")
        )
