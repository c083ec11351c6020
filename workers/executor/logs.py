"""The step log: the single choke point every output line of a step passes through.

Masking happens here and only here, before the line reaches the spool file or any listener,
so no other code path (live streaming, blob upload) can ever see a secret in clear.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

MASK = "***"
# Fragments of a multi-line secret shorter than this are not masked on their own: masking
# every "}" or "-----" in the log would destroy it while protecting nothing.
MIN_FRAGMENT = 4

LineListener = Callable[[int, str], None]

_logger = logging.getLogger("terrakube.executor.logs")


def _variants(value: str) -> set[str]:
    """The spellings of a secret that may show up in output.

    Terraform and scripts print values JSON-escaped as often as raw, and line-oriented capture
    splits a multi-line secret into lines, so each of those forms is masked too.
    """
    forms = {value}
    escaped = json.dumps(value, ensure_ascii=False)[1:-1]
    forms.add(escaped)
    if "\n" in value:
        forms.update(part for part in value.splitlines() if len(part.strip()) >= MIN_FRAGMENT)
    return {form for form in forms if form}


class StepLog:
    """Collects a step's output lines into a spool file in the step's temp dir.

    ``emit`` masks, appends and notifies listeners. ``on_line`` listeners receive the byte offset
    at which the line *starts* in the spool file, so a reader who already holds N bytes of backlog
    can skip every line with ``offset < N`` and get neither a gap nor a duplicate.
    """

    def __init__(
        self,
        path: Path,
        sensitive_values: Iterable[str] = (),
        listeners: Iterable[LineListener] = (),
    ) -> None:
        self.path = path
        self._size = 0
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._listeners: list[LineListener] = list(listeners)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Binary append: the offset we report is a byte offset, which text mode would blur.
        self._file: BinaryIO | None = path.open("ab")
        self._size = path.stat().st_size
        self.add_sensitive(sensitive_values)

    @property
    def size(self) -> int:
        """Bytes written to the spool file so far (the offset of the next line)."""
        return self._size

    def add_listener(self, listener: LineListener) -> None:
        self._listeners.append(listener)

    def add_sensitive(self, values: Iterable[str]) -> None:
        """Add values to mask from now on (e.g. a token minted during the step)."""
        for value in values:
            if value:
                self._secrets.update(_variants(value))
        if self._secrets:
            # Longest first: the regex engine takes the first alternative that matches, so a
            # secret that contains another one is masked whole rather than leaving a tail.
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(secret) for secret in ordered))

    def mask(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern is not None else text

    def emit(self, text: str) -> None:
        """Mask, spool and publish one line (text holding newlines becomes several lines)."""
        # Mask the whole text before splitting so a secret spanning the newline is still caught.
        masked = self.mask(text)
        for line in masked.split("\n") if masked else [""]:
            self._write(line.rstrip("\r"))

    def _write(self, line: str) -> None:
        if self._file is None:
            raise RuntimeError("StepLog is closed")
        data = (line + "\n").encode("utf-8", errors="replace")
        offset = self._size
        self._file.write(data)
        # Flush per line: the spool is the step's record if the worker dies mid-step.
        self._file.flush()
        self._size += len(data)
        for listener in self._listeners:
            try:
                listener(offset, line)
            except Exception:  # a broken live stream must never fail the terraform run
                _logger.exception("log listener failed")

    def text(self) -> str:
        """The whole spooled log (tests, short logs); large logs should be streamed from ``path``."""
        return self.path.read_text(encoding="utf-8", errors="replace")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> StepLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
