"""The arq worker process (`terrakube worker`)."""

from __future__ import annotations

from typing import Any

from arq.connections import RedisSettings
from arq.cron import cron
from arq.worker import Worker, func

from settings import Settings
from workers.functions import FUNCTIONS
from workers.keys import queue_name


def sweep_schedule(seconds: float) -> dict[str, set[int]]:
    """arq cron fields that run the sweep every ``seconds``, rounded down to a divisor of a minute
    (or, from a minute up, of an hour): cron fields repeat each minute/hour, so any other interval
    would come out uneven (45 s would give gaps of 45 s and 15 s)."""
    every = max(1, int(seconds))
    if every < 60:
        return {"second": set(range(0, 60, _divisor_at_most(60, every)))}
    return {"second": {0}, "minute": set(range(0, 60, _divisor_at_most(60, every // 60)))}


def _divisor_at_most(whole: int, limit: int) -> int:
    return max(d for d in range(1, min(limit, whole) + 1) if whole % d == 0)


def build_worker(settings: Settings, **overrides: Any) -> Worker:
    redis = RedisSettings.from_dsn(settings.redis_url)

    async def on_startup(ctx: dict[str, Any]) -> None:
        from app import open_runtime

        ctx["runtime"], ctx["close_runtime"] = await open_runtime(settings)

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        if "close_runtime" in ctx:
            await ctx["close_runtime"]()

    step_timeout = settings.step_timeout_seconds + 300  # terraform's own limit fires first
    functions = [
        func(fn, name=name, max_tries=1, timeout=step_timeout if name in ("run_step", "run_hook") else 600)
        for name, fn in FUNCTIONS.items()
    ]
    options: dict[str, Any] = {
        "functions": functions,
        "cron_jobs": [
            cron(FUNCTIONS["sweep"], name=f"{settings.redis_prefix}:sweep", run_at_startup=True, unique=True,
                 max_tries=1, timeout=120, **sweep_schedule(settings.sweep_seconds))
        ],
        "redis_settings": redis,
        "queue_name": queue_name(settings.redis_prefix),
        "max_jobs": settings.worker_concurrency,
        "job_timeout": step_timeout,
        "handle_signals": True,
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "keep_result": 60,
        "poll_delay": settings.queue_poll_seconds,
    }
    options.update(overrides)
    return Worker(**options)
