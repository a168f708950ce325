"""Comparing what a submission returned with the recorded references: tolerances, trajectories, process.

Pure NumPy, in the trusted parent. Each function turns one check's untrusted numbers into a CheckResult;
`diagnose` is asked to name the mistake behind any failure.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from grader import diagnose
from grader.codes import DiagnosisCode
from grader.exercises import CheckSpec, Exercise
from grader.report import CheckResult, Status
from grader.sandbox.protocol import ChildError, Result
from grader.source import Code

MALFORMED_RESULT = "the grader received a result it cannot read as numbers; no points for this check."


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float  # relative to the reference's scale (its largest magnitude, at least 1)

    def absolute(self, reference: np.ndarray) -> float:
        finite = reference[np.isfinite(reference)]
        scale = max(1.0, float(np.max(np.abs(finite)))) if finite.size else 1.0
        return self.atol * scale

    def __str__(self) -> str:
        return f"rtol={self.rtol:g}, atol={self.atol:g}×scale"


@dataclass(frozen=True)
class Verdict:
    """A comparison's outcome before it becomes a CheckResult."""

    passed: bool
    message: str
    first_divergent_epoch: int | None = None


def tolerance_for(exercise: Exercise, check: CheckSpec) -> Tolerance:
    return Tolerance(
        rtol=check.rtol if check.rtol is not None else exercise.rtol,
        atol=check.atol if check.atol is not None else exercise.atol,
    )


def fmt(value: float) -> str:
    if not np.isfinite(value):
        return str(value)
    return f"{value:.8g}"


def _array(value: Any) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


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
    epoch, name, expected, got = first
    exp_text = fmt(expected) if reveal else "a different value"
    return Verdict(
        False,
        f"first divergence at epoch {epoch + 1}: {name} expected {exp_text}, got {fmt(got)} "
        f"(tolerance {tol}).",
        first_divergent_epoch=epoch + 1,
    )


PROCESS_RULES = {
    # rule: (field that must count at least once per epoch, diagnosis when it does not, what to do)
    "backward": ("backward_calls", DiagnosisCode.NO_AUTOGRAD, "call loss.backward() once per epoch"),
    "optimizer": ("step_calls", DiagnosisCode.NO_OPTIMIZER, "call optimizer.step() once per epoch"),
}


def compare_process(check: CheckSpec, observed: dict[str, Any], reference: dict[str, Any],
                    tol: Tolerance, known_mistake: Callable[[], bool] = lambda: False,
                    ) -> tuple[Verdict, str | None]:
    """Counts of backward()/step() calls, credited only where they are the process behind the history.

    A count alone proves nothing: backward() on a dummy tensor beside a NumPy gradient, or step() on a
    dummy optimizer, count as much as the real ones. So a call counts only where it touched the parameter
    the history records: a backward() whose gradient reached a leaf holding the value w had at that epoch,
    a step() whose optimizer holds w (its value after the step is the history's next w) or, for a model,
    every parameter of the model. A history that shows no training (w never moves, the loss never changes)
    earns no process credit at all. And the run must match the reference or follow a cataloged mistake
    (`known_mistake`): forging the evidence means forging a whole plausible trajectory too.
    """
    field, code, advice = PROCESS_RULES[check.require or ""]
    n_iters = int(check.args.get("n_iters", 1))
    count = _count(observed.get(field, 0))
    label = f"{field.replace('_', ' ')}: {count} for {n_iters} epochs"
    if count < n_iters:
        return Verdict(False, f"{label}; {advice}."), code
    # A history of one live tensor (history-aliases-tensor) shows only its final w: the training shows in the
    # loss, and the calls are tied to the reference's w, which that run matches wherever its loss does.
    aliased = observed.get("aliased_w") is True and isinstance(reference.get("w"), list)
    history = _history({k: v for k, v in observed.items() if k != "w"} if aliased else observed)
    if history is not None and _frozen(history):
        return Verdict(False, f"{label}, but the history shows no training at all (it never changes), so the "
                              "calls earn nothing: they did not train what your function returns."), None
    tied = {**observed, "w": reference["w"]} if aliased else observed
    where = _process_evidence(check, tied, _history(tied), tol, n_iters)
    if where is not None:
        return Verdict(False, f"{label}, but {where}; {advice} on the parameter you train."), code
    curves = [name for name, value in reference.items() if isinstance(value, list)]
    if not all(_close(observed.get(name), reference[name], tol) for name in curves) and not known_mistake():
        return Verdict(False, f"{label}, but the run they belong to matches neither the reference nor a "
                              "known mistake, so they earn nothing yet: fix the training checks first."), None
    return Verdict(True, f"{label}."), None


MAX_COUNT = 10_000_000


def _count(value: Any) -> int:
    """A call count from the child: a finite, non-negative number of sane size, else malformed."""
    number = float(value or 0)
    if not (0 <= number <= MAX_COUNT):  # NaN fails too
        raise ValueError(f"a call count of {value!r}")
    return int(number)


def _history(observed: dict[str, Any]) -> np.ndarray | None:
    """The column that shows training: w where the history records it, else the loss."""
    for name in ("w", "loss"):
        if isinstance(observed.get(name), list):
            values = _array(observed[name])
            return values if values.ndim == 1 and values.size else None
    return None


def _frozen(values: np.ndarray) -> bool:
    return bool(values.size > 1 and np.all(values == values[0]))


