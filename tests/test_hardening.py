"""A worker is not dumpable, so the steps it runs (same OS user) cannot read its environment or
memory through /proc. Shown with two processes of an unprivileged user: a child reads its
parent's /proc/PID/environ when the parent is dumpable, and cannot once the parent called
``forbid_inspection`` (the flag `terrakube worker` and `terrakube up` set at start)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from workers import hardening

NOBODY = 65534

linux_root = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0,
    reason="needs Linux and root, to run the two processes as an unprivileged user",
)


def _child_reads_parent_environ(harden: bool) -> bool:
    """Fork; the fork becomes `nobody`, is made dumpable or not, and runs `cat` on its own
    environ as its child would (same user). Returns whether cat could read it."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the forked process reports through its exit code
        code = 3
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            # Dumpable, as a process that did not change its user is (setuid cleared the flag).
            ok = hardening._prctl(hardening.PR_SET_DUMPABLE, 1) == 0
            if harden:
                ok = ok and hardening.forbid_inspection()
            if ok and hardening.is_dumpable() is (not harden):
                done = subprocess.run(["cat", f"/proc/{os.getpid()}/environ"], capture_output=True)
                code = 0 if done.returncode == 0 and b"PATH=" in done.stdout else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code in (0, 1), f"the forked process could not set itself up (exit {code})"
    return code == 0


@linux_root
def test_a_child_of_the_same_user_cannot_read_an_undumpable_parent() -> None:
    assert _child_reads_parent_environ(harden=False) is True  # the leak the flag closes
    assert _child_reads_parent_environ(harden=True) is False


def test_forbid_inspection_reports_what_it_did() -> None:
    if not sys.platform.startswith("linux"):
        assert hardening.forbid_inspection() is False and hardening.is_dumpable() is None
        return
    code = (
        "from workers import hardening as h; before = h.is_dumpable(); done = h.forbid_inspection(); "
        "print(before, done, h.is_dumpable())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.stdout.split() == ["True", "True", "False"]
