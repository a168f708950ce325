"""What each sandbox tier costs per submission, side by side in one run (issue: containing submissions).

For every tier (none, process, namespaces as root, namespaces through a user namespace) one warm worker
grades the reference ex03 solution --rounds times, the tiers taking turns; we report the median wall time
per submission (the parent's `grading.grade` call: the fork, the isolation, the probes, the clean-up),
with ratios against the "none" tier. A cold single `grade ex03` (a subprocess:
Python start-up, torch import, one job) is measured in the same run, and its ratio to each tier's
per-submission time is printed against the batch goal (>= 20x).

    python benchmarks/sandbox_tiers.py [--rounds 30] [--cold-rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from grader.grading import pipeline as grading
from grader.sandbox.client import ZygoteClient

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "solutions" / "ex03.py"
TIERS = ("none", "process", "namespaces", "userns")
SPEED_GOAL = 20.0


def per_submission(rounds: int) -> dict[str, dict[str, float | str]]:
    """Median per-submission time for each tier; the tiers take turns, so load drift hits all alike."""
    workers = {tier: ZygoteClient("torch", sandbox=tier) for tier in TIERS}
    walls: dict[str, list[float]] = {tier: [] for tier in TIERS}
    try:
        for _tier, worker in workers.items():
            for _ in range(2):  # warm-up: first forks after start-up touch more pages
                grading.grade("ex03", SOLUTION, device="cpu", worker=worker)
        for _ in range(rounds):
            for tier, worker in workers.items():
                started = time.perf_counter()
                report = grading.grade("ex03", SOLUTION, device="cpu", worker=worker)
                walls[tier].append(time.perf_counter() - started)
                assert report.full_marks, f"{tier}: {report.error}"
        reached = {tier: worker.tier for tier, worker in workers.items()}
    finally:
        for worker in workers.values():
            worker.close()
    return {tier: {"reached": reached[tier], "wall": statistics.median(times),
                   "p90": sorted(times)[int(0.9 * len(times))]} for tier, times in walls.items()}


def cold_single(rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "grader.cli", "ex03", str(SOLUTION), "--device", "cpu"],
                       cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--cold-rounds", type=int, default=3)
    args = parser.parse_args()
    cold = cold_single(args.cold_rounds)
    rows = per_submission(args.rounds)
    base = rows["none"]["wall"]
    print(f"cold single `grade ex03` (subprocess, median of {args.cold_rounds}): {cold * 1000:.0f} ms")
    print(f"{'tier asked':<12}{'tier got':<12}{'per submission':>16}{'p90':>10}{'vs none':>9}"
          f"{'cold / this':>13}  goal >= {SPEED_GOAL:g}x")
    for tier, row in rows.items():
        ratio = cold / row["wall"]
        print(f"{tier:<12}{row['reached']:<12}{row['wall'] * 1000:>13.1f} ms{row['p90'] * 1000:>7.1f} ms"
              f"{row['wall'] / base:>8.2f}x{ratio:>12.1f}x  {'ok' if ratio >= SPEED_GOAL else 'BELOW GOAL'}")


if __name__ == "__main__":
    main()