def _process_evidence(check: CheckSpec, observed: dict[str, Any], history: np.ndarray | None, tol: Tolerance,
                      n_iters: int) -> str | None:
    """Why the calls are not the process behind the history (None: they are, or there is nothing to tie)."""
    if check.require == "optimizer" and "steps_holding_model" in observed:
        holding = _count(observed.get("steps_holding_model"))
        return None if holding >= n_iters else \
            f"only {holding} of them ran on an optimizer that holds the model's parameters"
    if history is None or "w" not in observed:
        return None
    w = history
    start = check.args.get("w")
    if check.require == "backward":
        calls, what = _value_lists(observed.get("backward_values")), "backward()"
        alignments = [w] + ([np.concatenate(([float(start)], w[:-1]))] if isinstance(start, (int, float)) else [])
    else:
        calls, what = _value_lists(observed.get("step_values")), "optimizer.step()"
        alignments = [w, w[1:]]
    # The history's w is after each epoch's update; a history that records it before (w-before-update) is
    # shifted by one epoch, and still the same process.
    results = [(_matched_in_order(calls, t, tol), t.size) for t in alignments if t.size >= max(1, n_iters - 1)]
    if any(matched >= size for matched, size in results):
        return None
    matched = max((m for m, _ in results), default=0)
    reached = "reached" if check.require == "backward" else "updated"
    return f"only {matched} of the {what} calls {reached} the w your history records"


def _value_lists(value: Any) -> list[list[float]]:
    if not isinstance(value, list):
        return []
    return [[float(v) for v in call if isinstance(v, float)] for call in value[:MAX_COUNT] if isinstance(call, list)]


def _matched_in_order(calls: list[list[float]], targets: np.ndarray, tol: Tolerance) -> int:
    """How many of `targets`, in order, are met by successive calls (each call meets at most one)."""
    if not targets.size:
        return 0
    with np.errstate(invalid="ignore", over="ignore"):
        allowed = tol.absolute(targets) + tol.rtol * np.abs(targets)
    k = 0
    for values in calls:
        if k < targets.size and any(_same(v, float(targets[k]), float(allowed[k])) for v in values):
            k += 1
    return k


def _same(value: float, target: float, allowed: float) -> bool:
    """Within tolerance; a run that diverged matches its own infinities and NaNs."""
    if value == target or (math.isnan(value) and math.isnan(target)):
        return True
    return math.isfinite(value) and math.isfinite(target) and abs(value - target) <= allowed


# Mistakes recognised by replaying a whole training run: a run that follows one is genuine training.
TRAINING_MISTAKES = frozenset({
    DiagnosisCode.GRADIENT_NOT_AVERAGED,
    DiagnosisCode.GRADIENT_MISSING_FACTOR_2,
    DiagnosisCode.GRADIENT_SIGN,
    DiagnosisCode.GRAD_NOT_ZEROED,
    DiagnosisCode.LOSS_AFTER_UPDATE,
    DiagnosisCode.STEP_BEFORE_BACKWARD,
    DiagnosisCode.SHAPE_BROADCAST,
    DiagnosisCode.W_BEFORE_UPDATE,
    DiagnosisCode.HISTORY_ALIASES_TENSOR,
})


def _follows_known_mistake(exercise: Exercise, check: CheckSpec, fields: dict[str, Any],
                           peers: tuple[diagnose.Peer, ...]) -> bool:
    """Whether a trajectory check watching the same run names a cataloged mistake in it."""
    for peer in peers:
        if peer.check.key == check.key and peer.check.compare == "trajectory" and peer.reference:
            found = diagnose.from_behaviour(exercise, peer.check, fields, peer.reference, None, peers)
            if found is not None and found.code in TRAINING_MISTAKES:
                return True
    return False


def _close(observed: Any, expected: Any, tol: Tolerance) -> bool:
    """Every number of `observed` within tolerance of `expected`, same shape, all finite."""
    try:
        got, want = _array(observed), _array(expected)
    except (TypeError, ValueError):
        return False
    if got.shape != want.shape:
        return False
    return bool(np.all(np.abs(got - want) <= tol.absolute(want) + tol.rtol * np.abs(want)))


def evaluate(exercise: Exercise, check: CheckSpec, observed: Result | None,
             reference: dict[str, Any] | None, device: str, run_problem: str | None,
             timed_out: bool, peers: tuple[diagnose.Peer, ...] = (), source: Code | None = None) -> CheckResult:
    """One check on one device. `peers` (the other checks' answers and references on the same device) are
    evidence for diagnoses only: a function that returned another check's answer ignores its arguments.
    `source` (the student's parsed code) only lets messages quote the student's own lines."""
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
                check, fields, expected, tol, lambda: shapes_fit(fields, expected) and _follows_known_mistake(exercise, check, fields, peers))
        elif check.compare == "trajectory":
            verdict = compare_trajectory(check, fields, expected, tol, reveal)
        else:
            verdict = compare_value(check, fields, expected, tol, reveal)
    except (TypeError, ValueError, ArithmeticError):
        return replace(base, symptom=MALFORMED_RESULT)
    # Plotting data for visible checks only, passed or not: hidden references must never leave the grader.
    trajectory = _trajectory(check, fields, expected) if reveal else None
    if verdict.passed:
        return replace(base, status=Status.PASSED, score=check.points, symptom=verdict.message,
                       trajectory=trajectory)
    result = replace(base, status=Status.FAILED, symptom=verdict.message,
                     first_divergent_epoch=verdict.first_divergent_epoch, trajectory=trajectory)
    if code is None and not shapes_fit(fields, expected):
        return result  # no replay on shapes the reference does not have (80,000 forged rows of weights)
    try:
        found = diagnose.from_behaviour(exercise, check, fields, expected, code, peers, source)
    except (TypeError, ValueError, ArithmeticError):  # garbled extra fields: no diagnosis rather than no report
        found = None
    return diagnose.attach(result, found)


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
    if kind in ("type", "shape"):
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
