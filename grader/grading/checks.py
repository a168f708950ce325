"""Comparing what a submission returned with the recorded references: tolerances, trajectories, process.

Pure NumPy, in the trusted parent. Each function turns one check's untrusted numbers into a CheckResult;
`diagnose` is asked to name the mistake behind any failure.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from grader.course.exercises import CheckSpec, Exercise
from grader.course.source import Code
from grader.grading import diagnose
from grader.grading.counterfactual import (  # the evidence by intervention, named here for the checks
    COUNTERFACTUAL_EPOCHS as COUNTERFACTUAL_EPOCHS,
    Counterfactual as Counterfactual,
    counterfactual_args as counterfactual_args,
    counterfactual_response as counterfactual_response,
)
from grader.grading.process import (  # moved to process.py, still named here
    _follows_known_mistake as _follows_known_mistake,
    _process_evidence as _process_evidence,
    _rule_note as _rule_note,
    compare_process as compare_process,
)
from grader.grading.tolerances import (  # moved to tolerances.py, still named here
    Tolerance as Tolerance,
    Verdict as Verdict,
    _array as _array,
    _close as _close,
    fmt as fmt,
    tolerance_for as tolerance_for,
)
from grader.model.report import CheckResult, Status
from grader.sandbox.protocol import ChildError, Result

MALFORMED_RESULT = "the grader received a result it cannot read as numbers; no points for this check."


def compare_value(check: CheckSpec, observed: dict[str, Any], reference: dict[str, Any],
                  tol: Tolerance, reveal: bool) -> Verdict:
    for name in check.fields:
        expected, got = _array(reference[name]), _array(observed.get(name, np.nan))
        if expected.shape != got.shape:
            return Verdict(False, f"{name}: expected shape {expected.shape}, got {got.shape}.")
        bad = ~np.isfinite(got)
        if bad.any():
            return Verdict(False, f"{name}: got {fmt(float(got[bad].flat[0]))}; expected a finite number.")
        diff = np.abs(got - expected)
        allowed = tol.absolute(expected) + tol.rtol * np.abs(expected)
        wrong = diff > allowed
        if wrong.any():
            index = np.unravel_index(int(np.argmax(np.where(wrong, diff, -1))), diff.shape) if diff.ndim else ()
            where = f" at index {tuple(int(i) for i in index)}" if diff.ndim else ""
            exp_text = fmt(float(expected[index])) if reveal else "the reference"
            count = f"{int(wrong.sum())} of {wrong.size} values differ; " if diff.ndim else ""
            return Verdict(
                False,
                f"{name}: expected {exp_text}, got {fmt(float(got[index]))}{where} "
                f"({count}tolerance {tol}).",
            )
    return Verdict(True, "matches the reference.")


def compare_trajectory(check: CheckSpec, observed: dict[str, Any], reference: dict[str, Any],
                       tol: Tolerance, reveal: bool) -> Verdict:
    """Per-epoch comparison; the failure names the first diverging epoch and quantity."""
    first: tuple[int, str, float, float] | None = None
    for name in check.fields:
        expected, got = _array(reference[name]), _array(observed.get(name, []))
        if got.shape != expected.shape:
            return Verdict(False, f"{name}: expected {expected.size} epochs, got {got.size}.")
        allowed = tol.absolute(expected) + tol.rtol * np.abs(expected)
        wrong = ~(np.abs(got - expected) <= allowed)  # NaN counts as wrong
        if wrong.any():
            epoch = int(np.argmax(wrong))
            if first is None or epoch < first[0]:
                first = (epoch, name, float(expected[epoch]), float(got[epoch]))
    if first is None:
        return Verdict(True, f"all {len(check.fields)} quantities match the reference at every epoch.")
    epoch, name, expected_value, got_value = first
    exp_text = fmt(expected_value) if reveal else "a different value"
    return Verdict(
        False,
        f"first divergence at epoch {epoch + 1}: {name} expected {exp_text}, got {fmt(got_value)} "
        f"(tolerance {tol}).",
        first_divergent_epoch=epoch + 1,
    )


def evaluate(exercise: Exercise, check: CheckSpec, observed: Result | None,
             reference: dict[str, Any] | None, device: str, run_problem: str | None,
             timed_out: bool, peers: tuple[diagnose.Peer, ...] = (), source: Code | None = None,
             counterfactual: Counterfactual | None = None) -> CheckResult:
    """One check on one device. `peers` (the other checks' answers and references on the same device) are
    evidence for diagnoses only: a function that returned another check's answer ignores its arguments.
    `source` (the student's parsed code) only lets messages quote the student's own lines. `counterfactual`
    (process checks): the second run of the check's call with the mechanism perturbed."""
    base = CheckResult(
        name=check.name, status=Status.ERROR, score=0.0, max_score=check.points, symptom="",
        visibility=check.visibility, device=device,
    )
    if reference is None:
        return replace(base, symptom="no reference recorded for this check (run `grade record`).")
    if observed is None:
        status = Status.TIMEOUT if timed_out else Status.ERROR
        return replace(base, status=status, symptom=run_problem or "the grader received no result.")
    if not observed.ok:
        return _from_error(exercise, check, base, observed.error or ChildError(), peers, source)
    fields, expected = observed.fields or {}, reference["fields"]
    reveal = check.visibility == "visible"
    tol = tolerance_for(exercise, check)
    code = None
    try:  # the numbers are untrusted: a forged or garbled result must fail the check, not the grader
        if not isinstance(fields, dict):
            raise TypeError("fields is not a mapping")
        if check.compare == "process":
            verdict, code = compare_process(
                check, fields, expected, tol,
                lambda: shapes_fit(fields, expected) and _follows_known_mistake(exercise, check, fields, peers),
                lambda: counterfactual_response(exercise, check, fields, expected, tol, counterfactual))
        elif check.compare == "trajectory":
            verdict = compare_trajectory(check, fields, expected, tol, reveal)
        else:
            verdict = compare_value(check, fields, expected, tol, reveal)
    except (TypeError, ValueError, ArithmeticError):
        return replace(base, symptom=MALFORMED_RESULT)
    # Plotting data for visible checks only, passed or not: hidden references must never leave the grader.
    trajectory = _trajectory(check, fields, expected) if reveal else None
    if verdict.passed:
        note = _rule_note(exercise, check, fields, peers) if check.compare == "process" else ""
        return replace(base, status=Status.PASSED, score=check.points, symptom=verdict.message + note,
                       trajectory=trajectory)
    result = replace(base, status=Status.FAILED, symptom=verdict.message + substituted_note(check, peers),
                     first_divergent_epoch=verdict.first_divergent_epoch, trajectory=trajectory)
    if code is None and not shapes_fit(fields, expected):
        return result  # no replay on shapes the reference does not have (80,000 forged rows of weights)
    try:
        found = diagnose.from_behaviour(exercise, check, fields, expected, code, peers, source)
    except (TypeError, ValueError, ArithmeticError):  # garbled extra fields: no diagnosis rather than no report
        found = None
    return diagnose.attach(result, found)


def substituted_note(check: CheckSpec, peers: tuple[diagnose.Peer, ...]) -> str:
    """On a failed check that ran the student's function with the grader's own helpers swapped in, where one
    of the student's own helpers fails its checks: say so, and why, since the numbers it shows are that
    run's, not the student's own run's."""
    wrong = sorted({p.check.probe for p in peers if p.check.probe in check.substitutes and p.reference is not None
                    and (p.observed is None or not diagnose._close(p.observed, p.reference, p.check.fields
                                                                      or ("value",)))})
    if not wrong:
        return ""
    helpers = ", ".join(f"{name}()" for name in wrong)
    its = "its" if len(wrong) == 1 else "their"
    return (f" (In this check your {check.probe}() ran with the grader's own {helpers} in place of yours, which "
            f"fails {its} own checks, so that mistake is not counted twice: the numbers above come from that run, "
            "not from your own.)")


# Fields a diagnosis replays from, and the reference field whose shape they must have.
SHAPED_LIKE = {"initial_weight": "weight", "initial_bias": "bias"}


def shapes_fit(fields: dict[str, Any], reference: dict[str, Any]) -> bool:
    """Whether every array the child reported has the shape the reference gives it (ex05: a layer's weight
    is (output_dim, input_dim)), so that the parent's work on a submission stays the size of the exercise."""
    for name, value in fields.items():
        model = reference.get(SHAPED_LIKE.get(name, name))
        if not isinstance(value, list) or not isinstance(model, list):
            continue
        try:
            if _array(value).shape != _array(model).shape:
                return False
        except (TypeError, ValueError):
            return False
    return True


def _trajectory(check: CheckSpec, observed: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any] | None:
    if check.compare != "trajectory":
        return None
    return {
        "fields": list(check.fields),
        "expected": {f: _json_safe(expected[f]) for f in check.fields},
        "observed": {f: _json_safe(observed.get(f)) for f in check.fields},
    }


def _json_safe(values: Any) -> Any:
    """NaN and infinity become null: strict JSON (and so every LMS) has no spelling for them."""
    if isinstance(values, list):
        return [_json_safe(v) for v in values]
    if isinstance(values, float) and not np.isfinite(values):
        return None
    return values


EXCEPTION_ADVICE = {
    "SystemExit": ". A graded function must return its result: remove the sys.exit() or exit() call.",
    "EOFError": ". Grading has no keyboard: remove the input() call (input() is not available while grading).",
}


def _from_error(exercise: Exercise, check: CheckSpec, base: CheckResult, error: ChildError,
                peers: tuple[diagnose.Peer, ...] = (), source: Code | None = None) -> CheckResult:
    kind = error.kind
    message = diagnose.missing_name(error, source) or error.message.strip()
    if kind == "runaway":
        stopped_at = f" while executing {error.where}" if error.where else ""
        result = replace(base, status=Status.TIMEOUT, symptom=f"{message}{stopped_at}. Look for a loop that never ends "
                         "there (a `while` whose condition never changes, a counter that is never advanced).")
    elif kind == "runaway-skipped":
        result = replace(base, status=Status.SKIPPED, symptom=message)
    elif kind in ("type", "shape"):
        result = replace(base, status=Status.FAILED, symptom=message)
    elif kind == "not-implemented":
        result = replace(base, status=Status.FAILED, symptom="Not implemented yet.")
    else:
        where = error.where
        text = f"{message} (at {where})" if where else message
        if kind == "exception":
            text = "your code raised " + text + EXCEPTION_ADVICE.get(str(error.type), "")
        result = replace(base, status=Status.ERROR, symptom=text)
    return diagnose.attach(result, diagnose.from_error(exercise, check, error, peers, source))
