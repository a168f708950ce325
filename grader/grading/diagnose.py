"""Turning a failed comparison into a named mistake (docs/diagnoses.md's codes) and an explanation.

Every detector looks at behaviour only: the numbers a submission returned (compared with float64
simulations of each cataloged mistake, see mistakes.py), the same function's answers for the other
checks' arguments, the counts and order of backward() / step() / zero_grad() calls, the warnings it raised,
or the exception it threw. A detector returns a Diagnosis or None; the first one that fires wins, so the
order of DETECTORS is from the most specific evidence to the least. A correct submission never reaches
this module: diagnoses are only asked for checks that failed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from grader.course.exercises import CheckSpec, Exercise
from grader.course.source import Code
from grader.grading import mistakes, update_rules
from grader.grading.explanations import (  # moved to explanations.py, still named here
    EXPLANATIONS as EXPLANATIONS,
    GRADIENT_NOT_AVERAGED_LOSS as GRADIENT_NOT_AVERAGED_LOSS,
    TORCH_EXPLANATIONS as TORCH_EXPLANATIONS,
    Diagnosis as Diagnosis,
    make as make,
    standard_explanations as standard_explanations,
)
from grader.grading.raised import (  # moved to raised.py, still named here
    Peer as Peer,
    _for_the_model as _for_the_model,
    from_error as from_error,
    missing_name as missing_name,
)
from grader.model.codes import DiagnosisCode
from grader.model.report import CheckResult


@dataclass(frozen=True)
class Evidence:
    exercise: Exercise
    check: CheckSpec
    observed: dict[str, Any]
    expected: dict[str, Any]
    peers: tuple[Peer, ...] = field(default=())
    source: Code | None = None  # the student's code, for quoting their own lines

    def same_probe_peers(self) -> list[Peer]:
        """Checks that call the same probe with different arguments."""
        return [p for p in self.peers if p.check.probe == self.check.probe and p.check.args != self.check.args]


Detector = Callable[[Evidence], Diagnosis | None]
DETECTORS: list[Detector] = []


def detector(function: Detector) -> Detector:
    DETECTORS.append(function)
    return function


def from_behaviour(exercise: Exercise, check: CheckSpec, observed: dict[str, Any],
                   expected: dict[str, Any], process_code: str | None = None,
                   peers: tuple[Peer, ...] = (), source: Code | None = None) -> Diagnosis | None:
    """The mistake behind a check that ran but did not match, or None when no evidence names one."""
    if process_code:
        return make(process_code, framework=exercise.framework)
    evidence = Evidence(exercise, check, observed, expected, peers, source)
    for detect in DETECTORS:
        try:
            found = detect(evidence)
        except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError):
            continue  # the fields are untrusted: malformed evidence names no mistake
        if found:
            return _for_the_model(exercise, check, found)
    return None


def attach(result: CheckResult, found: Diagnosis | None) -> CheckResult:
    """The result with the mistake named: its code and explanation as their own fields (report.compose
    writes the message from them)."""
    if found is None:
        return result
    particular = found.explanation[:len(found.explanation) - len(found.stock)] \
        if found.stock and found.explanation.endswith(found.stock) else None
    return replace(result, diagnosis=found.code, explanation=found.explanation, cause_first=found.cause_first,
                   explanation_detail=particular)


def ratio(observed: Any, expected: Any) -> float | None:
    """The single factor relating observed to expected, if there is one (e.g. N, 1/2, -1)."""
    got, want = np.asarray(observed, dtype=float), np.asarray(expected, dtype=float)
    if got.shape != want.shape or not np.all(np.isfinite(got)):
        return None
    mask = np.abs(want) > 1e-6 * max(1.0, float(np.max(np.abs(want), initial=0.0)))
    if not mask.any():
        return None
    factors = got[mask] / want[mask]
    factor = float(np.median(factors))
    if np.allclose(factors, factor, rtol=1e-3, atol=0):
        return factor
    return None


# ---- detectors, most specific evidence first


@detector
def broadcast_warning(evidence: Evidence) -> Diagnosis | None:
    """PyTorch's MSELoss warns when the target size differs from the input size."""
    if evidence.observed.get("broadcast_warning"):
        return make(DiagnosisCode.SHAPE_BROADCAST, "PyTorch warned that the target size differs from the input size.")
    return None


