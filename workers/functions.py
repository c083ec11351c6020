"""Functions a worker runs. The job engine adds its own here; every one is registered by name."""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

WorkerFunction = Callable[..., Awaitable[Any]]


async def ping(ctx: dict[str, Any], nonce: str) -> dict[str, str]:
    """Proves a worker is consuming the queue: answers which process took the job."""
    return {"nonce": nonce, "worker": f"{socket.gethostname()}:{os.getpid()}"}


FUNCTIONS: dict[str, WorkerFunction] = {"ping": ping}
