"""Live log latency: a line's emit time (inside the line) -> a `jobLogs` subscriber receiving it.

    .venv/bin/python bench/logs.py [--single 2000] [--jobs 20] [--lines 1000] [--rate 200] [--workers 1]

Production stack: fresh PostgreSQL database, `terrakube migrate`, `terrakube serve`, `terrakube worker`
(TERRAKUBE_WORKER_CONCURRENCY = jobs / workers) on Redis; everything is removed at the end. A run starts N jobs
on N workspaces at once, each a customScripts step printing `L <i> <time.time()>` at --rate lines/s, with one
subscriber (own websocket) per job subscribed right after runJob. Lines emitted before the subscribe message was
sent count as backlog (not in the latency). The Redis stream entry id (ms) of each chunk splits a line's latency
into worker (emit -> XADD) and API (XADD -> client receive).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if Path(sys.path[0] or ".").resolve() == ROOT / "bench":  # run as a script
    sys.path[0] = str(ROOT)  # bench/graphql.py would shadow graphql-core

import redis.asyncio as aioredis  # noqa: E402

from tests.cluster import Cluster, _descendants, _forget_redis_keys, _mint_admin_token, _pg_admin  # noqa: E402
from tests.gql_ws import SubscriptionError, connect  # noqa: E402
from tests.procs import TERRAKUBE, Api, Server, clean_env  # noqa: E402
from tests.services import PG_HOST, PG_PORT, REDIS_URL  # noqa: E402
from workers.keys import log_stream  # noqa: E402

GOAL_P50, GOAL_P99 = 50.0, 300.0  # ms
LOGS = "subscription($j: ID!) { jobLogs(jobId: $j) { stepId stepNumber offset text } }"
TCL = """flow:
  - type: customScripts
    name: Emit
    step: 100
    commands:
      - runtime: PYTHON
        priority: 1
        script: |
          import time
          t0 = time.time()
          for i in range({n}):
              time.sleep(max(0.0, t0 + i / {rate} - time.time()))
              print(f"L {{i}} {{time.time():.6f}}", flush=True)
"""


def pct(values: list[float], p: float) -> float:  # nearest rank
    return sorted(values)[max(0, math.ceil(p / 100 * len(values)) - 1)] if values else math.nan


def summary(values: list[float]) -> str:
    return "  ".join(f"p{p} {pct(values, p):6.1f}" for p in (50, 90, 99)) + f"  max {max(values, default=math.nan):6.1f}"


def sched(pid: int) -> tuple[float, float]:
    """(CPU s, run-queue wait s) of the process's main thread (an event loop's): /proc/<pid>/schedstat."""
    run, wait, _ = Path(f"/proc/{pid}/schedstat").read_text().split()
    return int(run) / 1e9, int(wait) / 1e9


@contextmanager
def production_cluster(base: Path, concurrency: int, workers: int) -> Iterator[Cluster]:
    """tests.cluster's `cluster` fixture as a context manager, with the worker concurrency set."""
    db_name, prefix = f"terrakube_bench_{uuid.uuid4().hex[:12]}", f"bench-logs-{secrets.token_hex(6)}"
    serve = Server(data_dir=base / "data", log_dir=base, name="serve", command=["serve"])
    env = {
        "TERRAKUBE_MODE": "production",
        "TERRAKUBE_DATABASE_URL": f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/{db_name}",
        "TERRAKUBE_SECRET_KEY": secrets.token_urlsafe(48),
        "TERRAKUBE_REDIS_URL": REDIS_URL,
        "TERRAKUBE_REDIS_PREFIX": prefix,
        "TERRAKUBE_DATA_DIR": str(base / "data"),
        "TERRAKUBE_STORAGE_LOCAL_PATH": str(base / "data" / "storage"),
        "TERRAKUBE_PUBLIC_URL": serve.base_url,
        "TERRAKUBE_ALLOW_FILE_SOURCES": "true",  # the benchmark's code is a local repository
        "TERRAKUBE_WORKER_CONCURRENCY": str(concurrency),
        "CHECKPOINT_DISABLE": "1",
    }
    serve.env = env
    (base / "data").mkdir(parents=True)
    asyncio.run(_pg_admin(f'CREATE DATABASE "{db_name}"'))
    cluster: Cluster | None = None
    try:
        subprocess.run([str(TERRAKUBE), "migrate"], env={**clean_env(), **env}, cwd=base, check=True,
                       capture_output=True, timeout=120)
        cluster = Cluster(base, env, serve, Api(serve, asyncio.run(_mint_admin_token(env, base / "data"))))
        serve.start()
        for i in range(workers):
            cluster.start_worker(f"worker-{i + 1}")
        serve.wait_healthy()
        deadline = time.monotonic() + 60
        while not all("Starting worker" in w.output() for w in cluster.workers):
            if time.monotonic() > deadline:
                raise SystemExit(f"a worker did not start{cluster.output()}")
            time.sleep(0.1)
        yield cluster
    finally:
        for worker in cluster.workers if cluster else []:
            for pid in _descendants(worker.proc.pid) if worker.proc else []:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            worker.kill()
        serve.kill()
        try:
            asyncio.run(_forget_redis_keys(env["TERRAKUBE_DATABASE_URL"], prefix))  # before the DB (job ids) goes
        finally:
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))