@detector
def step_order(evidence: Evidence) -> Diagnosis | None:
    """optimizer.step() seen before the first backward(): the step cannot use this epoch's gradient."""
    order = str(evidence.observed.get("event_order") or "")
    if "S" in order and "B" in order and order.index("S") < order.index("B"):
        return make(DiagnosisCode.STEP_BEFORE_BACKWARD, "Your first optimizer.step() came before any backward().",
                    evidence.exercise.framework)
    return None


@detector
def history_aliases_tensor(evidence: Evidence) -> Diagnosis | None:
    """Every entry of a history column is one live tensor or array (the child saw the shared memory), so all
    of them show its final value; the other columns must follow the reference or a cataloged run."""
    fields = history_fields(evidence)
    aliased = [f for f in fields if evidence.observed.get(f"aliased_{f}") is True]
    if not aliased:
        return None
    observed = evidence.observed
    if any(np.ptp(np.asarray(observed[f], float)) != 0 for f in aliased):
        return None
    problem = problem_for(evidence.check, observed)
    candidates: list[tuple[str, dict[str, Any]]] = [("", evidence.expected)]
    if problem is not None:
        for entry in mistakes.catalog(problem):
            simulated = mistakes.simulate(problem, entry.mistake)
            candidates.append((entry.description, {"loss": simulated.loss, "w": simulated.w, "grad": simulated.grad}))
    others = [f for f in fields if f not in aliased]
    for description, run in candidates:
        if any(run.get(f) is None or mistakes.deviation(observed[f], run[f]) > mistakes.MATCH for f in others):
            continue
        if any(run.get(f) is not None and mistakes.deviation([observed[f][-1]], [run[f][-1]]) > mistakes.MATCH
               for f in aliased):
            continue
        function = evidence.check.probe if evidence.check.probe in evidence.exercise.functions else "train"
        line = evidence.source.append_of(function, aliased[0]) if evidence.source else None
        quoted = f" ({line})" if line else ""
        if line and ".data" in str(line):  # the misconception: `.data` is thought to be a copy
            quoted += (f"; `{aliased[0]}.data` is not a copy: it is a view of the same memory, so it changes with "
                       f"{aliased[0]} at every step")
        also = f" Apart from that, your run follows one with {description}." if description else ""
        return make(DiagnosisCode.HISTORY_ALIASES_TENSOR, f"Every {aliased[0]} in your history is the same value, "
                    f"{fmt_number(observed[aliased[0]][-1])}: the one it had at the end{quoted}.{also}")
    return None


def fmt_number(value: Any) -> str:
    return f"{float(value):.8g}"


@detector
def argument_order(evidence: Evidence) -> Diagnosis | None:
    """A helper whose answer, for the exercise's order of arguments, is the true one for another order: the
    order the student's own train passes them in (the substitute recognised them by value)."""
    check, exercise = evidence.check, evidence.exercise
    if "value" not in evidence.observed or check.probe not in exercise.functions:
        return None
    orders = {str((p.observed or {}).get("call_orders", {}).get(check.probe))
              for p in evidence.peers if isinstance((p.observed or {}).get("call_orders"), dict)} - {"None"}
    args = check.args
    for order in orders:
        roles = [r.strip() for r in order.split(",")]
        if sorted(roles) != ["x", "y", "y_pred"] or not {"x", "y", "y_pred"} <= args.keys():
            continue
        given = [args["x"], args["y"], args["y_pred"]]  # the exercise's order, as the grader passed them
        meaning = {role: np.asarray(value, float) for role, value in zip(roles, given, strict=False)}
        theirs = float(np.mean(2 * meaning["x"] * (meaning["y_pred"] - meaning["y"])))
        if mistakes.deviation([evidence.observed["value"]], [theirs]) > mistakes.MATCH:
            continue
        if mistakes.deviation([evidence.expected.get("value")], [theirs]) <= mistakes.MATCH:
            continue  # the orders agree on these numbers: no evidence
        signature = evidence.source.signature(check.probe) if evidence.source else None
        wrote = f"You wrote `def {signature}`" if signature else f"Your `{check.probe}` takes ({order})"
        return make(DiagnosisCode.ARGUMENT_ORDER, f"{wrote}, and your train calls it as {check.probe}({order}), "
                    f"which is consistent; but the exercise's signature is {check.probe}(x, y, y_pred).")
    return None


