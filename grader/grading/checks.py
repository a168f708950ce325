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

from grader.course.exercises import CheckSpec, Exercise
from grader.course.source import Code
from grader.grading import diagnose, mistakes
from grader.model.codes import DiagnosisCode
from grader.model.report import CheckResult, Status
from grader.sandbox.protocol import ChildError, Result

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
    epoch, name, expected_value, got_value = first
    exp_text = fmt(expected_value) if reveal else "a different value"
    return Verdict(
        False,
        f"first divergence at epoch {epoch + 1}: {name} expected {exp_text}, got {fmt(got_value)} "
        f"(tolerance {tol}).",
        first_divergent_epoch=epoch + 1,
    )


PROCESS_RULES = {
    # rule: (fields whose calls count, at least once per epoch; diagnosis when they do not; what to do)
    "backward": (("backward_calls", "autograd_grad_calls"), DiagnosisCode.NO_AUTOGRAD,
                 "call loss.backward() once per epoch"),
    "optimizer": (("step_calls",), DiagnosisCode.NO_OPTIMIZER, "call optimizer.step() once per epoch"),
}


@dataclass(frozen=True)
class Counterfactual:
    """A process check's call run once more at the end of the job, for its first epochs (COUNTERFACTUAL_EPOCHS),
    with the mechanism perturbed: autograd's
    gradients scaled by `gradient`, every optimizer step's learning rate by `rate` (factors the parent drew for
    that run). `fields` is what that call returned (None: nothing)."""

    gradient: float
    rate: float
    fields: dict[str, Any] | None


# A counterfactual call runs this many epochs at most: a loop's response to the perturbation shows from its
# first update on, and the call costs a few epochs instead of the whole run (issue 22: within 1.25x).
COUNTERFACTUAL_EPOCHS = 6


def counterfactual_args(args: dict[str, Any]) -> dict[str, Any]:
    """A process check's call's arguments for its counterfactual call: its first epochs only."""
    if not isinstance(args.get("n_iters"), int):
        return args
    return {**args, "n_iters": min(args["n_iters"], COUNTERFACTUAL_EPOCHS)}


# Which perturbations a run using the mechanism responds to: autograd scales the step by `gradient` (and by
# `rate` too where the step is an optimizer's); an optimizer's step scales it by `rate` (and by `gradient` too
# where the gradient it applies is autograd's).
RESPONSES = {"backward": ("gradient", "both"), "optimizer": ("rate", "both")}


def compare_process(check: CheckSpec, observed: dict[str, Any], reference: dict[str, Any],
                    tol: Tolerance, known_mistake: Callable[[], bool] = lambda: False,
                    response: Callable[[], str | None] = lambda: None) -> tuple[Verdict, str | None]:
    """Counts of backward()/step() calls, credited only where they are the process behind the history.

    A count alone proves nothing: backward() on a dummy tensor beside a NumPy gradient, or step() on a
    dummy optimizer, count as much as the real ones. So the calls must carry the history, epoch by epoch:
    each update of w is the step autograd's gradient on the leaf holding w gives (w - lr × that gradient,
    or a cataloged mistake's rule), or the transition an optimizer step made (before it, the previous w;
    after it, this w; nothing else moved a model's parameters between steps). A history that shows no
    training earns nothing, and the run must match the reference or follow a cataloged mistake
    (`known_mistake`). Last, the evidence by intervention (`response`, see `counterfactual_response`): a
    second run with the mechanism perturbed must respond as a run using it does.
    """
    names, code, advice = PROCESS_RULES[check.require or ""]
    n_iters = int(check.args.get("n_iters", 1))
    count = sum(_count(observed.get(name, 0)) for name in names)
    label = f"{names[0].replace('_', ' ')}: {count} for {n_iters} epochs"
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
    why_not = response()
    if why_not is not None:
        return Verdict(False, f"{label}, but {why_not}; {advice} and let it {UPDATES[check.require or '']}."), code
    return Verdict(True, f"{label}."), None


UPDATES = {"backward": "compute the gradient you update w with", "optimizer": "update the parameters"}
MECHANISMS = {"backward": "the gradients autograd returns", "optimizer": "the optimizer's learning rate"}


