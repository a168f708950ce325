"""How much room each check's tolerance leaves between correct variants and the cataloged mistakes.

For every exercise and check, the comparison of an answer with the reference uses
`allowed = atol × scale + rtol × |expected|` (grader/grading/checks.py). The *usage* of an answer is the largest
`|got − expected| / allowed` over its values and epochs: the check passes when usage ≤ 1. This prints, per check,
  - the largest usage among correct variants: the float64 simulation of the correct loop, and every
    tests/submissions/exNN/correct_*.py run through the sandbox (float64 code, w.data updates, detach, ...);
  - the smallest usage among the cataloged mistakes: their float64 simulations (mistakes.py) rounded to float32,
    and the tests/submissions/exNN/bug_*.py that are expected to fail that check;
  - the margins: 1 / (largest correct usage) and (smallest mistake usage), both should be ≫ 1.

    python benchmarks/tolerances.py [EX ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader.course import exercises
from grader.course.exercises import CheckSpec, Exercise
from grader.course.submission import read
from grader.grading import checks, mistakes, pipeline as grading
from grader.sandbox.client import ZygoteClient

SUBMISSIONS = ROOT / "tests" / "submissions"


def usage(observed: dict[str, Any], reference: dict[str, Any], check: CheckSpec, tol: checks.Tolerance) -> float:
    worst = 0.0
    for name in check.fields or ("value",):
        if name not in observed or name not in reference:
            continue
        want = np.asarray(reference[name], float)
        got = np.asarray(observed[name], float)
        if got.shape != want.shape:
            return float("inf")
        allowed = tol.absolute(want) + tol.rtol * np.abs(want)
        with np.errstate(all="ignore"):
            ratio = np.abs(got - want) / allowed
        worst = max(worst, float(np.max(np.where(np.isfinite(ratio), ratio, np.inf), initial=0.0)))
    return worst


def run_submission(worker: ZygoteClient, exercise: Exercise, path: Path) -> dict[str, dict[str, Any]]:
    """The raw fields each check's probe returned for a submission, keyed by invocation key (CPU)."""
    loaded = read(path, exercise.id)
    outcome, _, _ = grading.run_probes(worker, exercise, loaded, exercise.checks, ["cpu"], grading.Limits())
    return {r.key: r.fields for r in (outcome.results if outcome else ()) if r.ok}


