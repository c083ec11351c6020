"""What worker functions need at hand: the platform, the settings, the queue, an identity."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from domain.effects import Enqueue
from domain.live import Broker
from domain.services import Platform
from settings import Settings

if TYPE_CHECKING:
    from workers.queue import JobQueue


@dataclass
class Runtime:
    platform: Platform
    settings: Settings
    queue: JobQueue
    api_url: str
    # Carries live log chunks and job events; None where nobody watches (tests of the engine).
    broker: Broker | None = None
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    step_slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.step_slots = asyncio.Semaphore(self.settings.worker_concurrency)

    async def dispatch(self, todo: Sequence[Enqueue]) -> None:
        for effect in todo:
            await self.queue.enqueue(effect.function, *effect.args, job_id=effect.job_id)
