"""GraphiQL from local files: our page at `GET /graphql` (browsers) and its scripts under `/graphql-ide/`.

`graph/ide/install-assets` (run by `scripts/bootstrap`) puts the pinned GraphiQL, React and graphql-ws
browser bundles from the npm registry into `.cache/graphiql/assets`. While they are missing (no npm at
install time), `/graphql` serves Strawberry's GraphiQL page instead, which loads them from a public CDN.

Our page sends queries and mutations over HTTP and subscriptions over graphql-transport-ws to the same
URL, with the headers editor's content (`{"Authorization": "Bearer <token>"}`) as the `connection_init`
payload: see `graph/ide/index.html`.
"""

from __future__ import annotations

import html
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

ASSETS_DIR = Path(__file__).resolve().parent.parent / ".cache" / "graphiql" / "assets"
TEMPLATE = Path(__file__).resolve().parent / "ide" / "index.html"
ASSETS = (
    "react.production.min.js",
    "react-dom.production.min.js",
    "graphql-ws.min.js",
    "graphiql.min.js",
    "graphiql.min.css",
)
MOUNT_PATH = "/graphql-ide"


def local_assets_available() -> bool:
    return TEMPLATE.is_file() and all((ASSETS_DIR / name).is_file() for name in ASSETS)


def render_ide_page(request: Request) -> HTMLResponse:
    base = html.escape(request.scope.get("root_path", "") + MOUNT_PATH, quote=True)
    page = TEMPLATE.read_text(encoding="utf-8").replace("{{ASSETS}}", base)
    return HTMLResponse(page, headers={"Cache-Control": "no-cache"})


class LocalAssets:
    """The assets folder, or 404 while it does not exist (StaticFiles would answer 500)."""

    def __init__(self) -> None:
        self.files = StaticFiles(directory=ASSETS_DIR, check_dir=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not ASSETS_DIR.is_dir():
            await PlainTextResponse("GraphiQL assets are not installed", status_code=404)(scope, receive, send)
            return
        await self.files(scope, receive, send)


def ide_assets_mount() -> Mount:
    return Mount(MOUNT_PATH, app=LocalAssets(), name="graphql-ide")