@detector
def gradient_factor(evidence: Evidence) -> Diagnosis | None:
    """A gradient that is a fixed multiple of the true one: N (summed), 1/2 (no factor 2), -1 (sign)."""
    if evidence.check.probe != "gradient" or "value" not in evidence.observed:
        return None
    factor = ratio(evidence.observed["value"], evidence.expected.get("value"))
    if factor is None:
        return None
    n = len(evidence.check.args.get("x", [])) or 1
    detail = f"Your gradient is {factor:.6g} times the true one"
    if n > 1 and abs(factor - n) < 1e-3 * n:
        return make(DiagnosisCode.GRADIENT_NOT_AVERAGED, f"{detail}, and there are N = {n} samples.",
                    source=evidence.source)
    if abs(factor - 0.5) < 1e-3:
        return make(DiagnosisCode.GRADIENT_MISSING_FACTOR_2)
    if abs(factor + 1) < 1e-3:
        return make(DiagnosisCode.GRADIENT_SIGN, "Your gradient is the true one with its sign flipped.")
    return None


@detector
def summed_loss(evidence: Evidence) -> Diagnosis | None:
    """A loss N times the MSE: summed over the samples, so its gradient is N times too large as well."""
    if evidence.check.probe != "loss" or "value" not in evidence.observed:
        return None
    factor = ratio(evidence.observed["value"], evidence.expected.get("value"))
    n = len(evidence.check.args.get("y", [])) or 1
    if factor is not None and n > 1 and abs(factor - n) < 1e-3 * n:
        source = evidence.source
        line = source.first_line_with("loss", ".sum(", "sum(", "reduction='sum'", 'reduction="sum"') if source else None
        quoted = f" It sums here: {line}." if line else ""
        return Diagnosis(DiagnosisCode.GRADIENT_NOT_AVERAGED, f"Your loss is {factor:.6g} times the MSE, and there "
                         f"are N = {n} samples: it sums the squared errors instead of averaging them.{quoted} "
                         f"{GRADIENT_NOT_AVERAGED_LOSS}")
    return None


@detector
def broadcast_loss_value(evidence: Evidence) -> Diagnosis | None:
    """A loss equal to the mean over all (n, n) pairs (y_pred_i - y_j)**2: a column against a row."""
    args = evidence.check.args
    if evidence.check.probe != "loss" or not {"y", "y_pred"} <= args.keys() or "value" not in evidence.observed:
        return None
    y, y_pred = np.asarray(args["y"], float).reshape(-1), np.asarray(args["y_pred"], float).reshape(-1)
    broadcast = float(np.mean((y_pred[:, None] - y[None, :]) ** 2))
    if mistakes.deviation([evidence.observed["value"]], [broadcast]) <= mistakes.MATCH:
        return make(DiagnosisCode.SHAPE_BROADCAST, f"Your loss is {broadcast:.6g}, the mean over all "
                    f"{y.size}×{y.size} pairs of predictions and targets.")
    return None


def problem_for(check: CheckSpec, observed: dict[str, Any]) -> mistakes.Problem | None:
    """The training run a trajectory check asked for, when it is one of the course's linear models."""
    args = check.args
    if isinstance(args.get("loss"), str) and {"w", "learning_rate", "n_iters"} <= args.keys():
        objective = formula(args["loss"])
        return None if objective is None else mistakes.Problem.of_function(
            objective, args["w"], args["learning_rate"], args["n_iters"])
    if not {"x", "y", "learning_rate", "n_iters"} <= args.keys():
        return None
    try:
        if "w" in args:
            return mistakes.Problem.scalar(args["x"], args["y"], args["w"], args["learning_rate"],
                                           args["n_iters"])
        if "initial_weight" in observed and "initial_bias" in observed:
            return mistakes.Problem.linear(args["x"], args["y"], observed["initial_weight"],
                                           observed["initial_bias"], args["learning_rate"], args["n_iters"])
    except (TypeError, ValueError):
        return None
    return None


