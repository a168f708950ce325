"""Turning a failed comparison into a named mistake (CONTRACT.md's diagnosis codes) and an explanation.

Every detector looks at behaviour only: the numbers a submission returned, the counts of backward() and
step() calls, the warnings it raised, or the exception it threw. A detector returns a Diagnosis or None;
the first one that fires wins, so the order of DETECTORS is from the most specific evidence to the least.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from grader.exercises import CheckSpec, Exercise
from grader.report import CheckResult


@dataclass(frozen=True)
class Diagnosis:
    code: str
    explanation: str


EXPLANATIONS = {
    "gradient-not-averaged": (
        "Your gradient is N times too large: it sums over the samples instead of averaging. "
        "`np.dot(2*x, y_pred - y)` already adds up the N products, so the `.mean()` after it averages a "
        "single number and changes nothing. Use `np.mean(2*x*(y_pred - y))`. This is the notebooks' own bug: "
        "autograd is not 'less exact', it computes the true MSE gradient, and this one is N times too big."
    ),
    "gradient-missing-factor-2": (
        "Your gradient is half the true one. The derivative of (w*x - y)**2 is 2*x*(w*x - y): "
        "the factor 2 from the square is missing."
    ),
    "gradient-sign": (
        "Your update climbs the gradient instead of descending it. Gradient descent subtracts: "
        "w = w - learning_rate * gradient (and the gradient is of (y_pred - y), not (y - y_pred))."
    ),
    "grad-not-zeroed": (
        "Your gradients accumulate across epochs: PyTorch adds each backward() into .grad. "
        "Reset it every epoch with w.grad.zero_() (or optimizer.zero_grad())."
    ),
    "loss-after-update": (
        "Your history is one epoch off: the loss is recorded after the update instead of before it. "
        "Record the loss computed from the prediction at the start of the epoch."
    ),
    "step-before-backward": (
        "optimizer.step() runs before loss.backward(), so each step uses the previous epoch's gradient "
        "(or none at all in the first epoch). The order is: zero_grad(), backward(), step()."
    ),
    "shape-broadcast": (
        "Your prediction and target have different shapes, e.g. (n, 1) against (n,): subtracting them "
        "broadcasts to an (n, n) matrix and the MSE averages the wrong numbers. Make the shapes equal."
    ),
    "ignores-arguments": (
        "Your function gives the same answer when its arguments change: it uses global variables or "
        "constants instead of its parameters. Use only the arguments passed in."
    ),
    "no-autograd": (
        "The gradient was not computed by autograd. This exercise is about backpropagation: create w with "
        "requires_grad=True, call loss.backward(), and read w.grad."
    ),
    "no-optimizer": (
        "The update bypasses torch.optim. Create torch.optim.SGD(..., lr=learning_rate) and let "
        "optimizer.step() update the parameters."
    ),
    "device-mismatch": (
        "Some of your tensors are on the CPU while the inputs are on the GPU. Create new tensors with "
        "device=x.device (or move them with .to(x.device))."
    ),
    "not-implemented": (
        "This function still raises NotImplementedError from the stub. Replace the `raise` with your code."
    ),
}

Detector = Callable[[Exercise, CheckSpec, dict[str, Any], dict[str, Any]], str | None]
DETECTORS: list[Detector] = []


def detector(function: Detector) -> Detector:
    DETECTORS.append(function)
    return function


def make(code: str, detail: str = "") -> Diagnosis:
    return Diagnosis(code, (detail + " " if detail else "") + EXPLANATIONS[code])


def from_behaviour(exercise: Exercise, check: CheckSpec, observed: dict[str, Any],
                   expected: dict[str, Any], process_code: str | None = None) -> Diagnosis | None:
    if process_code:
        return make(process_code)
    for detect in DETECTORS:
        code = detect(exercise, check, observed, expected)
        if code:
            return make(code)
    return None


def from_error(exercise: Exercise, check: CheckSpec, error: dict[str, Any]) -> Diagnosis | None:
    kind, text = error.get("kind"), str(error.get("message", ""))
    if kind == "not-implemented":
        return make("not-implemented")
    if "Expected all tensors to be on the same device" in text or "is on the wrong device" in text:
        return make("device-mismatch")
    if kind == "shape" and "(n, 1)" in text:
        return make("shape-broadcast")
    return None


def attach(result: CheckResult, found: Diagnosis | None) -> CheckResult:
    if found is None:
        return result
    return replace(result, diagnosis=found.code, message=f"{result.message} {found.explanation}".strip())


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


@detector
def gradient_factor(exercise: Exercise, check: CheckSpec, observed: dict[str, Any],
                    expected: dict[str, Any]) -> str | None:
    """A gradient that is a fixed multiple of the true one: N (summed), 1/2 (no factor 2), -1 (sign)."""
    if check.probe != "gradient" or "value" not in observed:
        return None
    factor = ratio(observed["value"], expected["value"])
    if factor is None:
        return None
    n = len(check.args.get("x", [])) or 1
    if n > 1 and abs(factor - n) < 1e-3 * n:
        return "gradient-not-averaged"
    if abs(factor - 0.5) < 1e-3:
        return "gradient-missing-factor-2"
    if abs(factor + 1) < 1e-3:
        return "gradient-sign"
    return None


@detector
def broadcast_warning(exercise: Exercise, check: CheckSpec, observed: dict[str, Any],
                      expected: dict[str, Any]) -> str | None:
    return "shape-broadcast" if observed.get("broadcast_warning") else None
