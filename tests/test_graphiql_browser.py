"""The GraphiQL page at /graphql in a real browser (headless Debian Chromium over the DevTools
protocol): it loads from this server alone (no CDN), the headers editor's Authorization header is
the websocket's connection_init payload, and a subscription's events stream into the results pane."""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_ws import WebSocketSession, connect_ws

from graph.ide import ASSETS_DIR, local_assets_available
from tests.procs import Api, running_up
from tests.services import in_ci

SCREENSHOT = Path("/tmp/graphiql-subscription.png")
GATE = "flow:\n  - type: approval\n    step: 100\n    team: ops\n"
SUBSCRIPTION = "subscription {{\n  workspaceJobs(workspaceId: \"{ws}\") {{\n    job {{ id status }}\n  }}\n}}\n"
# GraphiQL's editors are CodeMirror 5 instances; setValue fires the change events typing does.
EDITOR = "document.querySelector({selector}).CodeMirror"
QUERY_EDITOR = ".graphiql-query-editor .CodeMirror"
HEADERS_EDITOR = ".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror"
RESULTS = ".graphiql-response"


def chromium_path() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if path is None:
        message = "chromium is not installed (apt-get install chromium)"
        if in_ci():
            pytest.fail(message + " (CI needs it: .ci/run installs it)")
        pytest.skip(message)
    return path


def require_local_assets() -> None:
    if local_assets_available():
        return
    message = f"GraphiQL's local assets are missing in {ASSETS_DIR} (scripts/bootstrap installs them with npm)"
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


class DevTools:
    """Chrome DevTools Protocol over one page target's websocket; events are kept in `events`."""

    def __init__(self, ws: WebSocketSession) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        command_id = next(self._ids)
        self.ws.send_json({"id": command_id, "method": method, "params": params})
        while True:
            message = self.ws.receive_json(timeout=60)
            if message.get("id") == command_id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def frames(self, direction: str) -> list[str]:
        """Payloads of the page's websocket frames, "Sent" or "Received"."""
        return [e["params"]["response"]["payloadData"] for e in self.events
                if e["method"] == f"Network.webSocketFrame{direction}"]

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}{self.diagnosis()}")

    def diagnosis(self) -> str:
        """The page's text, console output, exceptions and websocket frames, for a failure message."""
        try:
            text = self.evaluate("document.body ? document.body.innerText.slice(0, 3000) : ''")
        except Exception as exc:  # the page may be gone
            text = repr(exc)
        console = [" ".join(str(a.get("value", a.get("description", ""))) for a in e["params"]["args"])
                   for e in self.events if e["method"] == "Runtime.consoleAPICalled"]
        thrown = [e["params"]["exceptionDetails"] for e in self.events if e["method"] == "Runtime.exceptionThrown"]
        return (f"\n--- page text ---\n{text}\n--- console ---\n{console}\n--- exceptions ---\n{thrown}"
                f"\n--- frames sent ---\n{self.frames('Sent')}\n--- received ---\n{self.frames('Received')[:20]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with running_up(tmp_path_factory.mktemp("graphiql-up")) as api:
        yield api


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    chromium = chromium_path()
    profile = tmp_path / "profile"
    log = tmp_path / "chromium.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", "--no-default-browser-check", "--window-size=1400,900",
             f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out,
        )
    try:
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (active.exists() and active.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"chromium did not open its DevTools port:\n{log.read_text(errors='replace')}")
            time.sleep(0.1)
        port = int(active.read_text().splitlines()[0])
        with httpx.Client(trust_env=False, timeout=10) as client:
            targets = client.get(f"http://127.0.0.1:{port}/json/list").json()
            page = next(t for t in targets if t["type"] == "page")
            with connect_ws(page["webSocketDebuggerUrl"], client, max_message_size_bytes=64 * 1024 * 1024) as ws:
                yield DevTools(ws)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def type_into(browser: DevTools, selector: str, initial: str, value: str) -> None:
    """Replaces an editor's content once GraphiQL has put its initial content (containing ``initial``) there."""
    editor = EDITOR.format(selector=repr(selector))
    browser.wait_for(f"the initial content of {selector}",
                     lambda: initial in (browser.evaluate(f"{editor}.getValue()") or ""))
    browser.evaluate(f"{editor}.setValue({json.dumps(value)})")
    browser.wait_for(f"{selector} to keep what was typed",
                     lambda: browser.evaluate(f"{editor}.getValue()") == value)


