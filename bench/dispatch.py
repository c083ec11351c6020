"""Dispatch latency: `runJob` returned -> the job's first step RUNNING (a worker claimed it; terraform
starts right after), on `terrakube up` and on `terrakube serve` + `terrakube worker` (PostgreSQL + Redis).

    .venv/bin/python bench/dispatch.py [--jobs 50] [--stack embedded|production|both] [--pace ended|started]

Also the production-stack helper of bench/concurrent_jobs.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if Path(sys.path[0] or ".").resolve() == ROOT / "bench":  # run as a script
    sys.path[0] = str(ROOT)  # bench/graphql.py would shadow graphql-core
sys.path.append(str(ROOT / "bench"))  # last: graphql-core must win over bench/graphql.py

from job_overhead import (  # noqa: E402
    JOB_DETAIL,
    FastApi,
    create_org,
    create_workspace,
    describe_failure,
    embedded_stack,
    make_repo,
    pct,
    run_job,
    stop,
    ts,
    wait_job,
)

from tests.procs import TERRAKUBE, Server, clean_env, free_port  # noqa: E402

GOAL_P50, GOAL_P99 = 0.150, 1.0


# -- production stack --------------------------------------------------------------------------------


def psql(sql: str) -> None:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1",
                    "-qc", sql], check=True, capture_output=True)


async def mint_admin_token(env: dict[str, str]) -> str:
    from domain.services.access_tokens import issue_admin_token
    from settings import load_settings
    from wiring import open_platform

    settings = load_settings(mode="production", database_url=env["TERRAKUBE_DATABASE_URL"],
                             secret_key=env["TERRAKUBE_SECRET_KEY"], data_dir=Path(env["TERRAKUBE_DATA_DIR"]),
                             storage_local_path=Path(env["TERRAKUBE_STORAGE_LOCAL_PATH"]))
    platform = await open_platform(settings)
    try:
        return (await issue_admin_token(platform)).secret
    finally:
        await platform.blobs.close()
        await platform.db.dispose()


def wait_worker(worker: Server, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while "Starting worker" not in worker.output():
        if worker.proc is None or worker.proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the worker did not start{worker.output()}")
        time.sleep(0.1)


def worker_argv(poll_delay: float | None) -> list[str] | None:
    """Experiment: `terrakube worker` with arq's poll_delay overridden (the app keeps arq's 0.5 s)."""
    if poll_delay is None:
        return None
    code = ("import logging; logging.basicConfig(level=logging.INFO); import cli; from settings import Mode; "
            "from workers.arq_worker import build_worker; "
            f"build_worker(cli._settings(Mode.production, None), poll_delay={poll_delay!r}).run()")
    return [sys.executable, "-P", "-c", code]  # -P: the cwd (with a storage/ dir) stays off sys.path


@contextmanager
def production_stack(base: Path, concurrency: int = 4, poll_delay: float | None = None) -> Iterator[FastApi]:
    """A fresh PostgreSQL database, `terrakube migrate`, `serve` and one `worker`; all removed after."""
    base.mkdir(parents=True, exist_ok=True)
    tag = secrets.token_hex(4)
    db, port = f"terrakube_bench_{tag}", free_port()
    env = {
        "TERRAKUBE_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{db}",
        "TERRAKUBE_SECRET_KEY": secrets.token_urlsafe(48),
        "TERRAKUBE_REDIS_URL": "redis://127.0.0.1:6379/0",
        "TERRAKUBE_REDIS_PREFIX": f"bench-{tag}",
        "TERRAKUBE_DATA_DIR": str(base / "data"),
        "TERRAKUBE_STORAGE_LOCAL_PATH": str(base / "storage"),
        "TERRAKUBE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "TERRAKUBE_WORKER_CONCURRENCY": str(concurrency),
    }
    psql(f'CREATE DATABASE "{db}"')
    servers: list[Server] = []
    try:
        subprocess.run([str(TERRAKUBE), "migrate"], env={**clean_env(), **env}, cwd=base, check=True,
                       capture_output=True)
        token = asyncio.run(mint_admin_token(env))
        serve = Server(base / "data", base, "serve", port=port, command=["serve"], env=env)
        worker = Server(base / "data", base, "worker", command=["worker"], env=env)
        if (argv := worker_argv(poll_delay)) is not None:
            worker.argv = lambda: argv  # type: ignore[method-assign]
        for server in (serve, worker):
            server.start()
            servers.append(server)
        serve.wait_healthy()
        wait_worker(worker)
        yield FastApi(serve, token)
    finally:
        for server in reversed(servers):
            stop(server)
        psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        keys = subprocess.run(["redis-cli", "-h", "127.0.0.1", "--scan", "--pattern", f"bench-{tag}:*"],
                              capture_output=True, text=True).stdout.split()
        if keys:
            subprocess.run(["redis-cli", "-h", "127.0.0.1", "del", *keys], capture_output=True)


# -- the benchmark ---------------------------------------------------------------------------------


def first_step_started(api: FastApi, job_id: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    query = "query($id: ID!) { job(id: $id) { status steps { startedAt } } }"
    while (job := api(query, id=job_id)["job"])["steps"][0]["startedAt"] is None:
        if job["status"] in ("FAILED", "CANCELLED") or time.monotonic() > deadline:
            raise SystemExit(describe_failure(api(JOB_DETAIL, id=job_id)["job"]))
        time.sleep(0.01)


def measure(api: FastApi, repo: Path, n: int, pace: str) -> dict[str, list[float]]:
    create_org(api, "bench")
    workspaces = [create_workspace(api, "bench", f"ws-{i:03d}", repo)[0] for i in range(n + 1)]
    warm, _, _ = run_job(api, workspaces[0])
    wait_job(api, warm, 0.05)
    started: list[tuple[str, float, float]] = []
    for ws in workspaces[1:]:
        job_id, sent, returned = run_job(api, ws)
        started.append((job_id, sent, returned))
        if pace == "ended":  # the worker is idle again: nothing but dispatch between runJob and RUNNING
            wait_job(api, job_id, 0.02)
        else:
            first_step_started(api, job_id)
        time.sleep(random.uniform(0.05, 0.55))  # random phase against arq's 0.5 s poll loop
    out: dict[str, list[float]] = {"returned": [], "sent": [], "between": []}
    failures: list[dict[str, Any]] = []
    for job_id, sent, returned in started:
        wait_job(api, job_id, 0.05)
        job = api(JOB_DETAIL, id=job_id)["job"]
        if job["status"] != "COMPLETED":
            failures.append(job)
            continue
        plan, apply = job["steps"]
        out["returned"].append(ts(plan["startedAt"]) - returned)
        out["sent"].append(ts(plan["startedAt"]) - sent)
        out["between"].append(ts(apply["startedAt"]) - ts(plan["finishedAt"]))
    for job in failures:
        print(describe_failure(job))
    if failures:
        print(f"{len(failures)} of {n} jobs did not complete")
    return out


def report(name: str, n: int, pace: str, out: dict[str, list[float]]) -> None:
    def line(label: str, values: list[float]) -> str:
        ms = [v * 1000 for v in values]
        return (f"  {label:<46} p50 {pct(ms, 50):7.1f}  p90 {pct(ms, 90):7.1f}  p99 {pct(ms, 99):7.1f}  "
                f"max {max(ms):7.1f}  min {min(ms):7.1f} ms")

    print(f"\n{name}: {n} 'Plan and apply' jobs on {n} workspaces, next job after the previous "
          f"{'ended' if pace == 'ended' else 'first step started'}")
    print(line("runJob returned -> first step RUNNING", out["returned"]))
    print(line("runJob sent     -> first step RUNNING", out["sent"]))
    print(line("plan step ended -> apply step RUNNING", out["between"]))
    p50, p99 = pct(out["returned"], 50), pct(out["returned"], 99)
    print(f"  goal p50 <= {GOAL_P50 * 1000:.0f} ms: {'PASS' if p50 <= GOAL_P50 else 'MISS'}   "
          f"goal p99 <= {GOAL_P99 * 1000:.0f} ms: {'PASS' if p99 <= GOAL_P99 else 'MISS'}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=50)
    ap.add_argument("--stack", choices=["embedded", "production", "both"], default="both")
    ap.add_argument("--pace", choices=["ended", "started"], default="ended",
                    help="start the next job when the previous one ended (default) or its first step started")
    ap.add_argument("--worker-poll-delay", type=float, default=None,
                    help="experiment: run the production worker with arq poll_delay=SECONDS (app default 0.5)")
    args = ap.parse_args()
    print(f"load average before the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    base = Path(tempfile.mkdtemp(prefix="bench-dispatch-"))
    try:
        repo = make_repo(base / "repo")
        if args.stack in ("embedded", "both"):
            with embedded_stack(base / "up") as api:
                report("embedded (terrakube up, SQLite, in-process queue)", args.jobs, args.pace,
                       measure(api, repo, args.jobs, args.pace))
        if args.stack in ("production", "both"):
            with production_stack(base / "prod", poll_delay=args.worker_poll_delay) as api:
                delay = "" if args.worker_poll_delay is None else f", worker poll_delay={args.worker_poll_delay:g} s"
                report(f"production (serve + worker, PostgreSQL, Redis/arq{delay})", args.jobs, args.pace,
                       measure(api, repo, args.jobs, args.pace))
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
