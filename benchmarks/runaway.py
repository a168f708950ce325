"""One endless loop, graded with the default limits (issue 25: within 15 s): the wall time of a whole grade of
tests/runaways/ex03_train_never_ends.py, cold (a new worker, as `grade ex03 FILE` runs it) and warm, beside the
correct solution's for scale, and which checks the runaway cost.

    python benchmarks/runaway.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from grader.grading import pipeline as grading

ROOT = Path(__file__).resolve().parent.parent
RUNAWAY = ROOT / "tests" / "runaways" / "ex03_train_never_ends.py"
SOLUTION = ROOT / "solutions" / "ex03.py"
GOAL_S = 15.0


def timed(path: Path, worker: grading.ZygoteClient | None = None) -> tuple[float, grading.Report]:
    started = time.perf_counter()
    report = grading.grade("ex03", path, device="cpu", worker=worker)
    return time.perf_counter() - started, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    cold, report = timed(RUNAWAY)
    with grading.start_worker("ex03", "cpu") as worker:
        timed(SOLUTION, worker)  # warm
        warm = [timed(RUNAWAY, worker)[0] for _ in range(options.rounds)]
        correct = [timed(SOLUTION, worker)[0] for _ in range(options.rounds)]
    print(f"runaway, cold worker: {cold:.1f} s (goal <= {GOAL_S:g} s: {'met' if cold <= GOAL_S else 'NOT met'})")
    print(f"runaway, warm worker: median {statistics.median(warm):.1f} s; correct solution: "
          f"median {statistics.median(correct):.1f} s ({options.rounds} rounds)")
    print(f"score {report.score:g}/{report.max_score:g}, run status {report.status.value if report.status else '-'}")
    for check in report.checks:
        print(f"  {check.status.value:8} {check.name[:70]}")


if __name__ == "__main__":
    main()