def counterfactual_response(exercise: Exercise, check: CheckSpec, observed: dict[str, Any],
                            reference: dict[str, Any], tol: Tolerance,
                            counterfactual: Counterfactual | None) -> str | None:
    """Why the counterfactual run did not respond as a run using the mechanism would (None: it did).

    The normal run is the reference's or a cataloged mistake's (compare_process has made sure); the same loop,
    for its first COUNTERFACTUAL_EPOCHS epochs, with autograd's gradients scaled by g and each step's rate by r,
    takes steps scaled by g, r or g·r: its
    history is that loop's float64 simulation at a learning rate scaled so. The factor that fits best must be
    one the rule's mechanism gives, and fit far better than no response at all. A loop that computes its
    gradient by hand, or updates by hand, keeps its steps: it follows the unscaled run."""
    perturbed = MECHANISMS[check.require or ""]
    if counterfactual is None or not isinstance(counterfactual.fields, dict):
        return f"the second run, with {perturbed} changed, gave no history to compare"
    problem = diagnose.problem_for(check, observed)
    fields = tuple(name for name in ("loss", "w") if isinstance(counterfactual.fields.get(name), list)
                   and isinstance(reference.get(name), list) and observed.get(f"aliased_{name}") is not True
                   and counterfactual.fields.get(f"aliased_{name}") is not True)
    if problem is None or not fields:
        return None  # nothing to simulate: the ties by value above are the evidence
    curves = [name for name in fields if isinstance(reference.get(name), list)]
    if all(_close(observed.get(name), reference[name], tol) for name in curves):
        mistake = mistakes.Mistake()
    else:
        found = mistakes.matches(problem, observed, fields)
        if not found:
            return None  # compare_process credited a cataloged mistake on other columns: no simulation here
        mistake = found[0][0].mistake
    factors = {"none": 1.0, "gradient": counterfactual.gradient, "rate": counterfactual.rate,
               "both": counterfactual.gradient * counterfactual.rate}
    rate, epochs = problem.learning_rate, int(counterfactual_args(check.args).get("n_iters", problem.n_iters))
    fit = {name: mistakes.fields_deviation(counterfactual.fields, mistakes.simulate(
        problem.with_args(learning_rate=rate * factor, n_iters=epochs), mistake), fields)
        for name, factor in factors.items()}
    best = min(fit, key=lambda name: fit[name])
    if best in RESPONSES[check.require or ""] and fit[best] <= mistakes.MATCH and fit["none"] > mistakes.MATCH:
        return None
    if best == "none" or fit["none"] <= mistakes.MATCH:
        return (f"in a second run where the grader changed {perturbed}, your history did not change: the "
                f"{'gradient' if check.require == 'backward' else 'update'} it follows is not "
                f"{'autograd' if check.require == 'backward' else 'the optimizer'}'s")
    return f"in a second run where the grader changed {perturbed}, your history did not respond as a run " \
           "using it does"


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
        return _model_steps(observed, n_iters)
    if history is None or "w" not in observed:
        return None
    start = check.args.get("w")
    # The history's w is after each epoch's update; one that records it before (w-before-update) is shifted
    # by one epoch, and still the same process.
    paths = [history] + ([np.concatenate(([float(start)], history))] if isinstance(start, (int, float)) else [])
    if check.require == "backward":
        calls = _pair_lists(observed.get("backward_leaves"))
        rate = float(check.args.get("learning_rate", 0.0))
        scales = _update_scales(check)
        tie = _backward_tie(rate, scales, tol)
        what, did = "a backward()", "gave the gradient of the update that followed"
    else:
        calls, tie = _pair_lists(observed.get("step_pairs")), _step_tie(tol)
        what, did = "an optimizer.step()", "moved w from the previous epoch's value to this one"
    results = [_tied_in_order(calls, path, tie) for path in paths if path.size >= max(1, n_iters - 1)]
    if any(tied >= moves for tied, moves in results):
        return None
    tied = max((t for t, _ in results), default=0)
    moves = min((m for _, m in results), default=n_iters)
    return f"only {tied} of the {moves} updates of w came from {what} call that {did}"


def _update_scales(check: CheckSpec) -> tuple[float, ...]:
    """The multiples of autograd's gradient a cataloged loop steps by: the correct one, the sign flipped,
    half of it and N times it (the gradient itself already carries a summed or halved loss)."""
    n = len(check.args["x"]) if isinstance(check.args.get("x"), list) else 1
    return (1.0, -1.0, 0.5, float(n))


Pair = tuple[float, float]
Tie = Callable[[Pair, float, float, float | None], bool]


