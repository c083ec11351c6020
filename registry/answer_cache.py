"""Registry answers remembered for a few seconds, refreshed before they expire.

``terraform init`` asks the same few questions many times in a burst (every module block, every
CI job at once). An entry lives ``ttl`` seconds. In its last ``REFRESH_AHEAD`` part, a request
still gets the remembered answer while one background load replaces it, so a busy key never
expires under its callers (when every key expired at once, all of them waited on the database
together: measured, a 150-200 ms stall every ``ttl`` at 50 clients). An answer is never older
than ``ttl`` plus one load.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("terrakube.registry.cache")

REFRESH_AHEAD = 0.25  # share of the ttl during which a hit also starts a refresh


class AnswerCache:
    def __init__(self, ttl: float, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._items: dict[Any, tuple[float, Any]] = {}  # key → (loaded at, value)
        self._loading: dict[Any, asyncio.Future[Any]] = {}

    async def get_or_load(self, key: Any, load: Callable[[], Awaitable[Any]]) -> Any:
        """The remembered value, or ``load()``'s. Concurrent loads of one key are shared, so an
        expiring key costs one database round trip, not one per waiting request."""
        if self.ttl <= 0:
            return await load()
        hit = self._items.get(key)
        if hit is not None:
            age = self._clock() - hit[0]
            if age < self.ttl:
                if age >= self.ttl * (1 - REFRESH_AHEAD) and key not in self._loading:
                    self._start(key, load)
                return hit[1]
            self._items.pop(key, None)
        pending = self._loading.get(key) or self._start(key, load)
        return await asyncio.shield(pending)

    def _start(self, key: Any, load: Callable[[], Awaitable[Any]]) -> asyncio.Future[Any]:
        started = self._clock()
        pending = asyncio.ensure_future(load())
        self._loading[key] = pending
        pending.add_done_callback(lambda done: self._settled(key, started, done))
        return pending

    def _settled(self, key: Any, started: float, done: asyncio.Future[Any]) -> None:
        self._loading.pop(key, None)
        if done.cancelled():
            return
        error = done.exception()  # retrieved even when nobody waits (a background refresh)
        if error is not None:
            # A failed refresh keeps the old answer until it expires; a miss's caller sees the error.
            log.debug("registry answer %r not loaded: %s", key, error)
            return
        if len(self._items) >= self.max_entries and key not in self._items:
            self._items.pop(next(iter(self._items)))  # the oldest entry
        self._items[key] = (started, done.result())
