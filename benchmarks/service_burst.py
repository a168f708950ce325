"""The grading service under a burst, side by side with `grade batch` on the same files, in one run.

- Throughput: COUNT ex03 submissions (the corpus's correct and buggy ex03 files, cycled, each made unique)
  graded by `grade batch --jobs J` (its own elapsed time, worker start-up included) against the same files
  POSTed at once to `grade serve --jobs J` on its embedded SQLite (first POST to last stored report).
  Goal: the service at least 90% of the batch's rate.
- POST latency during the burst (8 concurrent clients): p50 and p99. Goal: p99 at most 50 ms.
- The service process's RSS (its sandboxed workers excluded) after 100 and after COUNT reports, and the
  RSS of its grading runners (the `grader.service.runners` processes it starts, when it has them). Goal: flat.
- One submission on an idle service: POST to a stored report, p50 of --idle rounds, against the report's
  own `duration_s` (the trusted parent's grading call, the sandboxed child's run included).
  Goal: at most 3x.

    python benchmarks/service_burst.py [--count 1000] [--jobs 2] [--idle 10]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from service_support import Server, token, wait_for

CORPUS = sorted((ROOT / "tests" / "submissions" / "ex03").glob("*.py"))


def make_class(directory: Path, count: int) -> list[tuple[str, bytes]]:
    files = []
    for index in range(count):
        source = CORPUS[index % len(CORPUS)].read_bytes() + f"\n# student {index}\n".encode()
        folder = directory / f"s{index:04d}"
        folder.mkdir(parents=True)
        (folder / "ex03.py").write_bytes(source)
        files.append((folder.name, source))
    return files


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def runners_mib(pid: int) -> float | None:
    """The RSS of the service's grading runner processes (its children running grader.service.runners)."""
    total, found = 0.0, False
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit() or b"grader.service.runners" not in (entry / "cmdline").read_bytes():
                continue
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) != pid:
                continue
            total, found = total + rss_mib(int(entry.name)), True
        except OSError:
            continue
    return total if found else None


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def run_batch(directory: Path, out: Path, jobs: int) -> float:
    command = [sys.executable, "-m", "grader.cli", "batch", str(directory), "--out", str(out), "--jobs", str(jobs),
               "--exercise", "ex03"]
    subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
    return float(json.loads((out / "summary.json").read_text())["last_run"]["elapsed_s"])


def run_service(files: list[tuple[str, bytes]], jobs: int, folder: Path, idle_rounds: int) -> dict:
    url = f"sqlite:///{folder / 'service.sqlite3'}"
    lms = token(url, "lms")
    gc.collect()
    gc.freeze()  # the client's own full collections (it imported the grader for `token`) would stall its 8 threads
    server = Server(url, jobs=jobs, env={"GRADE_SERVICE_RATE": "100000/60"}, cwd=folder).start()
    try:
        latencies: list[float] = []
        lock = threading.Lock()

        def post(item: tuple[str, bytes]) -> str:
            started = time.perf_counter()
            answer = server.submit(lms, "ex03", item[1], student=item[0])
            with lock:
                latencies.append(time.perf_counter() - started)
            assert answer.status == 202, answer.body
            return answer.json()["id"]

        memory: dict[int, float] = {}
        runners: dict[int, float | None] = {}

        def graded() -> int:
            return server.get("/api/v1/queue", lms).json()["counts"]["graded"]

        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(post, files))
        posted = time.perf_counter() - started
        mark = min(100, len(files))
        wait_for(lambda: graded() >= mark, 3600, f"{mark} reports", 0.2)
        memory[mark] = rss_mib(server.process.pid)
        runners[mark] = runners_mib(server.process.pid)
        wait_for(lambda: graded() >= len(files), 3600, "every report", 0.2)
        elapsed = time.perf_counter() - started
        memory[len(files)] = rss_mib(server.process.pid)
        runners[len(files)] = runners_mib(server.process.pid)
        loads = load()
        assert len(set(ids)) == len(files)
        idle = []
        for round_ in range(idle_rounds):
            sent = time.perf_counter()
            sid = post((f"idle{round_}", CORPUS[0].read_bytes() + f"\n# idle {round_}\n".encode()))
            wait_for(lambda s=sid: server.get(f"/api/v1/submissions/{s}", lms).json()["status"] == "graded",
                     120, "the idle submission", 0.005)
            stored = time.perf_counter() - sent
            report = server.get(f"/api/v1/submissions/{sid}/report", lms).json()
            idle.append((stored, float(report["duration_s"])))
        return {"elapsed_s": elapsed, "posting_s": posted, "latencies": sorted(latencies[:len(files)]),
                "memory": memory, "runners": runners, "idle": idle, "load": loads}
    finally:
        server.stop()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--idle", type=int, default=10)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="service-burst-") as scratch:
        root = Path(scratch)
        files = make_class(root / "class", arguments.count)
        loads = {"start": load()}
        batch_s = run_batch(root / "class", root / "out", arguments.jobs)
        loads["after batch"] = load()
        (root / "service").mkdir()
        service = run_service(files, arguments.jobs, root / "service", arguments.idle)
        loads["after the service's burst"] = service["load"]
    count = arguments.count
    batch_rate, service_rate = count / batch_s, count / service["elapsed_s"]
    p50, p99 = (percentile(service["latencies"], q) * 1000 for q in (0.5, 0.99))
    memory = service["memory"]
    small, large = memory[min(memory)], memory[max(memory)]
    stored = statistics.median(s for s, _ in service["idle"])
    graded = statistics.median(d for _, d in service["idle"])
    rows = [
        ("throughput", (f"batch {batch_rate:.2f}/s ({batch_s:.1f} s), service {service_rate:.2f}/s "
                       f"({service['elapsed_s']:.1f} s)"), f"{service_rate / batch_rate:.0%} of batch (goal >= 90%)"),
        ("POST latency", (f"p50 {p50:.1f} ms, p99 {p99:.1f} ms ({count} POSTs in {service['posting_s']:.1f} s, "
                         "8 clients)"), "goal p99 <= 50 ms"),
        ("service RSS", f"{small:.0f} MiB after {min(memory)}, {large:.0f} MiB after {max(memory)}",
         f"{large / small:.2f}x (goal flat)"),
    ]
    runners = service["runners"]
    if runners.get(min(runners)) and runners.get(max(runners)):
        rows.append(("runners' RSS", (f"{runners[min(runners)]:.0f} MiB after {min(runners)}, "
                                      f"{runners[max(runners)]:.0f} MiB after {max(runners)} (all runners together)"),
                     f"{runners[max(runners)] / runners[min(runners)]:.2f}x (goal flat)"))
    rows += [
        ("idle, one submission", (f"POST to stored report p50 {stored * 1000:.0f} ms; its grading call "
                                 f"{graded * 1000:.0f} ms"), f"{stored / graded:.2f}x (goal <= 3x)"),
    ]
    print(f"service burst: {count} ex03 submissions, --jobs {arguments.jobs}, SQLite, "
          f"{len(os.sched_getaffinity(0))} CPUs")
    print("  load average (1/5/15 min): " + "; ".join(f"{when} {value}" for when, value in loads.items()))
    width = max(len(r[0]) for r in rows)
    for name, figures, verdict in rows:
        print(f"  {name:<{width}}  {figures}  -> {verdict}")


if __name__ == "__main__":
    main()
