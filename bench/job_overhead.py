"""Per-job platform overhead: "Plan and apply" on `terrakube up` vs the same terraform commands run directly.

    .venv/bin/python bench/job_overhead.py [--jobs 20] [--poll 0.02]

Also the shared helpers of bench/dispatch.py and bench/concurrent_jobs.py (git repo, fast client, polling).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if Path(sys.path[0] or ".").resolve() == ROOT / "bench":  # run as a script
    sys.path[0] = str(ROOT)  # bench/graphql.py would shadow graphql-core

from tests.procs import Api, Server  # noqa: E402
from workers.executor.terraform import PLAN_FILE, apply_args, init_args, plan_args  # noqa: E402

MAIN_TF = """\
variable "greeting" { type = string }
resource "terraform_data" "app" { input = var.greeting }
output "greeting" { value = var.greeting }
"""
TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "REJECTED", "NO_CHANGES", "NOT_EXECUTED"})
JOB_DETAIL = ("query($id: ID!) { job(id: $id) { id status reason createdAt startedAt finishedAt "
              "steps { name status reason startedAt finishedAt log { text } } } }")


class FastApi(Api):
    """`tests.procs.Api` over one keep-alive connection (polling every 20 ms must not open sockets)."""

    def __init__(self, server: Server, token: str) -> None:
        super().__init__(server, token)
        self.client = httpx.Client(base_url=server.base_url, timeout=30.0,
                                   headers={"Authorization": f"Bearer {token}"})

    def raw(self, query: str, **variables: Any) -> httpx.Response:
        return self.client.post("/graphql", json={"query": query, "variables": variables})


def make_repo(path: Path) -> Path:
    env = {**os.environ, **{f"GIT_{who}_{what}": "bench" for who in ("AUTHOR", "COMMITTER") for what in ("NAME", "EMAIL")}}
    path.mkdir(parents=True)
    (path / "main.tf").write_text(MAIN_TF)
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "bench"]):
        subprocess.run(["git", *args], cwd=path, env=env, check=True, capture_output=True)
    return path


@contextmanager
def embedded_stack(base: Path, env: dict[str, str] | None = None) -> Iterator[FastApi]:
    """`terrakube up` (SQLite, local storage, in-process queue) as a subprocess."""
    base.mkdir(parents=True, exist_ok=True)
    server = Server(data_dir=base / "data", log_dir=base, name="up", env=env or {})
    server.start()
    try:
        server.wait_healthy()
        yield FastApi(server, (base / "data" / "admin-token").read_text().strip())
    finally:
        stop(server)


def stop(server: Server) -> None:
    """SIGTERM, then SIGKILL after 20 s (``Server.stop`` kills it and raises; a benchmark just goes on)."""
    with contextlib.suppress(AssertionError):
        server.stop()
    server.kill()


def create_org(api: Api, org: str) -> None:
    api.mutate("createOrganization", "CreateOrganizationInput", "... on Organization { id }", name=org)


def create_workspace(api: Api, org: str, name: str, repo: Path) -> tuple[str, str]:
    """A workspace on the repo with its `greeting` variable; returns (workspace id, variable id)."""
    ws = api.mutate("createWorkspace", "CreateWorkspaceInput", "... on Workspace { id }", organization=org,
                    name=name, source=f"file://{repo}", branch="main", folder="/")["id"]
    var = api.mutate("createVariable", "CreateVariableInput", "... on Variable { id }", workspaceId=ws,
                     key="greeting", value="hello", category="TERRAFORM")["id"]
    return ws, var


def run_job(api: Api, ws: str, template: str = "Plan and apply") -> tuple[str, float, float]:
    """Returns (job id, time.time() just before sending runJob, time.time() when it returned)."""
    sent = time.time()
    job = api.mutate("runJob", "RunJobInput", "... on Job { id }", workspaceId=ws, templateName=template)
    return job["id"], sent, time.time()


def wait_job(api: Api, job_id: str, poll: float, timeout: float = 120.0) -> tuple[str, float]:
    """Polls `status` until terminal; returns (status, time.time() when observed)."""
    deadline = time.monotonic() + timeout
    while (status := api("query($id: ID!) { job(id: $id) { status } }", id=job_id)["job"]["status"]) not in TERMINAL:
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job_id} still {status} after {timeout}s{api.server.output()}")
        time.sleep(poll)
    return status, time.time()


def ts(iso: str) -> float:
    """A server DateTime (UTC; naive values are UTC too) as epoch seconds."""
    value = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def pct(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def describe_failure(job: dict[str, Any]) -> str:
    lines = [f"job {job['id']}: {job['status']} reason={job.get('reason')!r}"]
    for step in job["steps"]:
        lines.append(f"  step {step['name']}: {step['status']} reason={step.get('reason')!r}")
        lines += [f"    | {line}" for line in (step.get("log") or {}).get("text", "").splitlines()[-40:]]
    return "\n".join(lines)


def tf_env(base: Path) -> dict[str, str]:
    (rc := base / "terraform.rc").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("TF_", "TERRAKUBE_"))}
    return {**env, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "TF_CLI_CONFIG_FILE": str(rc)}


def prepare(repo: Path, dest: Path, state: Path, value: str) -> Path:
    """A fresh copy of the config, a local backend at a shared state path, and the variable."""
    shutil.copytree(repo, dest, ignore=shutil.ignore_patterns(".git"))
    (dest / "zz_backend_override.tf").write_text(f'terraform {{\n  backend "local" {{ path = "{state}" }}\n}}\n')
    (dest / "zz.auto.tfvars").write_text(f'greeting = "{value}"\n')
    return dest


def tf(cwd: Path, env: dict[str, str], args: list[str], ok: tuple[int, ...] = (0,)) -> float:
    start = time.perf_counter()
    proc = subprocess.run(["terraform", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode not in ok:
        raise SystemExit(f"terraform {args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return time.perf_counter() - start


def direct_like_platform(repo: Path, work: Path, env: dict[str, str], value: str) -> dict[str, float]:
    """Plan step (init, plan -out) in one fresh copy, apply step (init, apply plan, output) in another."""
    a = prepare(repo, work / "plan", work.parent / "state-like.tfstate", value)
    t = {"init": tf(a, env, init_args()), "plan": tf(a, env, plan_args(False, [], []), ok=(2,))}
    b = prepare(repo, work / "apply", work.parent / "state-like.tfstate", value)
    shutil.copyfile(a / PLAN_FILE, b / PLAN_FILE)
    t |= {"init2": tf(b, env, init_args()), "apply": tf(b, env, apply_args(PLAN_FILE, [], []))}
    return t | {"output": tf(b, env, ["output", "-json", "-no-color"])}


def direct_minimal(repo: Path, work: Path, env: dict[str, str], value: str) -> float:
    d = prepare(repo, work / "min", work.parent / "state-min.tfstate", value)
    steps = [(init_args(), (0,)), (plan_args(False, [], []), (2,)), (apply_args(PLAN_FILE, [], []), (0,))]
    return sum(tf(d, env, args, ok) for args, ok in steps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--poll", type=float, default=0.02, help="status poll interval, seconds")
    args = ap.parse_args()
    print(f"load average before the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    base = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    try:
        repo, env = make_repo(base / "repo"), tf_env(base)
        with embedded_stack(base / "up") as api:
            create_org(api, "bench")
            ws, var = create_workspace(api, "bench", "overhead", repo)
            rows = measure(api, ws, var, repo, base, env, args.jobs, args.poll)
        report(rows, args.jobs, args.poll)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def measure(api: FastApi, ws: str, var: str, repo: Path, base: Path, env: dict[str, str], n: int,
            poll: float) -> list[dict[str, float]]:
    rows: list[dict[str, float]] = []
    print(f"{'job':>4} {'platform':>9} {'dispatch':>9} {'plan':>6} {'gap':>6} {'apply':>6} {'finish':>7} "
          f"{'observe':>8} | {'direct':>7} {'minimal':>8}   (seconds)")
    for i in range(-1, n):  # i = -1: warm-up, not counted
        api.mutate("updateVariable", "UpdateVariableInput", "... on Variable { id }", id=var, value=f"run-{i}")
        job_id, _, returned = run_job(api, ws)
        status, observed = wait_job(api, job_id, poll)
        job = api(JOB_DETAIL, id=job_id)["job"]
        if status != "COMPLETED" or [s["status"] for s in job["steps"]] != ["COMPLETED", "COMPLETED"]:
            raise SystemExit(describe_failure(job))
        plan, apply = job["steps"]
        work = base / f"direct-{i}"
        like = direct_like_platform(repo, work, env, f"run-{i}")
        row = {
            "platform": observed - returned,
            "dispatch": ts(plan["startedAt"]) - returned,
            "plan": ts(plan["finishedAt"]) - ts(plan["startedAt"]),
            "gap": ts(apply["startedAt"]) - ts(plan["finishedAt"]),
            "apply": ts(apply["finishedAt"]) - ts(apply["startedAt"]),
            "finish": ts(job["finishedAt"]) - ts(apply["finishedAt"]),
            "observe": observed - ts(job["finishedAt"]),
            "direct": sum(like.values()),
            "minimal": direct_minimal(repo, work, env, f"run-{i}"),
            **{f"tf_{k}": v for k, v in like.items()},
        }
        shutil.rmtree(work, ignore_errors=True)
        print(f"{'warm' if i < 0 else i:>4} {row['platform']:9.3f} {row['dispatch']:9.3f} {row['plan']:6.3f} "
              f"{row['gap']:6.3f} {row['apply']:6.3f} {row['finish']:7.3f} {row['observe']:8.3f} | "
              f"{row['direct']:7.3f} {row['minimal']:8.3f}", flush=True)
        if i >= 0:
            rows.append(row)
    return rows


def report(rows: list[dict[str, float]], n: int, poll: float) -> None:
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    p90 = {k: pct([r[k] for r in rows], 90) for k in rows[0]}
    per_job = [r["platform"] - r["direct"] for r in rows]
    diff = med["platform"] - med["direct"]
    print(f"\n{n} 'Plan and apply' jobs on `terrakube up` (terraform_data, status polled every {poll:g} s)")
    for key, label in (("platform", "platform (runJob returned -> COMPLETED seen)"),
                       ("direct", "direct, as the platform runs it [1]"),
                       ("minimal", "direct, minimal (init, plan -out, apply)")):
        print(f"  {label:<46} median {med[key]:.3f} s   p90 {p90[key]:.3f} s")
    print(f"  overhead = median(platform) - median(direct)   {diff:.3f} s   goal <= 0.5 s: "
          f"{'PASS' if diff <= 0.5 else 'MISS'}   (per-job differences: median {statistics.median(per_job):.3f}, "
          f"p90 {pct(per_job, 90):.3f}; vs minimal {med['platform'] - med['minimal']:.3f} s)")
    print("  [1] init + plan -out; then in a fresh copy init + apply plan + output -json (the platform runs all five)")
    tf_plan, tf_apply = med["tf_init"] + med["tf_plan"], med["tf_init2"] + med["tf_apply"] + med["tf_output"]
    print("\n  where the time goes (medians, s)                   platform  terraform direct")
    for label, value, direct in (
        ("runJob returned -> plan step RUNNING", med["dispatch"], None),
        ("plan step: clone, init, plan, uploads", med["plan"], tf_plan),
        ("plan step ended -> apply step RUNNING", med["gap"], None),
        ("apply step: clone, init, apply, output, uploads", med["apply"], tf_apply),
        ("apply step ended -> job COMPLETED", med["finish"], None),
        ("job COMPLETED -> seen by the client's poll", med["observe"], None),
    ):
        print(f"    {label:<48} {value:8.3f}" + ("" if direct is None else f"  {direct:8.3f}"))
    print(f"    direct per command: init {med['tf_init']:.3f}  plan {med['tf_plan']:.3f}  init {med['tf_init2']:.3f}  "
          f"apply {med['tf_apply']:.3f}  output {med['tf_output']:.3f}")


if __name__ == "__main__":
    main()