class _NumpyAsTorch:
    """Just enough of `torch` for the spec's loss formulas (torch.sin, torch.cosh, ...) to run on NumPy."""

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)


def formula(text: str) -> Callable[[Any], Any] | None:
    """A check's loss formula in w (ex02) as a NumPy function. The formula comes from the exercise's spec,
    which the instructor wrote (the same text the probe evaluates with torch), never from a student."""
    try:
        function = eval(f"lambda w: {text}", {"__builtins__": {}, "torch": _NumpyAsTorch()})
        function(0.5)
    except Exception:  # noqa: BLE001 - a formula NumPy cannot run just gets no simulation
        return None
    return function


@detector
def simulated_mistake(evidence: Evidence) -> Diagnosis | None:
    """The cataloged mistake whose float64 simulation the student's history follows epoch by epoch, unless
    the same function passed another check where that mistake would have shown."""
    problem = problem_for(evidence.check, evidence.observed)
    fields = history_fields(evidence)
    if problem is None or not fields:
        return None
    for entry, _ in mistakes.matches(problem, evidence.observed, fields):
        if entry.mistake.frozen and "S" not in str(evidence.observed.get("event_order") or ""):
            continue  # parameters that never move name step-before-backward only when steps were taken
        if contradicted_by_a_passing_peer(evidence, entry.label, fields):
            continue
        return make(entry.code, f"Your {' and '.join(fields)} match, epoch by epoch, a run with "
                    f"{entry.description}.", evidence.exercise.framework, evidence.source)
    return None


@detector
def other_update_rule(evidence: Evidence) -> Diagnosis | None:
    """A history that follows another update rule's simulation (update_rules.py): a torch.optim optimizer
    other than plain SGD (momentum, Nesterov, Adam, RMSprop, Adagrad), or updates once per sample or
    mini-batch inside the epoch."""
    problem = problem_for(evidence.check, evidence.observed)
    fields = history_fields(evidence)
    if problem is None or not fields:
        return None
    found = update_rules.other_rule(problem, evidence.observed, fields)
    if found is None:
        return None
    code = DiagnosisCode.WRONG_OPTIMIZER if found.kind == "optimizer" else DiagnosisCode.PER_SAMPLE_UPDATES
    return make(code, found.detail, evidence.exercise.framework)


def contradicted_by_a_passing_peer(evidence: Evidence, label: str, fields: tuple[str, ...]) -> bool:
    """A loop mistake shows in every run: the same function matching another check's reference, where the
    mistake would have changed the result, rules it out (e.g. an ignored learning rate that looks like ½)."""
    for peer in evidence.same_probe_peers():
        if peer.observed is None or peer.reference is None:
            continue
        if not _close(peer.observed, peer.reference, evidence.check.fields):
            continue
        problem = problem_for(peer.check, peer.observed)
        if problem is not None and mistakes.shows_in(problem, label, peer.reference, fields):
            return True
    return False


def history_fields(evidence: Evidence) -> tuple[str, ...]:
    """The per-epoch quantities a training probe returned (for a check on the trained parameters too)."""
    return tuple(name for name in ("loss", "w", "grad") if isinstance(evidence.observed.get(name), list))


