"""Keeping users' code out of the worker's own memory and environment.

Terraform, its providers and users' scripts run as children of the worker, as the same OS user.
Linux lets a process read ``/proc/PID/environ`` and ``/proc/PID/mem`` of any "dumpable" process
of its user: a script could print ``/proc/$PPID/environ`` and get the platform's database URL,
secret key and storage credentials, whatever the executor's environment allow-list keeps out of
its own environment. The ``/proc`` files of a process that is not dumpable belong to root, so a
child of the same user cannot read them. ``execve`` makes a process dumpable again, so terraform
and scripts run as usual (and a debugger needs root to attach to the worker).

Root can read any process's ``/proc`` files: a worker meant to run untrusted code runs as a
dedicated user that is not root.
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger("terrakube.hardening")

PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4


def _prctl(option: int, value: int = 0) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(option, value, 0, 0, 0))


def forbid_inspection() -> bool:
    """Make this process not dumpable (Linux); False where that is not possible."""
    if not sys.platform.startswith("linux"):
        return False
    if _prctl(PR_SET_DUMPABLE, 0) != 0:
        log.warning("could not make the worker undumpable: scripts may read its environment")
        return False
    return True


def is_dumpable() -> bool | None:
    """None where the question has no answer (not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    return _prctl(PR_GET_DUMPABLE) == 1
