"""The queue facade: ``ArqQueue`` (Redis, many processes) and ``InProcessQueue`` (embedded).

Both enqueue by function name with a deterministic job id: enqueuing an id that is already
waiting or running is a no-op and returns ``False``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any, Protocol

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import job_key_prefix, result_key_prefix

from workers.functions import FUNCTIONS, WorkerFunction

log = logging.getLogger("terrakube.queue")


class JobQueue(Protocol):
    async def enqueue(self, function: str, *args: Any, job_id: str) -> bool: ...

    async def result(self, job_id: str, timeout: float) -> Any: ...

    async def close(self) -> None: ...


class ArqQueue:
    def __init__(self, redis: ArqRedis, queue_name: str) -> None:
        self.redis = redis
        self.queue_name = queue_name

    @classmethod
    async def connect(cls, redis_url: str, queue_name: str) -> ArqQueue:
        settings = RedisSettings.from_dsn(redis_url)
        settings.conn_retries = 1
        return cls(await create_pool(settings, default_queue_name=queue_name), queue_name)

    async def enqueue(self, function: str, *args: Any, job_id: str) -> bool:
        if function not in FUNCTIONS:
            raise ValueError(f"unknown worker function {function!r}")
        job = await self.redis.enqueue_job(function, *args, _job_id=job_id, _queue_name=self.queue_name)
        if job is None and not await self.redis.exists(job_key_prefix + job_id):
            # arq also refuses an id whose finished run still has a stored result; only a
            # waiting or running job (its job key exists) makes this enqueue a no-op.
            await self.redis.delete(result_key_prefix + job_id)
            job = await self.redis.enqueue_job(function, *args, _job_id=job_id, _queue_name=self.queue_name)
        return job is not None

    async def result(self, job_id: str, timeout: float) -> Any:
        from arq.jobs import Job

        return await Job(job_id, self.redis, _queue_name=self.queue_name).result(timeout=timeout)

    async def close(self) -> None:
        await self.redis.aclose()


class InProcessQueue:
    """Runs each job as a task of this event loop, at most ``concurrency`` at once."""

    # Finished tasks are kept (for ``result``) up to this many, oldest dropped first.
    KEEP_FINISHED = 1000

    def __init__(self, context: dict[str, Any] | None = None, concurrency: int = 4) -> None:
        self.context = context if context is not None else {}
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: OrderedDict[str, asyncio.Task[Any]] = OrderedDict()

    async def enqueue(self, function: str, *args: Any, job_id: str) -> bool:
        fn: WorkerFunction | None = FUNCTIONS.get(function)
        if fn is None:
            raise ValueError(f"unknown worker function {function!r}")
        existing = self._tasks.get(job_id)
        if existing is not None and not existing.done():
            return False
        self._tasks.pop(job_id, None)
        self._tasks[job_id] = asyncio.create_task(self._run(fn, args, job_id), name=job_id)
        self._forget_old()
        return True

    def _forget_old(self) -> None:
        finished = [k for k, t in self._tasks.items() if t.done()]
        for key in finished[: max(0, len(finished) - self.KEEP_FINISHED)]:
            del self._tasks[key]

    async def _run(self, fn: WorkerFunction, args: tuple[Any, ...], job_id: str) -> Any:
        async with self._slots:
            try:
                return await fn(self.context, *args)
            except Exception:
                log.exception("in-process job %s failed", job_id)
                raise

    async def result(self, job_id: str, timeout: float) -> Any:
        task = self._tasks.get(job_id)
        if task is None:
            raise LookupError(f"no job {job_id!r} (never enqueued, or its result was dropped)")
        return await asyncio.wait_for(asyncio.shield(task), timeout)

    async def close(self) -> None:
        tasks = [t for t in self._tasks.values() if not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
