"""The executor: runs ONE step of a job (terraform and scripts) in a fresh working directory.

It knows nothing of the database: the scheduler passes a ``StepSpec`` and persists the
``StepOutcome``; every output line goes through ``StepLog.emit`` (masking, spool, listeners).
"""

from domain.archive import UnsafeArchive, extract_tarball
from workers.executor.logs import StepLog
from workers.executor.process import Cancelled, TimedOut, run_process
from workers.executor.runner import StepOutcome, StepSpec, run_step
from workers.executor.scripts import Command, ScriptContext, run_commands
from workers.executor.workdir import (
    CheckoutError,
    TerraformVariable,
    checkout_git,
    write_backend_override,
    write_cli_config,
    write_variables,
)

__all__ = [
    "Cancelled",
    "CheckoutError",
    "Command",
    "ScriptContext",
    "StepLog",
    "StepOutcome",
    "StepSpec",
    "TerraformVariable",
    "TimedOut",
    "UnsafeArchive",
    "checkout_git",
    "extract_tarball",
    "run_commands",
    "run_process",
    "run_step",
    "write_backend_override",
    "write_cli_config",
    "write_variables",
]