def make_repo(path: Path) -> Path:
    env = {**os.environ, **{f"GIT_{a}_{b}": "bench" for a in ("AUTHOR", "COMMITTER") for b in ("NAME", "EMAIL")}}
    path.mkdir(parents=True)
    (path / "main.tf").write_text('resource "terraform_data" "x" {\n  input = "x"\n}\n')
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "bench"]):
        subprocess.run(["git", *args], cwd=path, env=env, check=True, capture_output=True)
    return path


async def follow(api: Api, ws_id: str, template: str, ready: asyncio.Barrier) -> dict[str, Any]:
    """Opens a websocket, waits for the others, runs the job and reads its log to the end."""
    async with connect(api.server.base_url, api.token) as sock:
        await ready.wait()
        job = await asyncio.to_thread(api.mutate, "runJob", "RunJobInput", "... on Job { id }",
                                      workspaceId=ws_id, templateName=template)
        subscribed, buf, chunks, error = time.time(), "", [], None
        try:
            async for data in sock.subscribe(LOGS, j=job["id"]):
                now = time.time()
                buf += data["jobLogs"]["text"]
                *lines, buf = buf.split("\n")
                chunks.append((data["jobLogs"]["offset"], now, lines))
        except SubscriptionError as exc:  # the lines it did not deliver count as lost
            error = f"{time.time() - subscribed:.1f} s after subscribing: {exc}"
    return {"job": job["id"], "subscribed": subscribed, "chunks": chunks, "error": error}


async def xadd_times(prefix: str, job_ids: list[str]) -> dict[tuple[str, int], float]:
    """(job, chunk offset) -> when Redis appended the chunk (stream entry id, ms)."""
    client, out = aioredis.from_url(REDIS_URL), {}
    for job_id in job_ids:
        for entry_id, fields in await client.xrange(log_stream(prefix, job_id)):
            out[(job_id, json.loads(fields[b"c"])["offset"])] = int(entry_id.decode().split("-")[0]) / 1000
    await client.aclose()
    return out


