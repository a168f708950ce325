"""The Dask cluster's own overhead, side by side in one run (issue: past one machine).

- Batch: 200 mixed submissions (ex03 correct and buggy, ex01 correct and buggy, crashing ones) graded by
  `batch.run` on two local workers (`--jobs 2`) and through a loopback cluster of two single-threaded
  `dask worker --preload grader.distributed` processes (`--scheduler`), alternately, --rounds times each.
  Goal: the cluster's batch at most 1.3x the local one (median of the rounds).
- Per task: the round trip of a task (grader.distributed.echo, which travels by name as run_job does) through
  the scheduler to a worker and back with a job-sized payload (scheduling + transfer, no grading), median of
  --trips sequential trips, and per task with --trips in flight at once; alternately with Dask's own stream
  intervals (10 ms client to scheduler, 5 ms scheduler to worker, 2 ms back) and the grader's (1 ms: the
  DaskPool's client and the --preload on workers and scheduler set them), --rounds times. Also the scheduler
  process's CPU time per task. Goal: at most 10 ms.
- --workers N: N single-threaded workers instead of 2 (how the per-task figures grow with the cluster).

    python benchmarks/dask_overhead.py [--rounds 3] [--count 200] [--trips 200] [--no-batch] [--workers 2]
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

import psutil

ROOT = Path(__file__).resolve().parent.parent
DASK = str(Path(sys.executable).parent / "dask")
RATIO_GOAL = 1.3
TASK_GOAL_MS = 10.0
# as docs/operator/dask.md recommends: no statistical profiling (a sample of every thread's stack every 10 ms, for a
# dashboard; a grading worker's thread only waits on its zygote's pipe)
WORKER_ENV = {**os.environ, "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False"}
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


def start_cluster(logs: Path, workers: int = 2) -> tuple[str, list[subprocess.Popen]]:
    address = f"tcp://127.0.0.1:{free_port()}"
    processes = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                                   "--no-dashboard", "--preload", "grader.distributed"],
                                  stdout=(logs / "scheduler.log").open("wb"), stderr=subprocess.STDOUT, cwd=ROOT)]
    for i in range(workers):
        processes.append(subprocess.Popen([DASK, "worker", address, "--nthreads", "1", "--no-dashboard",
                                           "--preload", "grader.distributed"], env=WORKER_ENV,
                                          stdout=(logs / f"worker{i}.log").open("wb"), stderr=subprocess.STDOUT,
                                          cwd=ROOT))
    return address, processes


def set_intervals(client, client_s: float, scheduler_s: float, worker_s: float) -> None:
    """The batched streams of a task's round trip (BatchedSend.interval, seconds): client to scheduler,
    scheduler to worker (and to client: 2 ms in Dask, never more), worker to scheduler."""
    def on_scheduler(dask_scheduler, value):
        for stream in dask_scheduler.stream_comms.values():
            stream.interval = value
        for stream in dask_scheduler.client_comms.values():  # back to the client: 2 ms in Dask
            stream.interval = min(value, 0.002)

    def on_worker(value, dask_worker=None):
        dask_worker.batched_stream.interval = value

    client.scheduler_comm.interval = client_s
    client.run_on_scheduler(on_scheduler, value=scheduler_s)
    client.run(on_worker, worker_s)


def cpu_ms(processes) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except Exception:  # noqa: BLE001, S112 - a process that is gone counts nothing
            continue
    return 1000 * total


def per_task(client, job: dict, trips: int, scheduler, workers) -> dict[str, object]:
    """Sequential round trips (ms) with the CPU each side spent per trip (this client process, the scheduler,
    the workers), then per task with `trips` in flight, with the scheduler's CPU per task there."""
    from grader.execution.cluster import echo

    me = psutil.Process()
    client.submit(echo, job, pure=False).result()
    sequential = []
    before = (cpu_ms([me]), cpu_ms([scheduler]), cpu_ms(workers))
    for _ in range(trips):
        started = time.perf_counter()
        client.submit(echo, job, pure=False).result()
        sequential.append(1000 * (time.perf_counter() - started))
    after = (cpu_ms([me]), cpu_ms([scheduler]), cpu_ms(workers))
    cpu = cpu_ms([scheduler])
    started = time.perf_counter()  # pipelined, as the batch's slots keep several tasks in flight
    client.gather([client.submit(echo, job, pure=False) for _ in range(trips)])
    pipelined = 1000 * (time.perf_counter() - started) / trips
    return {"sequential": sequential, "pipelined": pipelined,
            "cpu": [(a - b) / trips for a, b in zip(after, before, strict=True)],
            "scheduler_pipelined": (cpu_ms([scheduler]) - cpu) / trips}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--trips", type=int, default=200)
    parser.add_argument("--no-batch", action="store_true", help="Only the per-task figures.")
    parser.add_argument("--workers", type=int, default=2, help="Single-threaded workers in the cluster.")
    args = parser.parse_args()

    from distributed import Client

    from grader.classroom import batch
    from grader.execution.streams import STREAM_INTERVAL_S
    from grader.grading import pipeline as grading

    print(f"load average at start {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)", flush=True)
    work = Path(tempfile.mkdtemp(prefix="dask-overhead-"))
    address, processes = start_cluster(work, args.workers)
    try:
        directory = make_class(work / "class", args.count)
        client = Client(address, timeout=60, set_as_default=False)
        client.wait_for_workers(args.workers, timeout=600)
        limits = grading.Limits(timeout=10.0)
        times: dict[str, list[float]] = {"local": [], "dask": []}
        # a warm-up of each (the first torch imports, the cluster's first describe), not counted
        local = batch.Options(jobs=2, device="cpu", limits=limits, force=True)
        for name, options in () if args.no_batch else (("local", local),
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
        scheduler = psutil.Process(processes[0].pid)
        workers = [child for p in processes[1:] for child in psutil.Process(p.pid).children()
                   if "grader.sandbox.zygote" not in " ".join(child.cmdline())]  # the nannies' worker processes
        kinds = {"Dask's stream intervals (10/5/2 ms)": (0.010, 0.005, 0.002),
                 f"the grader's ({1000 * STREAM_INTERVAL_S:g} ms)": (STREAM_INTERVAL_S,) * 3}
        measured: dict[str, list[dict]] = {k: [] for k in kinds}
        for round_ in range(args.rounds):
            for name in kinds if round_ % 2 == 0 else reversed(kinds):
                set_intervals(client, *kinds[name])
                measured[name].append(per_task(client, job, args.trips, scheduler, workers))
        client.close()
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)

    print(f"task round trip (scheduling + transfer of a job-sized payload, {args.workers} workers), "
          f"{args.rounds} rounds of {args.trips}, alternating (goal <= {TASK_GOAL_MS:g} ms):")
    for name, runs in measured.items():
        sequential = [t for run in runs for t in run["sequential"]]
        cpu = [statistics.median(run["cpu"][i] for run in runs) for i in range(3)]
        print(f"  {name:38s} one at a time: median {statistics.median(sequential):5.2f} ms, p90 "
              f"{statistics.quantiles(sequential, n=10)[-1]:5.2f} ms (CPU per trip: client {cpu[0]:.2f}, scheduler "
              f"{cpu[1]:.2f}, worker {cpu[2]:.2f} ms); {args.trips} in flight: "
              f"{statistics.median(r['pipelined'] for r in runs):5.2f} ms per task, scheduler CPU "
              f"{statistics.median(r['scheduler_pipelined'] for r in runs):4.2f} ms per task")
    print(f"  (load average at the end {os.getloadavg()[0]:.1f})")
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
