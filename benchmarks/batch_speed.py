"""Batch speed and memory, side by side in one run (issue: instructor batch grading).

- Speed: a cold single `grade ex03` on a correct submission (a subprocess, median of --rounds) against
  the wall time per submission of `grade batch` on 100 ex03 submissions (correct and buggy mixed),
  start-up included. Goal: at least 20x faster per submission.
- Memory: the batch process's own peak RSS (its workers excluded: they are separate processes whose
  size does not depend on the class) for 100 and for 1,000 submissions. Goal: flat.

    python benchmarks/batch_speed.py [--rounds 5] [--jobs N] [--large 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = (ROOT / "solutions" / "ex03.py").read_text("utf-8")
SPEED_GOAL = 20.0
MEMORY_GOAL = 1.2  # peak RSS at 1,000 within 20% of that at 100

# Buggy variants: the course's usual mistakes, as small edits of the reference solution.
VARIANTS = {
    "correct": lambda s: s,
    "no_zero_grad": lambda s: s.replace("w.grad.zero_()", "pass"),
    "summed_loss": lambda s: s.replace("((y_pred - y) ** 2).mean()", "((y_pred - y) ** 2).sum()"),
    "climbs": lambda s: s.replace("w -= learning_rate * w.grad", "w += learning_rate * w.grad"),
}
MIX = ["correct"] * 5 + ["no_zero_grad", "summed_loss", "climbs"] * 1 + ["correct", "no_zero_grad"]


def make_class(directory: Path, count: int) -> Path:
    for index in range(count):
        variant = MIX[index % len(MIX)]
        folder = directory / f"student{index:04d}"
        folder.mkdir(parents=True)
        source = VARIANTS[variant](SOLUTION) + f"\n# {variant}, student {index}\n"
        (folder / "ex03.py").write_text(source, "utf-8")
    return directory


def wall(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, check=False, capture_output=True, text=True, cwd=ROOT)
    return time.perf_counter() - started, done.stdout


def child(directory: str, out: str, jobs: int) -> None:
    """Run in a fresh process: one batch, then its own peak RSS and timings as JSON on stdout."""
    from grader.classroom import batch

    started = time.perf_counter()
    result = batch.run(Path(directory), Path(out), ["ex03"], batch.Options(jobs=jobs, device="cpu"))
    elapsed = time.perf_counter() - started
    own = resource.getrusage(resource.RUSAGE_SELF)  # this process only: ru_maxrss in KiB on Linux
    print(json.dumps({"graded": result.graded, "elapsed_s": elapsed, "peak_rss_mib": own.ru_maxrss / 1024,
                      "parent_cpu_s": own.ru_utime + own.ru_stime, "problems": result.problems}))


def run_batch(workdir: Path, count: int, jobs: int) -> dict:
    directory = make_class(workdir / f"class{count}", count)
    command = [sys.executable, __file__, "--child", str(directory), str(workdir / f"out{count}"), str(jobs)]
    seconds, stdout = wall(command)
    data = json.loads(stdout.strip().splitlines()[-1])
    data["wall_s"] = seconds
    if data["graded"] != count:
        raise SystemExit(f"batch of {count} graded only {data['graded']}: {data}")
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--large", type=int, default=1000)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return
    grade = Path(sys.executable).with_name("grade")
    single = [str(grade), "ex03", str(ROOT / "solutions" / "ex03.py"), "--format", "json", "--device", "cpu"]
    wall(single)  # warm the page cache
    # Cold runs on both sides of the small batch, so that drift on a shared machine hits both alike.
    colds = [wall(single)[0] for _ in range((args.rounds + 1) // 2)]
    with tempfile.TemporaryDirectory(prefix="batch-speed-") as workdir:
        small = run_batch(Path(workdir), args.small, args.jobs)
        colds += [wall(single)[0] for _ in range(args.rounds // 2)]
        large = run_batch(Path(workdir), args.large, args.jobs) if args.large else None
    cold = statistics.median(colds)
    per_submission = small["wall_s"] / args.small
    speedup = cold / per_submission
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; batch --jobs {args.jobs}")
    print(f"cold single `grade ex03` (correct)   median {cold * 1000:8.0f} ms  (n={len(colds)})")
    print(f"batch of {args.small} ex03 (mixed), whole command {small['wall_s']:7.2f} s  "
          f"= {per_submission * 1000:.1f} ms per submission (start-up included)")
    print(f"  of which the batch process's own CPU (comparing, reports): "
          f"{small['parent_cpu_s'] / args.small * 1000:.1f} ms per submission")
    print(f"speed-up per submission: {speedup:.1f}x  (goal >= {SPEED_GOAL:g}x: "
          f"{'met' if speedup >= SPEED_GOAL else 'NOT met'})")
    if large:
        growth = large["peak_rss_mib"] / small["peak_rss_mib"]
        print(f"batch of {args.large} ex03 (mixed), whole command {large['wall_s']:7.2f} s  "
              f"= {large['wall_s'] / args.large * 1000:.1f} ms per submission")
        print(f"batch process peak RSS: {small['peak_rss_mib']:.1f} MiB at {args.small}, "
              f"{large['peak_rss_mib']:.1f} MiB at {args.large}: ratio {growth:.2f}  "
              f"(goal <= {MEMORY_GOAL}: {'met' if growth <= MEMORY_GOAL else 'NOT met'})")

if __name__ == "__main__":
    main()
