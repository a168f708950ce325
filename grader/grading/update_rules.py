"""Other update rules than the exercise's plain gradient step, simulated in NumPy float64: torch.optim's
momentum, Nesterov, Adam, RMSprop and Adagrad, and updates once per sample or mini-batch inside an epoch.

The rules are torch.optim's own (torch/optim/sgd.py, adam.py, rmsprop.py, adagrad.py, with their default
settings), so a student's history that follows one epoch by epoch names that rule and the setting that
differs. diagnose.py asks `other_rule` only for a training check that failed; the parent never runs the
student's code for it: these are the parent's simulations of the same `mistakes.Problem`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from grader.grading import mistakes

# torch.optim's defaults
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8
RMSPROP_ALPHA, RMSPROP_EPS = 0.99, 1e-8
ADAGRAD_EPS = 1e-10
# The momentum values tutorials and courses write; the step rule is linear in nothing, so each is simulated.
MOMENTA = (0.9, 0.5, 0.99, 0.95, 0.8)


@dataclass(frozen=True)
class Rule:
    """One update rule: how the optimizer's state turns each epoch's gradient into a step."""

    name: str  # what the message calls it: "torch.optim.SGD with momentum=0.9"
    setting: str  # the setting that differs from plain SGD: "momentum=0.9"
    kind: str  # "momentum", "nesterov", "adam", "rmsprop", "adagrad"
    momentum: float = 0.0


def rules() -> list[Rule]:
    """Every rule simulated, the plainest first."""
    found = [Rule(f"torch.optim.SGD with momentum={m:g}", f"momentum={m:g}", "momentum", m) for m in MOMENTA]
    found += [Rule(f"torch.optim.SGD with momentum={m:g}, nesterov=True", f"momentum={m:g}, nesterov=True",
                   "nesterov", m) for m in MOMENTA]
    found += [
        Rule("torch.optim.Adam", "Adam's moment estimates (betas=(0.9, 0.999))", "adam"),
        Rule("torch.optim.RMSprop", "RMSprop's running average of squared gradients (alpha=0.99)", "rmsprop"),
        Rule("torch.optim.Adagrad", "Adagrad's sum of squared gradients", "adagrad"),
    ]
    return found


Step = Callable[[int, np.ndarray, int], np.ndarray]  # (epoch from 1, gradient, parameter index) -> step


def _stepper(rule: Rule, rate: float) -> Step:
    """The step each epoch's gradient gives under `rule`, as torch.optim computes it (state per parameter)."""
    state: dict[int, dict[str, np.ndarray]] = {}

    def step(t: int, grad: np.ndarray, index: int) -> np.ndarray:
        held = state.setdefault(index, {})
        if rule.kind in ("momentum", "nesterov"):
            buffer = grad.copy() if "buffer" not in held else rule.momentum * held["buffer"] + grad
            held["buffer"] = buffer
            return rate * (grad + rule.momentum * buffer if rule.kind == "nesterov" else buffer)
        if rule.kind == "adam":
            beta1, beta2 = ADAM_BETAS
            held["m"] = beta1 * held.get("m", np.zeros_like(grad)) + (1 - beta1) * grad
            held["v"] = beta2 * held.get("v", np.zeros_like(grad)) + (1 - beta2) * grad * grad
            denominator = np.sqrt(held["v"]) / np.sqrt(1 - beta2**t) + ADAM_EPS
            return (rate / (1 - beta1**t)) * held["m"] / denominator
        if rule.kind == "rmsprop":
            held["v"] = RMSPROP_ALPHA * held.get("v", np.zeros_like(grad)) + (1 - RMSPROP_ALPHA) * grad * grad
            return rate * grad / (np.sqrt(held["v"]) + RMSPROP_EPS)
        held["sum"] = held.get("sum", np.zeros_like(grad)) + grad * grad  # adagrad
        return rate * grad / (np.sqrt(held["sum"]) + ADAGRAD_EPS)

    return step


def simulate_rule(problem: mistakes.Problem, rule: Rule, gradient_scale: float = 1.0) -> mistakes.Trajectory:
    """The history (loss before each update, w after it) of a full-batch loop stepping by `rule` (with every
    gradient scaled by `gradient_scale`: what a counterfactual run that perturbs autograd gives)."""
    params = tuple(p.copy() for p in problem.params)
    step = _stepper(rule, problem.learning_rate)
    losses, ws = [], []
    with np.errstate(all="ignore"):
        for t in range(1, problem.n_iters + 1):
            loss, grads = mistakes.loss_and_gradients(problem, params)
            grads = tuple(g * gradient_scale for g in grads)
            params = tuple(p - step(t, g, i) for i, (p, g) in enumerate(zip(params, grads, strict=True)))
            losses.append(loss)
            if len(params) == 1:
                ws.append(float(params[0]))
    return mistakes.Trajectory(np.asarray(losses), np.asarray(ws) if ws else None)


