"""The process checks' counterfactual calls, their cost side by side in one run (issue 22: within 1.25x).

For each exercise, one warm worker grades the exercise's corpus (tests/submissions/exNN) over and over,
alternating rounds with the counterfactual calls (the process checks' calls once more, perturbed) and
without them; it prints the medians per submission and their ratio. Goal: at most 1.25x.

    python benchmarks/process_cost.py [--rounds 6] [--exercise ex02 ex03 ex04 ex05]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from grader.grading import pipeline as grading

ROOT = Path(__file__).resolve().parent.parent
GOAL = 1.25


def per_submission(exercise: str, paths: list[Path], worker: grading.ZygoteClient) -> float:
    started = time.perf_counter()
    for path in paths:
        grading.grade(exercise, path, device="cpu", worker=worker)
    return (time.perf_counter() - started) / len(paths) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--exercise", nargs="*", default=["ex02", "ex03", "ex04", "ex05"])
    options = parser.parse_args()
    draw = grading.draw_factors
    print(f"{'exercise':9}{'with':>10}{'without':>10}{'ratio':>8}")
    worst = 0.0
    for exercise in options.exercise:
        paths = sorted((ROOT / "tests" / "submissions" / exercise).glob("*.py"))
        times: dict[bool, list[float]] = {True: [], False: []}
        with grading.start_worker(exercise, "cpu") as worker:
            per_submission(exercise, paths[:3], worker)  # warm the worker's spare and the parent's caches
            for round_number in range(options.rounds):
                for counterfactual in ((True, False) if round_number % 2 == 0 else (False, True)):
                    grading.draw_factors = draw if counterfactual else (lambda: None)  # type: ignore[assignment]
                    times[counterfactual].append(per_submission(exercise, paths, worker))
        grading.draw_factors = draw
        with_it, without = statistics.median(times[True]), statistics.median(times[False])
        worst = max(worst, with_it / without)
        print(f"{exercise:9}{with_it:>8.1f}ms{without:>8.1f}ms{with_it / without:>7.2f}x")
    print(f"worst ratio {worst:.2f}x (goal <= {GOAL}x: {'met' if worst <= GOAL else 'NOT met'})")


if __name__ == "__main__":
    main()
