"""The Dask cluster's own overhead, side by side in one run (issue: past one machine).

- Batch: 200 mixed submissions (ex03 correct and buggy, ex01 correct and buggy, crashing ones) graded by
  `batch.run` on two local workers (`--jobs 2`) and through a loopback cluster of two single-threaded
  `dask worker --preload grader.distributed` processes (`--scheduler`), alternately, --rounds times each.
  Goal: the cluster's batch at most 1.3x the local one (median of the rounds).
- Per task: the round trip of a task through the scheduler to a worker and back with a job-sized payload
  (scheduling + transfer, no grading), median of --trips sequential trips. Goal: at most 10 ms.

    python benchmarks/dask_overhead.py [--rounds 3] [--count 200] [--trips 200]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DASK = str(Path(sys.executable).parent / "dask")
RATIO_GOAL = 1.3
TASK_GOAL_MS = 10.0
EX03 = (ROOT / "solutions" / "ex03.py").read_text("utf-8")
EX01 = (ROOT / "solutions" / "ex01.py").read_text("utf-8")
VARIANTS = [
    ("ex03", EX03), ("ex03", EX03.replace("w.grad.zero_()", "pass")),
    ("ex03", EX03.replace("((y_pred - y) ** 2).mean()", "((y_pred - y) ** 2).sum()")), ("ex03", EX03),
    ("ex01", EX01), ("ex01", (ROOT / "tests/submissions/ex01/bug_gradient_sign.py").read_text("utf-8")),
    ("ex03", "import os\nos._exit(3)\n"), ("ex03", EX03), ("ex01", EX01), ("ex03", "def forward(w, x:\n"),
]


def make_class(directory: Path, count: int) -> Path:
    for index in range(count):
        exercise, source = VARIANTS[index % len(VARIANTS)]
        folder = directory / f"student{index:04d}"
        folder.mkdir(parents=True)
        (folder / f"{exercise}.py").write_text(source + f"\n# student {index}\n", "utf-8")
    return directory


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_cluster(logs: Path) -> tuple[str, list[subprocess.Popen]]:
    address = f"tcp://127.0.0.1:{free_port()}"
    processes = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                                   "--no-dashboard"], stdout=(logs / "scheduler.log").open("wb"),
                                  stderr=subprocess.STDOUT, cwd=ROOT)]
    for i in range(2):
        processes.append(subprocess.Popen([DASK, "worker", address, "--nthreads", "1", "--no-dashboard",
                                           "--preload", "grader.distributed"],
                                          stdout=(logs / f"worker{i}.log").open("wb"), stderr=subprocess.STDOUT,
                                          cwd=ROOT))
    return address, processes


def echo(payload: dict) -> int:
    return len(payload["cells"][0]["source"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--trips", type=int, default=200)
    parser.add_argument("--no-batch", action="store_true", help="Only the per-task figures.")
    args = parser.parse_args()

    from distributed import Client

    from grader import batch, grading

    work = Path(tempfile.mkdtemp(prefix="dask-overhead-"))
    address, processes = start_cluster(work)
    try:
        directory = make_class(work / "class", args.count)
        client = Client(address, timeout=60, set_as_default=False)
        client.wait_for_workers(2, timeout=180)
        limits = grading.Limits(timeout=10.0)
        times: dict[str, list[float]] = {"local": [], "dask": []}
        # a warm-up of each (the first torch imports, the cluster's first describe), not counted
        for name, options in () if args.no_batch else (("local", batch.Options(jobs=2, device="cpu", limits=limits, force=True)),
                              ("dask", batch.Options(jobs=0, device="cpu", limits=limits, force=True,
                                                     scheduler=address))):
            batch.run(make_class(work / f"warm-{name}", 10), work / f"warm-out-{name}", None, options)
        for round_ in range(0 if args.no_batch else args.rounds):
            for name in ("local", "dask") if round_ % 2 == 0 else ("dask", "local"):
                options = batch.Options(jobs=2 if name == "local" else 0, device="cpu", limits=limits,
                                        force=True, scheduler=address if name == "dask" else None)
                result = batch.run(directory, work / f"out-{name}", None, options)
                assert result.graded == args.count, result
                times[name].append(result.elapsed_s)
                print(f"round {round_ + 1} {name:5s} {result.elapsed_s:6.2f} s "
                      f"({1000 * result.elapsed_s / args.count:.1f} ms per submission)", flush=True)
        same = args.no_batch or (work / "out-local" / "gradebook.csv").read_text() == (
            work / "out-dask" / "gradebook.csv").read_text()

        job = {"cells": [{"label": "ex03.py", "source": EX03}], "probe_source": "x" * 6000,
               "invocations": [{"key": f"k{i}", "probe": "train", "args": {"lr": 0.01}} for i in range(12)]}
        client.submit(echo, job, pure=False).result()
        trips = []
        for _ in range(args.trips):
            started = time.perf_counter()
            client.submit(echo, job, pure=False).result()
            trips.append(1000 * (time.perf_counter() - started))
        started = time.perf_counter()  # pipelined, as the batch's slots keep several tasks in flight
        client.gather([client.submit(echo, job, pure=False) for _ in range(args.trips)])
        pipelined = 1000 * (time.perf_counter() - started) / args.trips
        client.close()
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)

    print(f"task round trip (scheduling + transfer of a job-sized payload), median of {args.trips} one at a "
          f"time: {statistics.median(trips):.2f} ms (goal <= {TASK_GOAL_MS:g} ms); p90 "
          f"{statistics.quantiles(trips, n=10)[-1]:.2f} ms; {args.trips} in flight at once: {pipelined:.2f} ms "
          f"per task (load average {os.getloadavg()[0]:.1f})")
    if args.no_batch:
        return
    local, dask = statistics.median(times["local"]), statistics.median(times["dask"])
    ratio = dask / local
    observed = 1000 * (dask - local) * 2 / args.count  # extra per task, per worker slot
    print(f"\n{args.count} mixed submissions, 2 workers, median of {args.rounds} rounds (load average "
          f"{os.getloadavg()[0]:.1f}):")
    print(f"  local batch (--jobs 2)            {local:6.2f} s")
    print(f"  Dask loopback cluster (2 x 1)     {dask:6.2f} s   ratio {ratio:.2f}x (goal <= {RATIO_GOAL}x)")
    print(f"  gradebooks identical: {same}")
    print(f"  observed extra time per submission and worker slot in the batch: {observed:.2f} ms")


if __name__ == "__main__":
    main()
