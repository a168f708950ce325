"""Cold single grading vs a bare `import torch`, measured side by side in one run (issue: speed goal).

Goal: a cold `grade ex03` on a correct submission costs at most 1.3x `python -c "import torch"`.
Rounds alternate the two commands so drift on a shared machine hits both alike; medians are compared.

    python benchmarks/cold_start.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL = 1.3


def wall(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--exercise", default="ex03")
    args = parser.parse_args()
    grade = Path(sys.executable).with_name("grade")
    solution = ROOT / "solutions" / f"{args.exercise}.py"
    bare = [sys.executable, "-c", "import torch"]
    graded = [str(grade), args.exercise, str(solution), "--format", "json", "--device", "cpu"]
    wall(bare), wall(graded)  # warm the page cache for both
    torch_times, grade_times = [], []
    for _ in range(args.rounds):
        torch_times.append(wall(bare))
        grade_times.append(wall(graded))
    t, g = statistics.median(torch_times), statistics.median(grade_times)
    print(f"python -c 'import torch'        median {t * 1000:7.0f} ms  (n={args.rounds})")
    print(f"grade {args.exercise} <solution> (cold)  median {g * 1000:7.0f} ms  (n={args.rounds})")
    ratio = g / t
    print(f"ratio grade / import torch: {ratio:.2f}x  (goal <= {GOAL}x: {'met' if ratio <= GOAL else 'NOT met'})")


if __name__ == "__main__":
    main()
