"""The queue facade (workers/queue.py): the same tests for the in-process queue and for arq on
the local Redis, plus a real `terrakube worker` process consuming the arq queue."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from settings import Settings
from tests.services import REDIS_HOST, REDIS_PORT, REDIS_URL, require
from workers.arq_worker import build_worker, sweep_schedule
from workers.keys import ping_job_id, queue_name
from workers.queue import ArqQueue, InProcessQueue, JobQueue

RESULT_TIMEOUT = 30.0

# arq 0.28 closes its pool with redis-py's deprecated close(); not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")


@dataclass
class Harness:
    """A queue plus the way its jobs get run: in-process jobs run by themselves on this loop;
    arq jobs run when ``run_worker()`` starts a burst worker on the test's queue."""

    kind: str
    queue: JobQueue
    settings: Settings | None = None
    job_ids: list[str] = field(default_factory=list)

    def new_job_id(self) -> str:
        job_id = ping_job_id(secrets.token_hex(8))
        self.job_ids.append(job_id)
        return job_id

    async def run_worker(self) -> None:
        if self.settings is None:
            return
        worker = build_worker(self.settings, burst=True, handle_signals=False, poll_delay=0.05)
        try:
            await asyncio.wait_for(worker.async_run(), RESULT_TIMEOUT)
        finally:
            await worker.close()


def redis_settings(prefix: str) -> Settings:
    # The worker opens the platform at startup (database, storage); a scratch SQLite will do.
    import tempfile

    data_dir = Path(tempfile.mkdtemp(prefix="tkqueue-"))
    return Settings(redis_url=REDIS_URL, redis_prefix=prefix, secret_key="q" * 40, data_dir=data_dir)


async def delete_redis_keys(queue: ArqQueue, prefix: str, job_ids: list[str]) -> None:
    keys = [key async for key in queue.redis.scan_iter(match=f"{prefix}*")]
    for job_id in job_ids:
        keys += [f"arq:{kind}:{job_id}" for kind in ("job", "result", "in-progress", "retry")]
    if keys:
        await queue.redis.delete(*keys)