def simulate_batches(problem: mistakes.Problem, batch: int) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
    """w after each epoch (scalar model; None for nn.Linear) of a loop that steps once per `batch` consecutive
    samples (the last batch may be shorter, as DataLoader's), and the loss each epoch as loops record it: the
    mean, the sum or the last of the batches' losses, or the whole batch's loss before the epoch."""
    params = tuple(p.copy() for p in problem.params)
    ws: list[float] = []
    losses: dict[str, list[float]] = {"mean": [], "sum": [], "last": [], "before": []}
    n = problem.x.shape[0]
    with np.errstate(all="ignore"):
        for _ in range(problem.n_iters):
            losses["before"].append(mistakes.loss_and_gradients(problem, params)[0])
            seen = []
            for start in range(0, n, batch):
                part = problem.with_args(x=problem.x[start:start + batch], y=problem.y[start:start + batch])
                loss, grads = mistakes.loss_and_gradients(part, params)
                seen.append(loss)
                params = tuple(p - problem.learning_rate * g for p, g in zip(params, grads, strict=True))
            losses["mean"].append(float(np.mean(seen)))
            losses["sum"].append(float(np.sum(seen)))
            losses["last"].append(seen[-1])
            if len(params) == 1:
                ws.append(float(params[0]))
    return (np.asarray(ws) if len(params) == 1 else None), {name: np.asarray(v) for name, v in losses.items()}


@dataclass(frozen=True)
class Found:
    kind: str  # "optimizer" or "per-sample"
    detail: str  # what the student's run did, in words


def other_rule(problem: mistakes.Problem, observed: dict[str, Any], fields: tuple[str, ...]) -> Found | None:
    """The other update rule whose simulation the observed history follows (every compared field within
    mistakes.MATCH, and ten times closer than the correct loop), or None."""
    correct = _departure(problem, observed, fields)
    if correct is None:
        return None
    batch = _per_sample_batch(problem, observed, fields, correct)
    if batch is not None:
        n = problem.x.shape[0]
        what = "once per sample" if batch == 1 else f"once per mini-batch of {batch} samples"
        column = "w" if "w" in fields and len(problem.params) == 1 else "loss"
        return Found("per-sample", f"Your {column} matches, epoch by epoch, a loop that updates "
                                   f"{'w' if column == 'w' else 'the parameters'} {what}: "
                                   f"{-(-n // batch)} updates per epoch over the {n} samples instead of one.")
    rule = _matching_rule(problem, observed, fields, correct)
    if rule is not None:
        return Found("optimizer", f"Your {' and '.join(fields)} match, epoch by epoch, a run of {rule.name}: "
                                  f"the update also uses {rule.setting}, which plain gradient descent does not.")
    return None


Replay = Callable[[float, float, int], list[mistakes.Trajectory]]


def replay(problem: mistakes.Problem, observed: dict[str, Any], fields: tuple[str, ...]) -> Replay | None:
    """The other rule the history follows, as a simulation the process checks' second run is judged against:
    (gradient factor, rate factor, epochs) -> the histories that rule gives with autograd's gradients and the
    step's rate so scaled (one per way a per-sample loop may record its loss). None: it follows none."""
    correct = _departure(problem, observed, fields)
    if correct is None:
        return None
    batch = _per_sample_batch(problem, observed, fields, correct)
    if batch is not None:
        def batches(gradient: float, rate: float, epochs: int) -> list[mistakes.Trajectory]:
            scaled = problem.with_args(learning_rate=problem.learning_rate * gradient * rate, n_iters=epochs)
            ws, losses = simulate_batches(scaled, batch)
            return [mistakes.Trajectory(loss, ws) for loss in losses.values()]
        return batches
    rule = _matching_rule(problem, observed, fields, correct)
    if rule is None:
        return None

    def stepping(gradient: float, rate: float, epochs: int) -> list[mistakes.Trajectory]:
        scaled = problem.with_args(learning_rate=problem.learning_rate * rate, n_iters=epochs)
        return [simulate_rule(scaled, rule, gradient_scale=gradient)]
    return stepping


def _departure(problem: mistakes.Problem, observed: dict[str, Any], fields: tuple[str, ...]) -> float | None:
    """How far the history lies from the correct loop's; None where it follows it (or shows nothing)."""
    if not fields:
        return None
    correct = mistakes.fields_deviation(observed, mistakes.simulate(problem), fields)
    return None if correct <= mistakes.MATCH else correct


def _matching_rule(problem: mistakes.Problem, observed: dict[str, Any], fields: tuple[str, ...],
                   correct: float) -> Rule | None:
    for rule in rules():
        score = mistakes.fields_deviation(observed, simulate_rule(problem, rule), fields)
        if score <= mistakes.MATCH and score * 10 < correct:
            return rule
    return None


def _per_sample_batch(problem: mistakes.Problem, observed: dict[str, Any], fields: tuple[str, ...],
                      correct: float) -> int | None:
    """The batch size of a loop that updates once per sample or mini-batch, over samples: the scalar model by
    its w (and its loss where recorded), nn.Linear by its loss history. None: no such loop."""
    if problem.objective is not None or not ({"w", "loss"} & set(fields)):
        return None
    for batch in range(1, problem.x.shape[0]):
        ws, losses = simulate_batches(problem, batch)
        if "w" in fields and ws is not None:
            score = mistakes.deviation(observed["w"], ws)
            if score > mistakes.MATCH or score * 10 >= correct:
                continue
            if "loss" in fields and all(mistakes.deviation(observed["loss"], loss) > mistakes.MATCH
                                        for loss in losses.values()):
                continue
            return batch
        if "loss" in fields and ws is None and any(
                mistakes.deviation(observed["loss"], loss) <= mistakes.MATCH
                and mistakes.deviation(observed["loss"], loss) * 10 < correct for loss in losses.values()):
            return batch
    return None
