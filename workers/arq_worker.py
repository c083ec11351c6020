"""The arq worker process (`terrakube worker`)."""

from __future__ import annotations

from typing import Any

from arq.connections import RedisSettings
from arq.worker import Worker, func

from settings import Settings
from workers.functions import FUNCTIONS
from workers.keys import queue_name


def build_worker(settings: Settings, **overrides: Any) -> Worker:
    redis = RedisSettings.from_dsn(settings.redis_url)
    options: dict[str, Any] = {
        "functions": [func(fn, name=name, max_tries=1) for name, fn in FUNCTIONS.items()],
        "redis_settings": redis,
        "queue_name": queue_name(settings.redis_prefix),
        "max_jobs": settings.worker_concurrency,
        "job_timeout": settings.step_timeout_seconds,
        "handle_signals": True,
    }
    options.update(overrides)
    return Worker(**options)
