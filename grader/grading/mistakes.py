"""Simulations of the cataloged training mistakes, in NumPy float64, for the course's linear models.

A `Problem` is one training run: data, initial parameters, learning rate, epochs. `simulate` replays it the
way a student's loop would with one mistake switched on (gradient scaled by N, ½ or −1, gradients that
accumulate, the step taken before backward, parameters that never move, the broadcast (n, n) MSE, w recorded
before the update), and
`deviation` measures how far an observed per-epoch sequence is from a simulated one. diagnose.py names the
mistake whose simulation a student's trajectory follows; benchmarks/tolerances.py measures the margins.

The models: f(x) = w·x with x of shape (n,) (ex01, ex03, ex04), and nn.Linear's x @ W.T + b with x of shape
(n, d) (ex05), with the mean squared error over all elements as the loss; or any scalar loss of w alone (ex02).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from grader.model.codes import DiagnosisCode

# A sequence "follows" a simulation when every epoch is within this relative deviation (see `deviation`).
# Loose on purpose: float32 rounding of a correct run stays below 1e-4 (benchmarks/tolerances.py), while the
# cataloged mistakes differ from each other and from the reference by more than 10 % within a few epochs.
MATCH = 1e-2
# Epochs whose simulated value is this close to zero, relative to the sequence's scale, are compared absolutely.
FLOOR = 1e-3
# Beyond this magnitude a diverging float32 run overflows; the comparison stops there.
HUGE = 1e30


@dataclass(frozen=True)
class Mistake:
    """One way of getting the loop wrong; all off is the correct loop."""

    scale: float = 1.0  # the step uses scale × gradient (N: summed, ½: factor 2 missing, −1: sign)
    accumulate: bool = False  # .grad is never zeroed, so each step uses the sum of all gradients so far
    delay: bool = False  # step() before backward(): each step uses the previous epoch's gradient
    frozen: bool = False  # the parameters never move
    broadcast: bool = False  # prediction (n, 1) against target (n,): MSE over the (n, n) differences
    broadcast_loss_only: bool = False  # the same in the recorded loss, with a hand-written correct gradient
    loss_after: bool = False  # the loss recorded is the one after the update
    loss_scale: float = 1.0  # the recorded loss is this multiple of the MSE (a summed loss: N)
    w_before: bool = False  # the w recorded is the one before the update (where tutorials print it)


@dataclass(frozen=True)
class Problem:
    x: np.ndarray  # (n,) for w·x, (n, d) for nn.Linear
    y: np.ndarray  # (n,) or (n, o)
    params: tuple[np.ndarray, ...]  # (w,) or (W, b)
    learning_rate: float
    n_iters: int
    objective: Callable[[Any], Any] | None = None  # ex02: the loss as a function of w alone (NumPy)

    @property
    def n_samples(self) -> int:
        return int(self.y.size)

    @classmethod
    def of_function(cls, objective: Callable[[Any], Any], w: float, learning_rate: float,
                    n_iters: int) -> Problem:
        return cls(np.zeros(0), np.zeros(0), (np.asarray(float(w)),), float(learning_rate), int(n_iters), objective)

    @classmethod
    def scalar(cls, x: Any, y: Any, w: float, learning_rate: float, n_iters: int) -> Problem:
        return cls(np.asarray(x, float), np.asarray(y, float), (np.asarray(float(w)),), float(learning_rate),
                   int(n_iters))

    @classmethod
    def linear(cls, x: Any, y: Any, weight: Any, bias: Any, learning_rate: float, n_iters: int) -> Problem:
        x, y = np.asarray(x, float), np.asarray(y, float)
        if y.ndim == 1:
            y = y[:, None]
        return cls(x, y, (np.asarray(weight, float), np.asarray(bias, float)), float(learning_rate), int(n_iters))

    def with_args(self, **changes: Any) -> Problem:
        return replace(self, **changes)


@dataclass(frozen=True)
class Trajectory:
    loss: np.ndarray  # per epoch, as the student's history records it
    w: np.ndarray | None  # per epoch, after the update (scalar model only)
    grad: np.ndarray | None = None  # per epoch, what w.grad holds after backward() (scalar model only)


def predict(problem: Problem, params: tuple[np.ndarray, ...]) -> np.ndarray:
    if len(params) == 1:
        return params[0] * problem.x
    weight, bias = params
    return problem.x @ weight.T + bias


def derivative(objective: Callable[[Any], Any], w: float) -> float:
    """d objective / dw by the complex step (exact to rounding for analytic formulas), else central differences."""
    step = 1e-30
    try:
        return float(np.imag(objective(np.complex128(complex(w, step))))) / step
    except (TypeError, ValueError, OverflowError):
        h = 1e-6 * max(1.0, abs(w))
        return (float(objective(w + h)) - float(objective(w - h))) / (2 * h)


def loss_and_gradients(problem: Problem, params: tuple[np.ndarray, ...],
                       broadcast: bool = False) -> tuple[float, tuple[np.ndarray, ...]]:
    if problem.objective is not None:
        w = np.float64(params[0])
        return float(np.real(problem.objective(w))), (np.asarray(derivative(problem.objective, float(w))),)
    prediction = predict(problem, params)
    if broadcast:  # mean over i, j of (p_i - y_j)^2: its derivative in p_i is 2 (p_i - mean(y)) / n
        flat_p, flat_y = prediction.reshape(-1), problem.y.reshape(-1)
        loss = float(np.mean((flat_p[:, None] - flat_y[None, :]) ** 2))
        d_prediction = (2.0 * (prediction - flat_y.mean()) / flat_p.size).reshape(prediction.shape)
    else:
        residual = prediction - problem.y
        loss = float(np.mean(residual**2))
        d_prediction = 2.0 * residual / residual.size
    if len(params) == 1:
        return loss, (np.asarray(np.sum(d_prediction * problem.x)),)
    return loss, (d_prediction.T @ problem.x, d_prediction.sum(axis=0))


# A batch replays the same checks' arguments for every student: each simulation runs once per process.
# Bounded, so the grading process stays flat in memory however many submissions it sees.
_SIMULATIONS: dict[tuple[Any, ...], Trajectory] = {}
SIMULATIONS_KEPT = 1024


def _array_key(array: np.ndarray) -> tuple[Any, ...]:
    array = np.asarray(array)
    return (array.dtype.str, array.shape, array.tobytes())


def simulate(problem: Problem, mistake: Mistake = Mistake()) -> Trajectory:
    """The history a loop with `mistake` would return, in float64 (read-only arrays: results are shared)."""
    if problem.objective is not None:  # a function is no cache key
        return _simulate(problem, mistake)
    key = (_array_key(problem.x), _array_key(problem.y), tuple(_array_key(p) for p in problem.params),
           float(problem.learning_rate), int(problem.n_iters), mistake)
    found = _SIMULATIONS.get(key)
    if found is None:
        found = _simulate(problem, mistake)
        for array in (found.loss, found.w, found.grad):
            if array is not None:
                array.flags.writeable = False
        if len(_SIMULATIONS) >= SIMULATIONS_KEPT:
            _SIMULATIONS.clear()  # one atomic step: batch threads share the cache
        _SIMULATIONS[key] = found
    return found


def _simulate(problem: Problem, mistake: Mistake) -> Trajectory:
    params = tuple(p.copy() for p in problem.params)
    buffer = tuple(np.zeros_like(p) for p in params)  # what .grad holds
    losses, ws, held = [], [], []
    with np.errstate(all="ignore"):
        for _ in range(problem.n_iters):
            before = params
            loss, grads = loss_and_gradients(problem, params, mistake.broadcast)
            if mistake.broadcast_loss_only:
                loss = loss_and_gradients(problem, params, broadcast=True)[0]
            kept = buffer if mistake.accumulate else tuple(np.zeros_like(b) for b in buffer)
            if mistake.delay:  # the step sees what backward left in .grad last epoch
                step, buffer = buffer, tuple(k + g for k, g in zip(kept, grads, strict=False))
            else:
                buffer = tuple(k + g for k, g in zip(kept, grads, strict=False))
                step = buffer
            held.append(float(buffer[0]) if buffer[0].ndim == 0 else float("nan"))
            if not mistake.frozen:
                rate = problem.learning_rate * mistake.scale
                params = tuple(p - rate * s for p, s in zip(params, step, strict=False))
            after = loss_and_gradients(problem, params, mistake.broadcast)[0] if mistake.loss_after else loss
            losses.append(after * mistake.loss_scale)
            if len(params) == 1:
                ws.append(float((before if mistake.w_before else params)[0]))
    return Trajectory(np.asarray(losses), np.asarray(ws) if ws else None, np.asarray(held) if ws else None)


def deviation(observed: Any, simulated: Any) -> float:
    """The largest per-epoch |observed − simulated| / (|simulated| + FLOOR × scale), over the epochs before
    the simulation overflows; inf when the observation is not finite there or the lengths differ."""
    got, want = np.asarray(observed, float).reshape(-1), np.asarray(simulated, float).reshape(-1)
    if got.shape != want.shape or want.size == 0:
        return float("inf")
    usable = np.isfinite(want) & (np.abs(want) < HUGE)
    stop = int(np.argmin(usable)) if not usable.all() else want.size
    if stop == 0:
        return float("inf")
    got, want = got[:stop], want[:stop]
    if not np.all(np.isfinite(got)):
        return float("inf")
    scale = max(1.0, float(np.abs(want[0])), _median(np.abs(want)))
    return float(np.max(np.abs(got - want) / (np.abs(want) + FLOOR * scale)))


def _median(values: np.ndarray) -> float:
    """np.median of a short 1-D array, the same number at a fraction of the cost (it runs thousands of times
    per submission: every cataloged mistake, every field, every check)."""
    ordered = sorted(values.tolist())
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def fields_deviation(observed: dict[str, Any], trajectory: Trajectory, fields: tuple[str, ...]) -> float:
    """The worst deviation over the compared fields ("loss", "w") that the simulation has."""
    worst = 0.0
    for name in fields:
        simulated = {"loss": trajectory.loss, "w": trajectory.w, "grad": trajectory.grad}.get(name)
        if simulated is None or name not in observed:
            continue
        worst = max(worst, deviation(observed[name], simulated))
    return worst


@dataclass(frozen=True)
class Entry:
    """A cataloged mistake: a stable label, its diagnosis code, the simulation switch, and what it does."""

    label: str
    code: str
    mistake: Mistake
    description: str


def catalog(problem: Problem) -> list[Entry]:
    """The cataloged mistakes that can happen in this problem."""
    n = float(problem.n_samples)
    entries = [
        Entry("summed", DiagnosisCode.GRADIENT_NOT_AVERAGED, Mistake(scale=n),
              f"steps that use {n:g} times the gradient"),
        Entry("summed-loss", DiagnosisCode.GRADIENT_NOT_AVERAGED, Mistake(scale=n, loss_scale=n),
              f"a loss summed over the {n:g} samples (and so a gradient {n:g} times too large)"),
        Entry("half", DiagnosisCode.GRADIENT_MISSING_FACTOR_2, Mistake(scale=0.5),
              "steps that use half the gradient"),
        Entry("half-loss", DiagnosisCode.GRADIENT_MISSING_FACTOR_2, Mistake(scale=0.5, loss_scale=0.5),
              "a loss that is half the MSE (and so half the gradient)"),
        Entry("sign", DiagnosisCode.GRADIENT_SIGN, Mistake(scale=-1.0),
              "steps that add the gradient instead of subtracting it"),
        Entry("accumulate", DiagnosisCode.GRAD_NOT_ZEROED, Mistake(accumulate=True),
              "a .grad that keeps the sum of all the gradients so far"),
        Entry("delay", DiagnosisCode.STEP_BEFORE_BACKWARD, Mistake(delay=True),
              "steps that each use the previous epoch's gradient (and none in the first epoch)"),
        Entry("delay-accumulate", DiagnosisCode.STEP_BEFORE_BACKWARD, Mistake(delay=True, accumulate=True),
              "steps that each use the gradients of the earlier epochs, summed (none in the first epoch)"),
        # step() always finds .grad zeroed or None
        Entry("frozen", DiagnosisCode.STEP_BEFORE_BACKWARD, Mistake(frozen=True),
              "parameters that never move: every step found the gradient zeroed or missing"),
        Entry("loss-after", DiagnosisCode.LOSS_AFTER_UPDATE, Mistake(loss_after=True),
              "the loss recorded after each update instead of before it"),
        Entry("w-before", DiagnosisCode.W_BEFORE_UPDATE, Mistake(w_before=True),
              "w recorded before each update instead of after it"),
        Entry("broadcast", DiagnosisCode.SHAPE_BROADCAST, Mistake(broadcast=True),
              "an MSE over every (prediction, target) pair, as an (n, 1) column against an (n,) vector gives"),
        Entry("broadcast-loss", DiagnosisCode.SHAPE_BROADCAST, Mistake(broadcast_loss_only=True),
              "a recorded loss over every (prediction, target) pair, as an (n, 1) column against (n,) gives"),
    ]
    if problem.objective is not None:  # no samples: nothing to sum or broadcast
        return [e for e in entries
                if e.code not in (DiagnosisCode.GRADIENT_NOT_AVERAGED, DiagnosisCode.SHAPE_BROADCAST)]
    single_output = problem.y.ndim == 1 or problem.y.shape[1] == 1  # only (n, 1) against (n,) broadcasts
    scalar = len(problem.params) == 1  # only the scalar model's history records w
    return [e for e in entries if (e.code != DiagnosisCode.GRADIENT_NOT_AVERAGED or n > 1)
            and (e.code != DiagnosisCode.SHAPE_BROADCAST or single_output)
            and (e.code != DiagnosisCode.W_BEFORE_UPDATE or scalar)]


def matches(problem: Problem, observed: dict[str, Any], fields: tuple[str, ...]) -> list[tuple[Entry, float]]:
    """The cataloged mistakes whose simulation the observed history follows within MATCH, closest first.
    A mistake must also fit far better than the correct loop: some mistakes barely change a slow run."""
    correct = fields_deviation(observed, simulate(problem), fields)
    found = []
    for entry in catalog(problem):
        score = fields_deviation(observed, simulate(problem, entry.mistake), fields)
        if score <= MATCH and score * 10 < correct:
            found.append((entry, score))
    return sorted(found, key=lambda pair: pair[1])


def shows_in(problem: Problem, label: str, reference: dict[str, Any], fields: tuple[str, ...]) -> bool:
    """Whether the mistake `label` would have made this run differ from its reference (False when the
    mistake cannot happen in it)."""
    entry = next((e for e in catalog(problem) if e.label == label), None)
    if entry is None:
        return False
    return fields_deviation(reference, simulate(problem, entry.mistake), fields) > MATCH