@detector
def ignored_argument(evidence: Evidence) -> Diagnosis | None:
    """Training that follows the correct run for another check's data, learning rate or start instead."""
    problem = problem_for(evidence.check, evidence.observed)
    fields = history_fields(evidence)
    if problem is None or not fields:
        return None
    for peer in evidence.same_probe_peers():
        for names in (("x", "y"), ("loss",), ("learning_rate",), ("w",)):
            other = peer.check.args
            if any(n not in other for n in names) or all(other[n] == evidence.check.args[n] for n in names):
                continue
            swapped = swap(problem, {n: other[n] for n in names})
            if swapped is None:
                continue
            if mistakes.fields_deviation(evidence.observed, mistakes.simulate(swapped), fields) <= mistakes.MATCH:
                # A hidden check's arguments stay hidden: name the values only when that check is visible.
                values = f" = {_short(other, names)}" if peer.check.visibility == "visible" else ""
                own = f" ({_short(evidence.check.args, names)})" if evidence.check.visibility == "visible" else ""
                arguments = " and ".join(f"`{n}`" for n in names)
                return make(DiagnosisCode.IGNORES_ARGUMENTS, "Your history is the correct one for "
                            f"{', '.join(names)}{values} (another check's), not for the {', '.join(names)} passed "
                            f"in{own}: your code uses a fixed value or a global where it should use its "
                            f"{arguments} argument{'s' if len(names) > 1 else ''}.")
    return None


def swap(problem: mistakes.Problem, values: dict[str, Any]) -> mistakes.Problem | None:
    """The same run with some arguments taken from another check (None when the shapes cannot fit)."""
    changes: dict[str, Any] = {}
    if "learning_rate" in values:
        changes["learning_rate"] = float(values["learning_rate"])
    if "w" in values:
        changes["params"] = (np.asarray(float(values["w"])),)
    if "loss" in values:
        changes["objective"] = formula(str(values["loss"]))
        if changes["objective"] is None:
            return None
    if "x" in values:
        x, y = np.asarray(values["x"], float), np.asarray(values["y"], float)
        if x.shape[1:] != problem.x.shape[1:] or (y.ndim > 1 and y.shape[1:] != problem.y.shape[1:]):
            return None
        changes["x"], changes["y"] = x, (y[:, None] if problem.y.ndim == 2 and y.ndim == 1 else y)
    return problem.with_args(**changes)


def _short(args: dict[str, Any], names: tuple[str, ...]) -> str:
    texts = []
    for name in names:
        if isinstance(args[name], str):
            texts.append(args[name])
            continue
        flat = np.asarray(args[name], float).reshape(-1)
        if np.ndim(args[name]) == 0:
            texts.append(f"{float(flat[0]):g}")
        else:
            texts.append("[" + ", ".join(f"{v:g}" for v in flat[:4]) + (", ...]" if flat.size > 4 else "]"))
    return ", ".join(texts)


@detector
def no_backward(evidence: Evidence) -> Diagnosis | None:
    """A training run without any backward() where the exercise requires autograd (its process check)."""
    requires_autograd = any(p.check.compare == "process" and p.check.require == "backward" for p in evidence.peers)
    observed = evidence.observed
    if requires_autograd and observed.get("backward_calls") == 0 and observed.get("autograd_grad_calls") == 0:
        return make(DiagnosisCode.NO_AUTOGRAD, "Your training never called backward().", evidence.exercise.framework)
    return None


@detector
def same_answer_for_other_arguments(evidence: Evidence) -> Diagnosis | None:
    """The same answer as for another check's (different) arguments, where the right answers differ."""
    fields = evidence.check.fields or ("value",)
    for peer in evidence.same_probe_peers():
        if peer.reference is None or _close(peer.reference, evidence.expected, fields):
            continue  # the right answers coincide: no evidence either way
        for answer in (peer.observed, peer.reference):
            if answer is not None and _close(evidence.observed, answer, fields):
                return make(DiagnosisCode.IGNORES_ARGUMENTS,
                            "Your answer is the same as for another check's arguments.")
    return None


def _close(a: dict[str, Any], b: dict[str, Any], fields: tuple[str, ...]) -> bool:
    for name in fields:
        if name not in a or name not in b:
            return False
        got, want = np.asarray(a[name], float), np.asarray(b[name], float)
        if got.shape != want.shape or mistakes.deviation(got, want) > mistakes.MATCH:
            return False
    return True