def simulated(check: CheckSpec, reference: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The correct loop in float64 ("float64") and each cataloged mistake in float32, for trajectory checks;
    the gradient/loss value mistakes for value checks."""
    out: dict[str, dict[str, Any]] = {}
    args = check.args
    if check.compare == "trajectory":
        from grader.grading.diagnose import problem_for

        problem = problem_for(check, reference)
        if problem is None:
            return out
        out["float64 simulation"] = _fields(mistakes.simulate(problem), np.float64)
        for entry in mistakes.catalog(problem):
            out[f"{entry.code} ({entry.label})"] = _fields(mistakes.simulate(problem, entry.mistake), np.float32)
    elif check.probe == "gradient" and "value" in reference:
        n = len(args.get("x", []))
        for code, factor in (("gradient-not-averaged", n), ("gradient-missing-factor-2", 0.5), ("gradient-sign", -1)):
            out[f"{code} (x{factor:g})"] = {"value": float(np.float32(reference["value"] * factor))}
    elif check.probe == "loss" and {"y", "y_pred"} <= args.keys():
        y, y_pred = np.asarray(args["y"], float).reshape(-1), np.asarray(args["y_pred"], float).reshape(-1)
        out["shape-broadcast (n, n) MSE"] = {"value": float(np.mean((y_pred[:, None] - y[None, :]) ** 2))}
        out["gradient-not-averaged (summed loss)"] = {"value": float(np.sum((y_pred - y) ** 2))}
    return out


def _fields(run: mistakes.Trajectory, dtype: type) -> dict[str, Any]:
    with np.errstate(over="ignore"):  # a diverging mistake overflows float32: inf, as a student's run would
        columns = {"loss": run.loss, "w": run.w, "grad": run.grad}
        return {name: values.astype(dtype).astype(float).tolist() for name, values in columns.items()
                if values is not None}


def matching(check: CheckSpec, reference: dict[str, Any]) -> tuple[float, float, str] | None:
    """How diagnose.py's epoch-by-epoch matching separates the mistakes on a trajectory check: the worst fit of
    a float32 run to its own float64 simulation, and the closest fit to another's (or the correct loop's)."""
    from grader.grading.diagnose import problem_for

    problem = problem_for(check, reference)
    if problem is None or check.compare != "trajectory":
        return None
    runs = [("correct", mistakes.Mistake())] + [(e.label, e.mistake) for e in mistakes.catalog(problem)]
    simulated = {label: mistakes.simulate(problem, m) for label, m in runs}
    fields = tuple(f for f in check.fields if f in ("loss", "w", "grad"))
    own, closest = 0.0, (float("inf"), "")
    for label, _mistake in runs:
        as_float32 = _fields(simulated[label], np.float32)
        own = max(own, mistakes.fields_deviation(as_float32, simulated[label], fields))
        for other, trajectory in simulated.items():
            if other != label:
                score = mistakes.fields_deviation(as_float32, trajectory, fields)
                closest = min(closest, (score, f"{label} vs {other}"))
    return own, closest[0], closest[1]


def expected_to_fail(path: Path, check: CheckSpec) -> bool:
    spec = json.loads(path.with_suffix(".expected.json").read_text("utf-8"))
    return any(check.name.startswith(prefix) and code != "passed" for prefix, code in spec.get("checks", {}).items())


def measure(exercise: Exercise, worker: ZygoteClient) -> list[dict[str, Any]]:
    references = exercise.references()
    folder = SUBMISSIONS / exercise.id
    runs = {p: run_submission(worker, exercise, p) for p in sorted(folder.glob("*.py"))
            if p.stem.startswith(("correct", "bug")) and json.loads(
                p.with_suffix(".expected.json").read_text("utf-8")).get("device", "cpu") == "cpu"}
    rows = []
    for check in exercise.checks:
        reference = (references.get(check.key) or {}).get("fields")
        if reference is None or check.compare == "process":
            continue
        tol = checks.tolerance_for(exercise, check)
        correct: dict[str, float] = {}
        wrong: dict[str, float] = {}
        for label, fields in simulated(check, reference).items():
            (correct if label == "float64 simulation" else wrong)[label] = usage(fields, reference, check, tol)
        for path, results in runs.items():
            if check.key not in results:
                continue
            if path.stem.startswith("correct"):
                correct[path.name] = usage(results[check.key], reference, check, tol)
            elif expected_to_fail(path, check):
                wrong[path.name] = usage(results[check.key], reference, check, tol)
        rows.append({"check": check.name, "tol": str(tol), "correct": correct, "wrong": wrong,
                     "matching": matching(check, reference)})
    return rows


def report(exercise: Exercise, rows: list[dict[str, Any]]) -> None:
    """One line per check. A mistake whose answer equals the reference on a check (usage < 1, e.g. the
    broadcast MSE when every prediction is 0) cannot be caught by that check and is listed apart."""
    print(f"\n## {exercise.id}: {exercise.title}  (spec: rtol={exercise.rtol:g}, atol={exercise.atol:g}×scale)")
    print(f"{'check':58} {'correct: max usage':>18} {'(variant)':28} {'mistake: min usage':>18} (mistake)")
    coincide = []
    for row in rows:
        worst = max(row["correct"].items(), key=lambda kv: kv[1], default=("-", float("nan")))
        caught = {k: v for k, v in row["wrong"].items() if v >= 1}
        coincide += [f"{k} on {row['check'][:40]!r}" for k, v in row["wrong"].items() if v < 1]
        nearest = min(caught.items(), key=lambda kv: kv[1], default=("-", float("nan")))
        print(f"{row['check'][:58]:58} {worst[1]:18.2e} {worst[0][:28]:28} {nearest[1]:18.3g} {nearest[0]}")
    all_correct = [v for r in rows for v in r["correct"].values()]
    all_wrong = [v for r in rows for v in r["wrong"].values() if v >= 1]
    if all_correct and all_wrong:
        print(f"margins: correct variants use at most {max(all_correct):.2e} of the tolerance "
              f"(x{1 / max(max(all_correct), 1e-300):.3g} headroom); the nearest mistake exceeds it "
              f"x{min(all_wrong):.3g}.")
    fits = [r["matching"] for r in rows if r["matching"]]
    if fits:
        own = max(f[0] for f in fits)
        apart = min(fits, key=lambda f: f[1])
        print(f"diagnosis matching (MATCH = {mistakes.MATCH:g}): a float32 run fits its own simulation within "
              f"{own:.1e}; the closest two different simulations are {apart[1]:.3g} apart ({apart[2]}).")
    if coincide:
        print("equal to the reference on that check (caught by the exercise's other checks): " + "; ".join(coincide))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exercises", nargs="*", help="exercise ids (default: all)")
    selected = parser.parse_args().exercises or exercises.exercise_ids()
    workers: dict[str, ZygoteClient] = {}
    try:
        for exercise_id in selected:
            exercise = exercises.load(exercise_id)
            worker = workers.get(exercise.framework) or workers.setdefault(
                exercise.framework, ZygoteClient(exercise.framework, want_cuda=False))
            report(exercise, measure(exercise, worker))
    finally:
        for worker in workers.values():
            worker.close()


if __name__ == "__main__":
    main()
