"""Carries live log chunks and job events: ``RedisBroker`` across processes (a stream per job
for replay, a wake-up channel, pub/sub for events), ``MemoryBroker`` inside `terrakube up`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict

from redis.asyncio import Redis
from redis.exceptions import RedisError

from domain.live import JobEvent, LogChunk, LogGone, channels
from workers import keys

log = logging.getLogger("terrakube.broker")

# A job's stream keeps at most this many chunks (each ≤ 16 KB) and lives this long after the
# job ends; readers that need older data read the stored log.
STREAM_MAX_CHUNKS = 20_000
STREAM_TTL_AFTER_END = 3600
EVENT_QUEUE = 1000  # events a slow subscriber may have pending before it is dropped
ACCESS_RETRY_SECONDS = 1.0


class SubscriberTooSlow(Exception):
    pass


class MemoryBroker:
    def __init__(self, max_chunks: int = STREAM_MAX_CHUNKS) -> None:
        self.max_chunks = max_chunks
        self._streams: dict[str, list[LogChunk]] = defaultdict(list)
        self._dropped: dict[str, int] = defaultdict(int)  # chunks trimmed from the stream's head
        self._changed: dict[str, asyncio.Condition] = defaultdict(asyncio.Condition)
        self._subscribers: dict[str, set[asyncio.Queue[JobEvent | None]]] = defaultdict(set)

    async def append(self, job_id: str, chunks: Sequence[LogChunk]) -> None:
        stream = self._streams[job_id]
        stream.extend(chunks)
        if len(stream) > self.max_chunks:
            excess = len(stream) - self.max_chunks
            del stream[:excess]
            self._dropped[job_id] += excess
        async with self._changed[job_id]:
            self._changed[job_id].notify_all()

    async def tail(self, job_id: str) -> AsyncIterator[LogChunk]:  # type: ignore[override]
        position = 0  # absolute index of the next chunk
        while True:
            stream, dropped = self._streams[job_id], self._dropped[job_id]
            if position < dropped:
                raise LogGone("the live log moved past this reader")
            while position - dropped < len(stream):
                yield stream[position - dropped]
                position += 1
                stream, dropped = self._streams[job_id], self._dropped[job_id]
            condition = self._changed[job_id]
            async with condition:
                if position - self._dropped[job_id] >= len(self._streams[job_id]):
                    try:
                        await asyncio.wait_for(condition.wait(), timeout=1.0)
                    except TimeoutError:
                        pass

    async def publish(self, events: Sequence[JobEvent]) -> None:
        for event in events:
            for channel in channels(event):
                for queue in list(self._subscribers[channel]):
                    try:
                        queue.put_nowait(event)
                    except asyncio.QueueFull:  # never let one slow reader hold up the rest
                        self._subscribers[channel].discard(queue)
                        _poison(queue)

    @asynccontextmanager
    async def events(self, channel: str) -> AsyncIterator[AsyncIterator[JobEvent]]:
        """Subscribed on entry, so nothing published after entry is missed."""
        queue: asyncio.Queue[JobEvent | None] = asyncio.Queue(maxsize=EVENT_QUEUE)
        self._subscribers[channel].add(queue)

        async def read() -> AsyncIterator[JobEvent]:
            while True:
                event = await queue.get()
                if event is None:
                    raise SubscriberTooSlow(f"the subscriber fell behind by more than {EVENT_QUEUE} events")
                yield event

        try:
            yield read()
        finally:
            self._subscribers[channel].discard(queue)

    async def job_ended(self, job_id: str) -> None:
        # Kept briefly for late readers; memory is bounded by the per-job cap.
        asyncio.get_running_loop().call_later(STREAM_TTL_AFTER_END, self._forget, job_id)

    def _forget(self, job_id: str) -> None:
        self._streams.pop(job_id, None)
        self._dropped.pop(job_id, None)

    async def access_changed(self) -> None:
        return None  # one process: its own commit already cleared its caches

    async def watch_access(self, on_live: Callable[[bool], None], on_change: Callable[[], None]) -> None:
        on_live(True)
        await asyncio.Event().wait()

    async def close(self) -> None:
        return None


def _poison(queue: asyncio.Queue[JobEvent | None]) -> None:
    """Make room for the end marker so the slow reader learns why it stopped."""
    while queue.full():
        queue.get_nowait()
    queue.put_nowait(None)


class RedisBroker:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._wakers: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._listener: asyncio.Task[None] | None = None

    @classmethod
    def connect(cls, url: str, prefix: str) -> RedisBroker:
        return cls(Redis.from_url(url), prefix)

    async def append(self, job_id: str, chunks: Sequence[LogChunk]) -> None:
        stream = keys.log_stream(self.prefix, job_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            for chunk in chunks:
                pipe.xadd(stream, {"c": json.dumps(asdict(chunk))}, maxlen=STREAM_MAX_CHUNKS, approximate=True)
            pipe.publish(keys.log_wake(self.prefix, job_id), "1")
            await pipe.execute()

    async def tail(self, job_id: str) -> AsyncIterator[LogChunk]:  # type: ignore[override]
        stream = keys.log_stream(self.prefix, job_id)
        last: str | None = None
        self._ensure_listener()
        waker = asyncio.Event()
        self._wakers[job_id].add(waker)
        try:
            while True:
                # Cleared before reading: a wake-up arriving during the read is not lost.
                waker.clear()
                entries = await self.redis.xrange(stream, min=f"({last}" if last else "-", count=200)
                for entry_id, fields in entries:
                    last = entry_id.decode()
                    yield LogChunk(**json.loads(fields[b"c"]))
                if entries:
                    continue
                try:  # until the job's wake-up channel fires, or 1 s (the safety net)
                    await asyncio.wait_for(waker.wait(), timeout=1.0)
                except TimeoutError:
                    pass
        finally:
            self._wakers[job_id].discard(waker)

    def _ensure_listener(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen(), name="log-wakeups")

    async def _listen(self) -> None:
        """One pub/sub connection per process wakes every local reader of a job."""
        pubsub = self.redis.pubsub()
        await pubsub.psubscribe(keys.log_wake(self.prefix, "*"))
        cut = len(keys.log_wake(self.prefix, ""))
        try:
            async for message in pubsub.listen():
                if message.get("type") != "pmessage":
                    continue
                job_id = message["channel"].decode()[cut:]
                for waker in list(self._wakers.get(job_id, ())):
                    waker.set()
        finally:
            await pubsub.aclose()

    async def publish(self, events: Sequence[JobEvent]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for event in events:
                payload = json.dumps(event.as_dict())
                for channel in channels(event):
                    pipe.publish(keys.event_channel(self.prefix, channel), payload)
            await pipe.execute()

    @asynccontextmanager
    async def events(self, channel: str) -> AsyncIterator[AsyncIterator[JobEvent]]:
        """Subscribed on entry, so nothing published after entry is missed."""
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(keys.event_channel(self.prefix, channel))

        async def read() -> AsyncIterator[JobEvent]:
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    yield JobEvent.from_dict(json.loads(message["data"]))

        try:
            yield read()
        finally:
            await pubsub.aclose()

    async def job_ended(self, job_id: str) -> None:
        await self.redis.expire(keys.log_stream(self.prefix, job_id), STREAM_TTL_AFTER_END)

    async def access_changed(self) -> None:
        await self.redis.publish(keys.access_channel(self.prefix), "1")

    async def watch_access(self, on_live: Callable[[bool], None], on_change: Callable[[], None]) -> None:
        """Pub/sub delivers only to connected subscribers, so whatever broke the subscription may
        have hidden a change: the caller is told it is not live until subscribed again."""
        channel = keys.access_channel(self.prefix)
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(channel)
                async for message in pubsub.listen():
                    if message.get("type") == "subscribe":
                        on_live(True)
                    elif message.get("type") == "message":
                        on_change()
            except (ConnectionError, OSError, RedisError) as exc:
                log.warning("access change subscription lost (%s); retrying in %.0f s", exc, ACCESS_RETRY_SECONDS)
            finally:
                on_live(False)
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(ACCESS_RETRY_SECONDS)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
        await self.redis.aclose()
