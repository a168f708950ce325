"""Every exercise's speed, side by side in one run (issue: every exercise fast).

For each of ex01-ex05:
- cold: a single `grade EX <solution>` (a new process: interpreter, worker, torch import, grading) against a bare
  `python -c "import torch"`. Goal: at most 1.3x.
- warm: `grade batch` on classes of --size and 2 x --size mixed submissions (the exercise's corpus in
  tests/submissions, correct and buggy, repeated with a comment to tell the copies apart). The warm cost of a
  submission is the difference of the two whole commands over --size: what one more submission costs once the
  workers are up. Goal: the cold single grade at least 20x that (moonshot 40x). The whole command per
  submission (start-up included, --size submissions) is printed beside it.
Rounds alternate the commands so that drift on a shared machine hits each alike; medians are compared.

    python benchmarks/per_exercise.py [--rounds 5] [--size 40] [--jobs 2] [--exercise ex05 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLD_GOAL, WARM_GOAL, MOONSHOT = 1.3, 20.0, 40.0


def wall(command: list[str], cwd: Path = ROOT) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)
    return time.perf_counter() - started


def make_class(directory: Path, exercise: str, size: int) -> Path:
    """`size` students cycling through the exercise's corpus (bugs and correct variants alike)."""
    corpus = sorted((ROOT / "tests" / "submissions" / exercise).glob("*.py"))
    corpus = [p for p in corpus if "device" not in json.loads(p.with_suffix(".expected.json").read_text())]
    for index in range(size):
        source = corpus[index % len(corpus)]
        folder = directory / f"student{index:03d}"
        folder.mkdir(parents=True)
        (folder / f"{exercise}.py").write_text(source.read_text("utf-8") + f"\n# {source.stem}, student {index}\n")
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--exercise", nargs="*", default=["ex01", "ex02", "ex03", "ex04", "ex05"])
    args = parser.parse_args()
    grade = str(Path(sys.executable).with_name("grade"))
    bare = [sys.executable, "-c", "import torch"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="per-exercise-") as work:
        for exercise in args.exercise:
            single = [grade, exercise, str(ROOT / "solutions" / f"{exercise}.py"), "--format", "json",
                      "--device", "cpu"]
            small = make_class(Path(work) / f"{exercise}-small", exercise, args.size)
            large = make_class(Path(work) / f"{exercise}-large", exercise, 2 * args.size)
            batches = [[grade, "batch", str(klass), "--out", str(Path(work) / f"{exercise}-out{n}"), "--exercise",
                        exercise, "--jobs", str(args.jobs), "--device", "cpu", "--force"]
                       for n, klass in enumerate((small, large))]
            wall(bare), wall(single)  # the page cache, for both
            torch_s, cold_s, whole_s, warm_s = [], [], [], []
            for _ in range(args.rounds):
                torch_s.append(wall(bare))
                cold_s.append(wall(single))
                whole = wall(batches[0])
                whole_s.append(whole / args.size)
                warm_s.append((wall(batches[1]) - whole) / args.size)
            shutil.rmtree(small)
            shutil.rmtree(large)
            t, c, b, w = (statistics.median(v) for v in (torch_s, cold_s, whole_s, warm_s))
            rows.append((exercise, t, c, b, w))
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; batch --jobs {args.jobs}, "
          f"{args.size} mixed submissions per batch; medians of {args.rounds} rounds")
    print(f"{'exercise':9}{'import torch':>14}{'cold grade':>12}{'cold/torch':>12}{'whole/sub':>12}"
          f"{'cold/whole':>12}{'warm/sub':>11}{'cold/warm':>11}")
    for exercise, t, c, b, w in rows:
        print(f"{exercise:9}{t * 1000:11.0f} ms{c * 1000:9.0f} ms{c / t:11.2f}x{b * 1000:9.1f} ms{c / b:11.1f}x"
              f"{w * 1000:8.1f} ms{c / w:10.1f}x")
    worst_cold = max(c / t for _, t, c, _, _ in rows)
    worst_warm = min(c / w for _, _, c, _, w in rows)
    cold_met = "met" if worst_cold <= COLD_GOAL else "NOT met"
    print(f"worst cold ratio {worst_cold:.2f}x (goal <= {COLD_GOAL}x: {cold_met}); "
          f"worst warm speed-up {worst_warm:.1f}x (goal >= {WARM_GOAL:g}x: "
          f"{'met' if worst_warm >= WARM_GOAL else 'NOT met'}; moonshot {MOONSHOT:g}x: "
          f"{'met' if worst_warm >= MOONSHOT else 'not met'})")


if __name__ == "__main__":
    main()
