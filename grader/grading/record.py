"""Recording reference data: run each exercise's probes on its solution and store the numbers.

An instructor command (`grade record`). The solution runs through the very same sandbox and probes as a
student's file, on the CPU, so references and submissions are measured the same way.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from grader.course import exercises
from grader.course.submission import read
from grader.grading import pipeline as grading


class RecordingError(RuntimeError):
    """The reference solution failed a probe: the exercise is broken, not a student."""


def recorded_fields(exercise_id: str, solution: Path | None = None) -> dict[str, dict[str, Any]]:
    """Every invocation's fields, as produced by the solution, keyed by invocation key."""
    return recorded(exercise_id, solution)[0]


def recorded(exercise_id: str, solution: Path | None = None) -> tuple[dict[str, dict[str, Any]], dict[str, float]]:
    """Every invocation's fields, as produced by the solution, and the seconds each call took, by key."""
    exercise = exercises.load(exercise_id)
    root = exercises.solutions_root()
    solution = solution or (root / f"{exercise_id}.py" if root else None)
    if solution is None or not solution.exists():
        raise RecordingError(f"no solution for {exercise_id} (solutions/ is only in a full checkout)")
    loaded = read(solution, exercise_id)
    if loaded.problem:
        raise RecordingError(f"{solution}: {loaded.problem}")
    limits = grading.Limits(timeout=300)
    with grading.start_worker(exercise_id, "cpu") as worker:
        outcome, problem, _ = grading.run_probes(worker, exercise, loaded, exercise.checks, ["cpu"], limits)
    if problem or outcome is None:
        raise RecordingError(f"{exercise_id}: the solution did not run cleanly: {problem}")
    fields: dict[str, dict[str, Any]] = {}
    seconds: dict[str, float] = {}
    for result in outcome.results:
        if not result.ok or not isinstance(result.fields, dict):
            raise RecordingError(f"{exercise_id}: the solution failed a probe: {result.error}")
        # The process evidence (where each backward()/step() went) is checked against the run's own history,
        # never against a reference: it is not recorded.
        fields[result.key] = {k: v for k, v in result.fields.items() if k not in PROCESS_EVIDENCE}
        if result.elapsed_s is not None:
            seconds[result.key] = round(result.elapsed_s, 4)
    return fields, seconds


PROCESS_EVIDENCE = ("backward_leaves", "step_pairs", "model_steps", "steps_holding_model")


def reference_documents(exercise_id: str, solution: Path | None = None,
                        fields: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """{relative path: JSON document} for the visible and hidden reference files (of `fields` where given,
    else of a fresh run of the solution)."""
    exercise = exercises.load(exercise_id)
    fields = fields if fields is not None else recorded_fields(exercise_id, solution)
    documents: dict[str, dict[str, Any]] = {}
    for visibility, relative in (("visible", "references/visible.json"), ("hidden", "hidden/references.json")):
        chosen = [c for c in exercise.checks if c.visibility == visibility]
        if not chosen:
            continue
        invocations = {
            inv["key"]: {"probe": inv["probe"], "args": inv["args"], "fields": fields[inv["key"]]}
            for inv in exercise.invocations(tuple(chosen))
        }
        documents[relative] = {"exercise": exercise_id, "device": "cpu", "invocations": invocations}
    return documents


# How far a fresh recording may lie from the stored one: REFERENCE_ULPS float32 ulps of the value, the value
# floored at 1/64 of the field's largest magnitude (a loss converging to 1e-12 inherits w's rounding, relative to
# the loss scale, not ulps of 1e-12). Summing the same numbers in another order (what another CPU's kernels do)
# moved the solutions' trajectories by at most 8.5 such ulps (`python benchmarks/reference_drift.py`). 32 ulps
# is 4% of the grading rtol (1e-4) and 0.6% of its atol (1e-5 x scale) at the floor: agreement within it cannot
# change a verdict.
REFERENCE_ULPS = 32
REFERENCE_FLOOR = 2.0 ** -6
FLOAT32_EPS = 2.0 ** -23


def drift(stored: Any, fresh: Any, where: str = "", scale: float | None = None) -> list[str]:
    """Where `fresh` departs from `stored` by more than REFERENCE_ULPS (structure and non-floats: exactly)."""
    if isinstance(stored, dict) and isinstance(fresh, dict):
        if set(stored) != set(fresh):
            return [f"{where}: keys {sorted(set(stored) ^ set(fresh))} differ"]
        return [line for key in sorted(stored) for line in drift(stored[key], fresh[key], f"{where}/{key}", scale)]
    if isinstance(stored, list) and isinstance(fresh, list):
        if len(stored) != len(fresh):
            return [f"{where}: {len(stored)} entries stored, {len(fresh)} fresh"]
        if scale is None:
            scale = _largest_magnitude(stored)
        return [line for index, (a, b) in enumerate(zip(stored, fresh, strict=True))
                for line in drift(a, b, f"{where}[{index}]", scale)]
    if _is_number(stored) and _is_number(fresh):
        bound = REFERENCE_ULPS * FLOAT32_EPS * max(abs(stored), REFERENCE_FLOOR * (scale or abs(stored)))
        if stored == fresh or abs(fresh - stored) <= bound or (math.isnan(stored) and math.isnan(fresh)):
            return []
        return [f"{where}: {stored!r} stored, {fresh!r} fresh (bound {bound:.3g})"]
    return [] if stored == fresh else [f"{where}: {stored!r} stored, {fresh!r} fresh"]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _largest_magnitude(values: list[Any]) -> float:
    numbers = [abs(v) for v in _flatten(values) if _is_number(v) and math.isfinite(v)]
    return max(numbers, default=0.0)


def _flatten(values: Any) -> list[Any]:
    if isinstance(values, list):
        return [leaf for value in values for leaf in _flatten(value)]
    return [values]


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


def timing_documents(exercise_id: str, seconds: dict[str, float]) -> dict[str, dict[str, Any]]:
    """{relative path: JSON document} for the files that hold how long each reference call took (the hidden
    calls' beside their references): each call's budget derives from it (pipeline.call_budget). Not part of
    the references' digest, so that recording again on another machine changes no report."""
    exercise = exercises.load(exercise_id)
    documents: dict[str, dict[str, Any]] = {}
    for visibility, relative in (("visible", exercises.TIMING_FILES[0]), ("hidden", exercises.TIMING_FILES[1])):
        keys = [inv["key"] for inv in exercise.invocations(tuple(c for c in exercise.checks
                                                                  if c.visibility == visibility))]
        if keys:
            documents[relative] = {"exercise": exercise_id, "seconds": {k: seconds[k] for k in keys if k in seconds}}
    return documents


def record(exercise_id: str) -> list[Path]:
    exercise = exercises.load(exercise_id)
    fields, seconds = recorded(exercise_id)
    written = []
    for relative, document in {**reference_documents(exercise_id, fields=fields),
                               **timing_documents(exercise_id, seconds)}.items():
        path = exercise.path(relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dumps(document), "utf-8")
        written.append(path)
    return written