def _backward_tie(rate: float, scales: tuple[float, ...], tol: Tolerance) -> Tie:
    """A backward() call's (value of a leaf it reached, gradient autograd put on it) explains the update
    `before -> after` when the leaf held w then (or one epoch earlier: a step that uses the last epoch's
    gradient) and after = before - rate × scale × gradient."""
    def tie(pair: Pair, before: float, after: float, earlier: float | None) -> bool:
        value, gradient = pair
        allowed = _allowed(after, tol)
        if not (_same(value, before, _allowed(before, tol)) or
                (earlier is not None and _same(value, earlier, _allowed(earlier, tol)))):
            return False
        return any(_same(before - rate * scale * gradient, after, allowed) for scale in scales)
    return tie


def _step_tie(tol: Tolerance) -> Tie:
    """An optimizer step's (parameter before, parameter after) is the update `before -> after` itself."""
    def tie(pair: Pair, before: float, after: float, earlier: float | None) -> bool:
        return _same(pair[0], before, _allowed(before, tol)) and _same(pair[1], after, _allowed(after, tol))
    return tie


def _allowed(value: float, tol: Tolerance) -> float:
    scale = max(1.0, abs(value)) if math.isfinite(value) else 1.0
    return tol.atol * scale + tol.rtol * abs(value) if math.isfinite(value) else 0.0


def _tied_in_order(calls: list[list[Pair]], path: np.ndarray, tie: Tie) -> tuple[int, int]:
    """(updates explained, updates): each move of `path` must be explained by a later call than the last
    move's (a move of zero needs no call: a first step before any gradient)."""
    tied = moves = 0
    position = 0
    for index in range(path.size - 1):
        before, after = float(path[index]), float(path[index + 1])
        if before == after:
            continue
        moves += 1
        earlier = float(path[index - 1]) if index else None
        for at in range(position, len(calls)):
            if any(tie(pair, before, after, earlier) for pair in calls[at]):
                tied, position = tied + 1, at + 1
                break
    return tied, moves


def _pair_lists(value: Any) -> list[list[Pair]]:
    """Per call, its (value, value) pairs; anything else in the untrusted list counts as no pair."""
    if not isinstance(value, list):
        return []
    calls = []
    for call in value[:MAX_COUNT]:
        pairs = call if isinstance(call, list) else []
        calls.append([(float(p[0]), float(p[1])) for p in pairs
                      if isinstance(p, list) and len(p) == 2 and all(isinstance(v, float) for v in p)])
    return calls


def _model_steps(observed: dict[str, Any], n_iters: int) -> str | None:
    """ex05: every step ran on an optimizer holding the whole model, the first began from the model's
    initial parameters, each began where the last ended (nothing else moved them), and the last ended at the
    trained parameters the run returned."""
    holding = _count(observed.get("steps_holding_model"))
    if holding < n_iters:
        return f"only {holding} of them ran on an optimizer that holds the model's parameters"
    steps = observed.get("model_steps")
    if not isinstance(steps, list) or len(steps) < n_iters:
        return "the grader saw no record of what the steps did to the model"
    start = _flat(observed, "initial_weight", "initial_bias")
    end = _flat(observed, "weight", "bias")
    position = start
    for number, step in enumerate(steps[:MAX_COUNT], 1):
        pair = isinstance(step, list) and len(step) == 2
        before, after = (_array(step[0]), _array(step[1])) if pair else (None, None)
        if before is None or after is None or before.shape != after.shape or before.ndim != 1:
            return f"the record of step {number} is unreadable"
        if position is not None and not _unmoved(position, before):
            return f"the model's parameters moved between two steps (before step {number}) without the optimizer"
        position = after
    if end is not None and position is not None and not _unmoved(position, end):
        return "the model's parameters moved after the last step without the optimizer"
    return None


def _flat(observed: dict[str, Any], weight: str, bias: str) -> np.ndarray | None:
    if not isinstance(observed.get(weight), list) or not isinstance(observed.get(bias), list):
        return None
    return np.concatenate((_array(observed[weight]).reshape(-1), _array(observed[bias]).reshape(-1)))


def _unmoved(first: np.ndarray, second: np.ndarray) -> bool:
    """The same parameters (float32 values read twice), up to their own rounding."""
    return first.shape == second.shape and bool(np.all(np.abs(first - second) <= 1e-6 * np.maximum(1.0, np.abs(first))))


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
