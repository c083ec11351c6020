"""Concurrency: N "Plan and apply" jobs on N workspaces started at once; wall time and that all COMPLETED.

    .venv/bin/python bench/concurrent_jobs.py [--jobs 20] [--stack embedded|production|both] [--concurrency 4]

The production stack is `terrakube serve` + one `terrakube worker` with TERRAKUBE_WORKER_CONCURRENCY=C
(PostgreSQL + Redis); the embedded default runs with the default concurrency.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if Path(sys.path[0] or ".").resolve() == ROOT / "bench":  # run as a script
    sys.path[0] = str(ROOT)  # bench/graphql.py would shadow graphql-core
sys.path.append(str(ROOT / "bench"))  # last: for the sibling benchmarks' helpers

from dispatch import production_stack  # noqa: E402
from job_overhead import (  # noqa: E402
    JOB_DETAIL,
    TERMINAL,
    FastApi,
    create_org,
    create_workspace,
    describe_failure,
    embedded_stack,
    make_repo,
    run_job,
    ts,
    wait_job,
)

TIMEOUT = 600.0


def wait_all(api: FastApi, job_ids: list[str], poll: float = 0.1) -> dict[str, float]:
    """Polls all jobs in one aliased query; returns when each was seen terminal (time.time())."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + TIMEOUT
    while len(seen) < len(job_ids):
        todo = [j for j in job_ids if j not in seen]
        query = "query { " + " ".join(f'j{i}: job(id: "{j}") {{ status }}' for i, j in enumerate(todo)) + " }"
        data = api(query)
        now = time.time()
        for i, job_id in enumerate(todo):
            if data[f"j{i}"]["status"] in TERMINAL:
                seen[job_id] = now
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(job_ids) - len(seen)} jobs not done after {TIMEOUT:.0f}s{api.server.output()}")
        time.sleep(poll)
    return seen


def peak_running(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


def measure(name: str, api: FastApi, repo: Path, n: int) -> bool:
    create_org(api, "bench")
    workspaces = [create_workspace(api, "bench", f"ws-{i:03d}", repo)[0] for i in range(n + 1)]
    warm, _, _ = run_job(api, workspaces[0])  # warm-up (imports, first terraform run), not counted
    wait_job(api, warm, 0.05)

    # One keep-alive client per thread, built before the clock starts (building one costs ~10 ms of CPU).
    clients = [FastApi(api.server, api.token or "") for _ in range(n)]
    began = time.time()
    with ThreadPoolExecutor(max_workers=n) as pool:
        job_ids = [job for job, _, _ in pool.map(run_job, clients, workspaces[1:])]
    all_started = time.time()
    seen = wait_all(api, job_ids)
    wall = max(seen.values()) - began
    jobs = [api(JOB_DETAIL, id=job_id)["job"] for job_id in job_ids]
    failed = [j for j in jobs if j["status"] != "COMPLETED" or any(s["status"] != "COMPLETED" for s in j["steps"])]

    print(f"\n{name}: {n} 'Plan and apply' jobs on {n} workspaces at once")
    print(f"  all {n} runJob calls (from {n} threads) returned after {all_started - began:.3f} s")
    print(f"  wall time (first runJob sent -> last COMPLETED seen)  {wall:.3f} s")
    ok = [j for j in jobs if j not in failed]
    if ok:
        durations = [ts(j["finishedAt"]) - ts(j["createdAt"]) for j in ok]
        steps = [(ts(s["startedAt"]), ts(s["finishedAt"])) for j in ok for s in j["steps"]]
        step_time = [end - start for start, end in steps]
        print(f"  per job (created -> finished)  min {min(durations):.3f}  median {statistics.median(durations):.3f}"
              f"  max {max(durations):.3f} s")
        print(f"  per step (RUNNING -> ended)    median {statistics.median(step_time):.3f}  max {max(step_time):.3f} s;"
              f"  peak steps running at once {peak_running(steps)};  busy step-seconds / wall "
              f"{sum(step_time) / wall:.2f}")
    statuses = {s: sum(1 for j in jobs if j["status"] == s) for s in sorted({j["status"] for j in jobs})}
    verdict = "all COMPLETED without error" if not failed else f"{len(failed)} FAILED or incomplete"
    print(f"  result: {verdict}  ({', '.join(f'{k}={v}' for k, v in statuses.items())})", flush=True)
    for job in failed:
        print(describe_failure(job))
    return not failed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--stack", choices=["embedded", "production", "both"], default="both")
    ap.add_argument("--concurrency", type=int, default=4, help="TERRAKUBE_WORKER_CONCURRENCY of the production worker")
    ap.add_argument("--worker-poll-delay", type=float, default=None,
                    help="experiment: run the production worker with arq poll_delay=SECONDS (app default 0.5)")
    args = ap.parse_args()
    print(f"load average before the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    base = Path(tempfile.mkdtemp(prefix="bench-concurrent-"))
    ok = True
    try:
        repo = make_repo(base / "repo")
        if args.stack in ("embedded", "both"):
            with embedded_stack(base / "up") as api:
                ok &= measure("embedded (terrakube up, defaults)", api, repo, args.jobs)
        if args.stack in ("production", "both"):
            with production_stack(base / "prod", args.concurrency, args.worker_poll_delay) as api:
                delay = "" if args.worker_poll_delay is None else f", worker poll_delay={args.worker_poll_delay:g} s"
                ok &= measure(f"production (serve + worker, TERRAKUBE_WORKER_CONCURRENCY={args.concurrency}{delay})",
                              api, repo, args.jobs)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