@pytest.fixture(params=["inprocess", "arq"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    if request.param == "inprocess":
        queue = InProcessQueue(concurrency=2)
        try:
            yield Harness("inprocess", queue)
        finally:
            await queue.close()
        return
    require("Redis", REDIS_HOST, REDIS_PORT)
    prefix = f"tktest-{secrets.token_hex(6)}"
    settings = redis_settings(prefix)
    arq_queue = await ArqQueue.connect(REDIS_URL, queue_name(prefix))
    h = Harness("arq", arq_queue, settings)
    try:
        yield h
    finally:
        try:
            await delete_redis_keys(arq_queue, prefix, h.job_ids)
        finally:
            await arq_queue.close()


async def test_ping_returns_its_nonce(harness: Harness) -> None:
    nonce = secrets.token_hex(8)
    job_id = harness.new_job_id()
    assert await harness.queue.enqueue("ping", nonce, job_id=job_id) is True
    await harness.run_worker()
    result = await harness.queue.result(job_id, timeout=RESULT_TIMEOUT)
    assert result["nonce"] == nonce
    assert result["worker"].endswith(f":{os.getpid()}")  # both ran in this process


async def test_duplicate_job_id_while_pending_is_a_no_op(harness: Harness) -> None:
    job_id = harness.new_job_id()
    assert await harness.queue.enqueue("ping", "first", job_id=job_id) is True
    assert await harness.queue.enqueue("ping", "second", job_id=job_id) is False
    other = harness.new_job_id()
    assert await harness.queue.enqueue("ping", "other", job_id=other) is True
    await harness.run_worker()
    assert (await harness.queue.result(job_id, timeout=RESULT_TIMEOUT))["nonce"] == "first"
    assert (await harness.queue.result(other, timeout=RESULT_TIMEOUT))["nonce"] == "other"


async def test_unknown_function_is_refused(harness: Harness) -> None:
    job_id = harness.new_job_id()
    with pytest.raises(ValueError, match="no_such_function"):
        await harness.queue.enqueue("no_such_function", "x", job_id=job_id)
    # Nothing was queued under that id: it can still be used.
    assert await harness.queue.enqueue("ping", "after", job_id=job_id) is True
    await harness.run_worker()
    assert (await harness.queue.result(job_id, timeout=RESULT_TIMEOUT))["nonce"] == "after"


async def test_finished_job_id_can_be_enqueued_again(harness: Harness, request: pytest.FixtureRequest) -> None:
    """The facade promises a no-op only while the id is waiting or running ("advance job N" is
    enqueued again after every step)."""
    job_id = harness.new_job_id()
    assert await harness.queue.enqueue("ping", "first", job_id=job_id) is True
    await harness.run_worker()
    assert (await harness.queue.result(job_id, timeout=RESULT_TIMEOUT))["nonce"] == "first"
    assert await harness.queue.enqueue("ping", "second", job_id=job_id) is True
    await harness.run_worker()
    assert (await harness.queue.result(job_id, timeout=RESULT_TIMEOUT))["nonce"] == "second"


async def test_many_jobs_all_complete(harness: Harness) -> None:
    nonces = {harness.new_job_id(): secrets.token_hex(4) for _ in range(12)}
    for job_id, nonce in nonces.items():
        assert await harness.queue.enqueue("ping", nonce, job_id=job_id) is True
    await harness.run_worker()
    results = await asyncio.gather(*(harness.queue.result(j, timeout=RESULT_TIMEOUT) for j in nonces))
    assert [r["nonce"] for r in results] == list(nonces.values())


async def test_terrakube_worker_process_consumes_the_queue(tmp_path: Path) -> None:
    require("Redis", REDIS_HOST, REDIS_PORT)
    prefix = f"tktest-{secrets.token_hex(6)}"
    queue = await ArqQueue.connect(REDIS_URL, queue_name(prefix))
    job_id = ping_job_id(secrets.token_hex(8))
    env = {
        **os.environ,
        "TERRAKUBE_MODE": "production",
        "TERRAKUBE_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
        "TERRAKUBE_SECRET_KEY": secrets.token_urlsafe(36),  # 48 characters
        "TERRAKUBE_REDIS_URL": REDIS_URL,
        "TERRAKUBE_REDIS_PREFIX": prefix,
    }
    log_path = tmp_path / "worker.log"
    command = [str(Path(sys.executable).parent / "terrakube"), "worker"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        nonce = secrets.token_hex(8)
        assert await queue.enqueue("ping", nonce, job_id=job_id) is True
        try:
            result = await queue.result(job_id, timeout=RESULT_TIMEOUT)
        except TimeoutError:
            pytest.fail(f"the worker did not answer; exit code {process.poll()}, log:\n{log_path.read_text()}")
        assert result["nonce"] == nonce
        assert result["worker"].endswith(f":{process.pid}"), result
        assert process.poll() is None  # still serving

        process.send_signal(signal.SIGTERM)
        exit_code = await asyncio.to_thread(process.wait, 20)
        assert exit_code == 0, log_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            await asyncio.to_thread(process.wait, 10)
        try:
            await delete_redis_keys(queue, prefix, [job_id])
        finally:
            await queue.close()


@pytest.mark.parametrize(
    ("seconds", "schedule"),
    [
        (10, {"second": {0, 10, 20, 30, 40, 50}}),
        (45, {"second": {0, 30}}),  # 45 does not divide a minute: 30 keeps the gaps equal
        (0.2, {"second": set(range(60))}),
        (60, {"second": {0}, "minute": set(range(60))}),
        (600, {"second": {0}, "minute": {0, 10, 20, 30, 40, 50}}),
        (7 * 3600, {"second": {0}, "minute": {0}}),
    ],
)
def test_sweep_schedule_keeps_equal_gaps(seconds: float, schedule: dict[str, set[int]]) -> None:
    assert sweep_schedule(seconds) == schedule
