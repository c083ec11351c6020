"""The registry reads `terraform init` repeats, answered before the general routing stack.

Every module block of every `terraform init` asks ``versions`` and then ``download``. Measured at
50 clients, Starlette's general stack around those handlers (its two exception middlewares, the
router's scan of every route, the request/response wrappers) cost about as much as the answers
themselves (about 100 µs of 230 µs). ``HotPath`` matches just these routes, with the same
``Route`` objects the router has (so the same patterns), and runs their endpoints directly. Their
endpoints turn every error into a response themselves (``registry.http.endpoint``).
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send


class HotPath:
    def __init__(self, app: ASGIApp, routes: Sequence[Route]) -> None:
        self.app = app
        self.routes = tuple(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            for route in self.routes:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child)
                    response = await route.endpoint(Request(scope, receive))
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)
