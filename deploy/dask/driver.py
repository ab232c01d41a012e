#!/usr/bin/env python3
"""Runs the shards of a `trawl org plan` on a Dask cluster, then merges them.

One task per shard runs `trawl org scan --plan PLAN --shard I/N --out OUT` as a subprocess on
a worker; exit 75 (retryable) is retried a bounded number of times with a growing delay, exit 2
(fatal) fails the run. When every shard is done, `trawl org merge` runs here and its exit code
is the driver's: 0 clean, 1 findings at or above --fail-on, 2 error.

    python driver.py --plan plan.json --out shards -o report.sarif            # LocalCluster
    python driver.py --scheduler tcp://sched:8786 --plan /shared/plan.json \\
        --out /shared/shards --cache /shared/cache --state /shared/state -o report.sarif

On a real cluster PLAN, OUT, --cache and --state must be paths every worker sees (a shared
file system), and each worker needs trawl and the forge tokens (GITHUB_TOKEN...) in its own
environment: tokens never travel in task arguments.

Exit codes of the driver: merge's, or 2 when a shard failed fatally (or with an unexpected
code), 75 when a shard still failed retryably after its retries (rerun the driver: finished
shards are kept and not redone).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

RETRYABLE = 75
FATAL = 2


@dataclass(frozen=True)
class ShardJob:
    """What a worker needs to run one shard; no secrets."""

    trawl: str
    plan: str
    index: int
    count: int
    out: str
    cache: str | None
    state: str | None
    retries: int
    delay: float

    def command(self) -> list[str]:
        cmd = [self.trawl, "org", "scan", "--plan", self.plan]
        cmd += ["--shard", f"{self.index}/{self.count}", "--out", self.out]
        if self.cache:
            cmd += ["--cache", self.cache]
        if self.state:
            cmd += ["--state", self.state]
        return cmd


@dataclass(frozen=True)
class ShardResult:
    index: int
    code: int
    attempts: int


def run_shard(job: ShardJob) -> ShardResult:
    """Runs one shard on a worker, retrying exit 75 at most `job.retries` times."""
    delay = job.delay
    attempt = 0
    while True:
        attempt += 1
        code = subprocess.run(job.command(), stdin=subprocess.DEVNULL, check=False).returncode
        if code != RETRYABLE or attempt > job.retries:
            return ShardResult(job.index, code, attempt)
        time.sleep(delay)
        delay *= 2


def shard_count(plan: Path) -> int:
    """The number of shards of a plan (`trawl org plan` output)."""
    with plan.open(encoding="utf-8") as f:
        shards = json.load(f).get("shards")
    if not isinstance(shards, list) or not shards:
        raise ValueError(f"{plan}: not a trawl plan (no shards)")
    return len(shards)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Run the shards of a trawl org plan on Dask, then merge them.",
        epilog="Exit code: merge's (0 clean, 1 findings), 2 fatal, 75 retryable.",
    )
    p.add_argument("--plan", required=True, type=Path, help="plan.json from trawl org plan")
    p.add_argument("--out", required=True, type=Path, help="directory for the shard outputs")
    p.add_argument("-o", "--output", required=True, type=Path, help="the merged report")
    p.add_argument("--format", default="sarif", choices=["sarif", "json", "jsonl", "text"])
    p.add_argument("--fail-on", help="merge's --fail-on severity")
    p.add_argument("--baseline", type=Path, help="merge's --baseline file")
    p.add_argument("--cache", type=Path, help="clone cache shared by the workers")
    p.add_argument("--state", type=Path, help="state store shared by the workers")
    p.add_argument("--trawl", default="trawl", help="the trawl binary (default: on PATH)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", help="address of a running Dask scheduler")
    where.add_argument(
        "--workers", type=int, default=2, help="shards at once on a LocalCluster (default 2)"
    )
    p.add_argument("--retries", type=int, default=3, help="retries of a shard exiting 75")
    p.add_argument("--retry-delay", type=float, default=30.0, help="first retry delay, seconds")
    args = p.parse_args(argv)
    if args.workers < 1 or args.retries < 0 or args.retry_delay < 0:
        p.error("--workers must be at least 1, --retries and --retry-delay not negative")
    return args


def run_shards(args: argparse.Namespace, jobs: list[ShardJob]) -> list[ShardResult]:
    from dask.distributed import Client, LocalCluster

    if args.scheduler:
        client = Client(args.scheduler)
        cluster = None
    else:
        # Threads suffice: each task waits on a subprocess, which releases the GIL.
        cluster = LocalCluster(
            n_workers=1,
            threads_per_worker=args.workers,
            processes=False,
            dashboard_address=None,
        )
        client = Client(cluster)
    try:
        # pure=False: a rerun of the driver must run the shards again, not reuse results.
        futures = client.map(run_shard, jobs, pure=False)
        return list(client.gather(futures))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def merge_command(args: argparse.Namespace) -> list[str]:
    cmd = [args.trawl, "org", "merge", "--plan", str(args.plan), str(args.out)]
    cmd += ["--format", args.format, "-o", str(args.output)]
    if args.baseline:
        cmd += ["--baseline", str(args.baseline)]
    if args.fail_on:
        cmd += ["--fail-on", args.fail_on]
    return cmd


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    try:
        count = shard_count(args.plan)
    except (OSError, ValueError) as e:
        print(f"driver: {e}", file=sys.stderr)
        return FATAL
    jobs = [
        ShardJob(
            trawl=args.trawl,
            plan=str(args.plan),
            index=i,
            count=count,
            out=str(args.out),
            cache=str(args.cache) if args.cache else None,
            state=str(args.state) if args.state else None,
            retries=args.retries,
            delay=args.retry_delay,
        )
        for i in range(count)
    ]
    results = run_shards(args, jobs)
    failed = [r for r in results if r.code != 0]
    for r in failed:
        print(f"driver: shard {r.index} exited {r.code} after {r.attempts} attempt(s)", file=sys.stderr)
    if any(r.code != RETRYABLE for r in failed):
        return FATAL
    if failed:
        return RETRYABLE
    return subprocess.run(merge_command(args), stdin=subprocess.DEVNULL, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