def test_served_page_uses_local_assets(server: Api) -> None:
    require_local_assets()
    base = server.server.base_url
    page = httpx.get(f"{base}/graphql", headers={"accept": "text/html"}, timeout=10)
    assert page.status_code == 200 and "/graphql-ide/graphiql.min.js" in page.text, page.text[:500]
    assert "unpkg" not in page.text and "cdn" not in page.text.lower()
    script = httpx.get(f"{base}/graphql-ide/graphiql.min.js", timeout=10)
    assert script.status_code == 200 and len(script.content) > 100_000
    assert httpx.get(f"{base}/graphql-ide/nothing.js", timeout=10).status_code == 404


def test_subscription_streams_into_graphiql(server: Api, browser: DevTools, tmp_path: Path) -> None:
    require_local_assets()
    api = server
    base = api.server.base_url
    api.mutate("createOrganization", "CreateOrganizationInput", "... on Organization { id }", name="browser")
    ws = api.mutate("createWorkspace", "CreateWorkspaceInput", "... on Workspace { id }", organization="browser",
                    name="gated", source="file:///tmp/anything")["id"]
    api.mutate("createTemplate", "CreateTemplateInput", "... on Template { id }", organization="browser",
               name="gate", tcl=GATE)

    for domain in ("Page", "Runtime", "Network"):
        browser.send(f"{domain}.enable")
    browser.send("Page.navigate", url=f"{base}/graphql")
    browser.wait_for("GraphiQL to render", lambda: browser.evaluate(
        f"!!document.querySelector('.graphiql-execute-button') && !!document.querySelector({QUERY_EDITOR!r})"
        f" && !!document.querySelector({HEADERS_EDITOR!r})"))

    # What a user does: the token into the headers editor, the subscription into the query editor, Run.
    # GraphiQL fills each editor with its initial content in an effect after the editor exists; typing
    # before that is overwritten, so each edit waits for the initial content first (as a user would see it).
    headers = json.dumps({"Authorization": f"Bearer {api.token}"}, indent=2)
    type_into(browser, HEADERS_EDITOR, '"Bearer "', headers)
    type_into(browser, QUERY_EDITOR, "Terrakube's GraphQL API", SUBSCRIPTION.format(ws=ws))
    browser.evaluate("document.querySelector('.graphiql-execute-button').click()")

    # The websocket sent the headers editor's content as connection_init, then the subscription.
    def subscribed() -> list[str] | None:
        browser.evaluate("1")  # takes in the events that came meanwhile
        frames = browser.frames("Sent")
        return frames if any(json.loads(f).get("type") == "subscribe" for f in frames) else None

    sent = browser.wait_for("the subscribe frame", subscribed)
    init = json.loads(sent[0])
    assert init == {"type": "connection_init", "payload": {"Authorization": f"Bearer {api.token}"}}, sent
    assert any(json.loads(f).get("type") == "connection_ack" for f in browser.frames("Received"))
    time.sleep(1.0)  # the server has registered the subscription before the job starts

    job = api(
        'mutation($w: ID!) { runJob(input: {workspaceId: $w, templateName: "gate"}) { ... on Job { id } } }', w=ws
    )["runJob"]["id"]
    text = browser.wait_for("WAITING_APPROVAL in the results pane", lambda: (
        (t := browser.evaluate(f"document.querySelector({RESULTS!r}).innerText")) and "WAITING_APPROVAL" in t and t
    ))
    assert job in text, text

    png = base64.b64decode(browser.send("Page.captureScreenshot", format="png")["data"])
    (tmp_path / "graphiql-subscription.png").write_bytes(png)
    SCREENSHOT.write_bytes(png)

    # Nothing was loaded from anywhere but this server: no CDN.
    urls = [e["params"]["request"]["url"] for e in browser.events if e["method"] == "Network.requestWillBeSent"]
    urls += [e["params"]["url"] for e in browser.events if e["method"] == "Network.webSocketCreated"]
    host = base.split("://", 1)[1]
    outside = [u for u in urls if not u.startswith(("data:", f"http://{host}/", f"ws://{host}/"))]
    assert not outside, outside
    assert any(u.endswith("/graphql-ide/graphiql.min.js") for u in urls), urls
