"""Running one child process (terraform or a script) under the step's cancel and deadline.

Each child gets its own process group, so a cancel reaches everything it spawned (providers,
a script's subshells) and nothing of the worker; whatever is left in the group when the child
ends is killed too, so a step never leaves processes behind.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from workers.executor.logs import StepLog

# Longer lines are cut into pieces of this size: the reader must not buffer without bound.
MAX_LINE = 1 << 20
_CHUNK = 1 << 16


class Cancelled(Exception):
    """The step's cancel event was set; the process group is gone."""


class TimedOut(Exception):
    """The deadline passed; the process group is gone."""


class _Lines:
    """Splits a byte stream into text lines, decoding UTF-8 across chunk boundaries."""

    def __init__(self, on_line: Callable[[str], None]) -> None:
        self._on_line = on_line
        self._buffer = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> None:
        self._buffer += self._decoder.decode(data)
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            self._on_line(line.rstrip("\r"))
        while len(self._buffer) >= MAX_LINE:
            self._on_line(self._buffer[:MAX_LINE])
            self._buffer = self._buffer[MAX_LINE:]

    def close(self) -> None:
        self._buffer += self._decoder.decode(b"", final=True)
        if self._buffer:
            self._on_line(self._buffer.rstrip("\r"))
            self._buffer = ""


async def _pump(stream: asyncio.StreamReader | None, sink: Callable[[bytes], None]) -> None:
    if stream is None:
        return
    while data := await stream.read(_CHUNK):
        sink(data)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _drain(pumps: list[asyncio.Task[None]], wait: float) -> None:
    """Let the readers reach EOF; a descendant that escaped the group could hold a pipe forever."""
    if not pumps:
        return
    _, pending = await asyncio.wait(pumps, timeout=wait)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pumps, return_exceptions=True)


async def supervise(
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    cancel: asyncio.Event,
    timeout: float | None,
    grace: float,
    on_stdout: Callable[[bytes], None],
    on_stderr: Callable[[bytes], None] | None = None,
) -> int:
    """Run ``argv``; stdout goes to ``on_stdout`` and stderr to ``on_stderr`` (or merged into stdout).

    ``timeout`` None means no deadline. Raises ``Cancelled``/``TimedOut`` once the group is gone.
    """
    if cancel.is_set():
        raise Cancelled()
    if timeout is not None and timeout <= 0:
        raise TimedOut()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,  # nothing may ever wait for input that cannot come
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE if on_stderr is not None else asyncio.subprocess.STDOUT,
        start_new_session=True,  # new session => new process group whose id is the child's pid
    )
    pgid = proc.pid
    pumps = [asyncio.create_task(_pump(proc.stdout, on_stdout))]
    if on_stderr is not None:
        pumps.append(asyncio.create_task(_pump(proc.stderr, on_stderr)))
    exited = asyncio.create_task(proc.wait())
    cancelled = asyncio.create_task(cancel.wait())
    stop: type[Exception] | None = None
    try:
        done, _ = await asyncio.wait({exited, cancelled}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if exited not in done:
            stop = Cancelled if cancelled in done else TimedOut
            # SIGINT first: terraform then stops gracefully and releases its state lock.
            _signal_group(pgid, signal.SIGINT)
            try:
                await asyncio.wait_for(asyncio.shield(exited), grace)
            except TimeoutError:
                _signal_group(pgid, signal.SIGKILL)
                await exited
    finally:
        cancelled.cancel()
        if proc.returncode is None:  # we are being cancelled ourselves: no grace, just kill
            _signal_group(pgid, signal.SIGKILL)
            await exited
        # Leftovers (a script's background job) die with the child. Output they or the child
        # left in the pipe stays readable after they die, so nothing is lost by killing first.
        _signal_group(pgid, signal.SIGKILL)
        await _drain(pumps, max(grace, 2.0))
    if stop is not None:
        raise stop()
    return proc.returncode if proc.returncode is not None else -1


async def run_process(
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    log: StepLog,
    cancel: asyncio.Event,
    timeout: float | None,
    grace: float = 5.0,
) -> int:
    """Run a process, streaming its merged stdout and stderr line by line into ``log``."""
    lines = _Lines(log.emit)
    try:
        return await supervise(argv, cwd, env, cancel, timeout, grace, lines.feed)
    finally:
        lines.close()


async def capture_process(
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    log: StepLog,
    cancel: asyncio.Event,
    timeout: float | None,
    grace: float = 5.0,
    max_bytes: int = 64 << 20,
) -> tuple[int, bytes]:
    """Run a process keeping its stdout out of the log (it may hold secrets); stderr is logged.

    Returns the exit code and stdout; stdout beyond ``max_bytes`` makes the result an error (-1).
    """
    out = bytearray()
    overflow = False

    def keep(data: bytes) -> None:
        nonlocal overflow
        if len(out) + len(data) > max_bytes:
            overflow = True
        else:
            out.extend(data)

    lines = _Lines(log.emit)
    try:
        code = await supervise(argv, cwd, env, cancel, timeout, grace, keep, lines.feed)
    finally:
        lines.close()
    if overflow:
        log.emit(f"output of {argv[0]} exceeded {max_bytes} bytes and was discarded")
        return -1, b""
    return code, bytes(out)