def measure(cluster: Cluster, repo: Path, name: str, jobs: int, lines: int, rate: int) -> bool:
    api, org = cluster.api, f"bench-{name}"
    api.mutate("createOrganization", "CreateOrganizationInput", "... on Organization { id }", name=org)
    api.mutate("createTemplate", "CreateTemplateInput", "... on Template { id }", organization=org, name="emit",
               tcl=TCL.format(n=lines, rate=rate))
    spaces = [api.mutate("createWorkspace", "CreateWorkspaceInput", "... on Workspace { id }", organization=org,
                         name=f"ws-{i:02d}", source=f"file://{repo}")["id"] for i in range(jobs)]
    load = os.getloadavg()

    async def run() -> list[dict[str, Any]]:
        ready = asyncio.Barrier(jobs)
        return await asyncio.wait_for(asyncio.gather(*(follow(api, ws, "emit", ready) for ws in spaces)),
                                      timeout=lines / rate + 120)

    pids = {"serve": cluster.serve.proc.pid, **{w.name: w.proc.pid for w in cluster.workers}, "bench": os.getpid()}
    sched0 = {name: sched(pid) for name, pid in pids.items()}
    began = time.time()
    results = asyncio.run(run())
    wall = time.time() - began
    sched1 = {name: sched(pid) for name, pid in pids.items()}
    stamps = asyncio.run(xadd_times(cluster.env["TERRAKUBE_REDIS_PREFIX"], [r["job"] for r in results]))
    statuses = [api("query($id: ID!) { job(id: $id) { status } }", id=r["job"])["job"]["status"] for r in results]
    lat, worker_ms, api_ms, firsts, steady, per_job, backlog_total, n_chunks = [], [], [], [], [], [], 0, 0
    starts = [float(ln.split()[2]) for r in results for c in r["chunks"] for ln in c[2] if ln.startswith("L 0 ")]
    all_emitting = max(starts, default=0.0)  # from here on every job prints (startup is over)
    for r in results:
        seen: dict[int, int] = {}
        for offset, recv, chunk_lines in r["chunks"]:
            xadd, n_chunks = stamps.get((r["job"], offset)), n_chunks + 1
            for line in chunk_lines:
                parts = line.split()
                if len(parts) != 3 or parts[0] != "L":
                    continue
                i, emitted = int(parts[1]), float(parts[2])
                seen[i] = seen.get(i, 0) + 1
                if seen[i] > 1:
                    continue
                if emitted < r["subscribed"]:
                    backlog_total += 1
                    continue
                lat.append((recv - emitted) * 1000)
                (firsts if i == 0 else steady if emitted >= all_emitting else []).append(lat[-1])
                if xadd is not None:
                    worker_ms.append((xadd - emitted) * 1000)
                    api_ms.append((recv - xadd) * 1000)
        got = sum(1 for i in seen if 0 <= i < lines)
        per_job.append((lines, got, lines - got, sum(seen.values()) - len(seen)))
    expected, received, lost, dups = (sum(p[k] for p in per_job) for k in range(4))
    p50, p99 = pct(lat, 50), pct(lat, 99)
    print(f"\n== {name}: {jobs} job(s) x {lines} lines at {rate} lines/s, one subscriber each "
          f"(load avg before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} CPUs; wall {wall:.1f} s)")
    print(f"  jobs: {', '.join(f'{s}={statuses.count(s)}' for s in sorted(set(statuses)))};  main thread CPU s and "
          "run-queue wait s per wall s: " + ", ".join(f"{k} {(sched1[k][0] - sched0[k][0]) / wall:.2f} cpu "
                                                       f"{(sched1[k][1] - sched0[k][1]) / wall:.2f} wait" for k in pids))
    print(f"  lines expected {expected}  received {received}  lost {lost}  duplicated {dups}  "
          f"from backlog {backlog_total}  (chunks {n_chunks}, {received / max(n_chunks, 1):.1f} lines/chunk)")
    for r in results:
        if r["error"]:
            print(f"  SUBSCRIPTION ERROR (job {r['job']}): {r['error']}")
    if jobs > 1:
        print("  per job (expected/received/lost/dup): " + "  ".join(f"{e}/{g}/{lo}/{d}" for e, g, lo, d in per_job))
    print(f"  latency ms over {len(lat)} live lines: {summary(lat)}")
    for label, values in (("worker (emit -> XADD)", worker_ms), ("api (XADD -> receive)", api_ms),
                          (f"once all jobs print, n={len(steady)}", steady), (f"first lines, n={len(firsts)}", firsts)):
        print(f"    {label:32}{summary(values)}")
    ok50, ok99, ok_lost = p50 <= GOAL_P50, p99 <= GOAL_P99, lost == 0 and dups == 0
    print(f"  goals: p50 <= {GOAL_P50:.0f} ms {'PASS' if ok50 else 'MISS'}; p99 <= {GOAL_P99:.0f} ms "
          f"{'PASS' if ok99 else 'MISS'}; no line lost or duplicated {'PASS' if ok_lost else 'MISS'}", flush=True)
    return ok50 and ok99 and ok_lost and statuses.count("COMPLETED") == jobs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--single", type=int, default=2000, help="lines of the 1-job run (0 skips it)")
    ap.add_argument("--jobs", type=int, default=20, help="jobs of the concurrent run (0 skips it)")
    ap.add_argument("--lines", type=int, default=1000, help="lines per job of the concurrent run")
    ap.add_argument("--rate", type=int, default=200, help="lines per second per job")
    ap.add_argument("--workers", type=int, default=1, help="worker processes sharing the jobs")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(2))  # `timeout` or kill: still clean up (finally blocks)
    print(f"{os.cpu_count()} CPUs; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ok = True
    concurrency = max(1, math.ceil(max(args.jobs, 1) / args.workers))
    with tempfile.TemporaryDirectory(prefix="bench-logs-") as tmp:
        repo = make_repo(Path(tmp) / "repo")
        with production_cluster(Path(tmp) / "cluster", concurrency, args.workers) as cluster:
            measure(cluster, repo, "warmup", 1, 20, args.rate)  # first-job imports; not reported as a result
            if args.single:
                ok &= measure(cluster, repo, "single", 1, args.single, args.rate)
            if args.jobs:
                ok &= measure(cluster, repo, "concurrent", args.jobs, args.lines, args.rate)
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
