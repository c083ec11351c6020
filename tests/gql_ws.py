"""A small graphql-transport-ws client over a real websocket (httpx-ws), for tests and benches."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from httpx_ws import AsyncWebSocketSession, aconnect_ws


class SubscriptionError(Exception):
    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors[0].get("message") if errors else "subscription error")
        self.errors = errors


class GraphQLWebSocket:
    def __init__(self, ws: AsyncWebSocketSession) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    async def subscribe(self, query: str, **variables: Any) -> AsyncIterator[dict[str, Any]]:
        """Yields each `next` payload's data; returns on `complete`; raises on `error`."""
        op = str(next(self._ids))
        await self.ws.send_json({"id": op, "type": "subscribe", "payload": {"query": query, "variables": variables}})
        while True:
            message = await self.ws.receive_json()
            if message.get("type") == "ping":
                await self.ws.send_json({"type": "pong"})
                continue
            if message.get("id") != op:
                continue
            if message["type"] == "next":
                payload = message["payload"]
                if payload.get("errors"):
                    raise SubscriptionError(payload["errors"])
                yield payload["data"]
            elif message["type"] == "error":
                raise SubscriptionError(message["payload"])
            elif message["type"] == "complete":
                return


@asynccontextmanager
async def connect(base_url: str, token: str | None) -> AsyncIterator[GraphQLWebSocket]:
    url = base_url.replace("http", "ws", 1) + "/graphql"
    params = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(timeout=30) as client:
        async with aconnect_ws(url, client, subprotocols=["graphql-transport-ws"],
                               max_message_size_bytes=4 * 1024 * 1024) as ws:
            await ws.send_json({"type": "connection_init", "payload": params})
            ack = await ws.receive_json()
            if ack.get("type") != "connection_ack":
                raise SubscriptionError([{"message": f"not acknowledged: {ack}"}])
            yield GraphQLWebSocket(ws)
