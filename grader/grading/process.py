"""Process checks: did autograd compute the gradient w was updated with, did torch.optim take the steps?

The child records the calls it saw (backward's leaves, optimizer steps) and, at the end of its run, calls the
check's function again with autograd's gradients or the optimizer's rate scaled (the counterfactual). This
module ties those records to the updates the history shows, and judges whether the second run responded."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from grader.course.exercises import CheckSpec, Exercise
from grader.grading import diagnose, mistakes
from grader.grading.counterfactual import Response
from grader.grading.tolerances import (  # moved to tolerances.py, still named here
    Tolerance as Tolerance,
    Verdict as Verdict,
    _array as _array,
    _close as _close,
    tolerance_for as tolerance_for,
)
from grader.model.codes import DiagnosisCode

PROCESS_RULES = {
    # rule: (fields whose calls count, at least once per epoch; diagnosis when they do not; what to do)
    "backward": (("backward_calls", "autograd_grad_calls"), DiagnosisCode.NO_AUTOGRAD,
                 "call loss.backward() once per epoch"),
    "optimizer": (("step_calls",), DiagnosisCode.NO_OPTIMIZER, "call optimizer.step() once per epoch"),
}


def compare_process(check: CheckSpec, observed: dict[str, Any], reference: dict[str, Any],
                    tol: Tolerance, known_mistake: Callable[[], bool] = lambda: False,
                    response: Callable[[], Response | None] = lambda: None) -> tuple[Verdict, str | None]:
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
        return Verdict(False, f"{label}, but {_frozen_run(check, observed, history)}, so the calls earn nothing: "
                              "they did not train what your function returns."), None
    # A history of one live tensor shows only its final w: no tie by value (the reference's w would be wrong
    # wherever the run follows a mistake); its loss and the second run are the evidence.
    tied = observed
    where = None if aliased else _process_evidence(check, tied, _history(tied), tol, n_iters)
    if where is not None and check.require == "backward" and _backward_reached_w(check, tied, tol, n_iters):
        # autograd did compute w's gradient every epoch: the update is what ignored it, not a missing graph
        return Verdict(False, f"{label}: backward() gave the gradient of w every epoch, but {where}: your update "
                              "does not use w.grad as the step (w - learning_rate * w.grad)."), None
    if where is not None:
        return Verdict(False, f"{label}, but {where}; {advice} on the parameter you train."), code
    curves = [name for name, value in reference.items() if isinstance(value, list)]
    if not all(_close(observed.get(name), reference[name], tol) for name in curves) and not known_mistake():
        return Verdict(False, f"{label}, but the run they belong to matches neither the reference nor a "
                              "known mistake, so they earn nothing yet: fix the training checks first."), None
    why_not = response()
    if why_not is not None:
        return (Verdict(False, f"{label}, but {why_not.reason}; {advice} and let it {UPDATES[check.require or '']}."),
                code if why_not.evidence else None)
    return Verdict(True, f"{label}."), None


UPDATES = {"backward": "compute the gradient you update w with", "optimizer": "update the parameters"}


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


def _frozen_run(check: CheckSpec, observed: dict[str, Any], history: np.ndarray) -> str:
    """What a run whose history never changes did, in words: nothing at all, or one jump in the first epoch
    (and which step made it, when it was learning_rate × the loss instead of × its gradient)."""
    start = check.args.get("w")
    if "w" not in observed or not isinstance(start, (int, float)) or float(history[0]) == float(start):
        return "the history shows no training at all (it never changes)"
    jump = f"w jumped from {float(start):g} to {float(history[0]):.6g} in the first epoch and never moved again"
    losses = observed.get("loss")
    rate = check.args.get("learning_rate")
    if isinstance(losses, list) and losses and isinstance(rate, (int, float)):
        step = float(start) - float(history[0])
        if math.isclose(step, float(rate) * float(losses[0]), rel_tol=1e-4, abs_tol=1e-9):
            return f"{jump}: that step is learning_rate × the loss ({float(losses[0]):g}), not × its gradient"
    return jump




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
        tie = _backward_chain_tie(calls, rate, scales, tol)
        what, did = "a backward()", "gave the gradient of the update that followed"
    else:
        calls = _pair_lists(observed.get("step_pairs"))
        tie = _step_chain_tie(calls, tol)
        what, did = "an optimizer.step()", "moved w from the previous epoch's value to this one"
    results = [_tied_in_order(calls, path, tie) for path in paths if path.size >= max(1, n_iters - 1)]
    if any(tied >= moves for tied, moves in results):
        return None
    tied = max((t for t, _ in results), default=0)
    moves = min((m for _, m in results), default=n_iters)
    return f"only {tied} of the {moves} updates of w came from {what} call that {did}"


def _backward_reached_w(check: CheckSpec, observed: dict[str, Any], tol: Tolerance, n_iters: int) -> bool:
    """Every epoch's backward() reached a leaf holding that epoch's w (before its update) and put the loss's
    true gradient there (the parent's own: a lone leaf holding w's value gets another): autograd computed w's
    gradient, whatever the update then did with it."""
    history = _history(observed)
    start = check.args.get("w")
    problem = diagnose.problem_for(check, observed)
    if history is None or "w" not in observed or not isinstance(start, (int, float)) or problem is None:
        return False
    befores = np.concatenate(([float(start)], history))[:n_iters]
    # bounded: a forged list of millions of pairs costs no more than a real run's few per epoch
    calls = [pair for pairs in _pair_lists(observed.get("backward_leaves"))[:4 * n_iters] for pair in pairs[:8]]
    for before in befores.tolist():
        true = float(mistakes.loss_and_gradients(problem, (np.asarray(before),))[1][0])
        if not any(_same(value, before, _allowed(before, tol)) and _same(gradient, true, _allowed(true, tol))
                   for value, gradient in calls):
            return False
    return bool(befores.size)


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


def _backward_chain_tie(calls: list[list[Pair]], rate: float, scales: tuple[float, ...], tol: Tolerance) -> Tie:
    """A backward() call that explains the update (`_backward_tie`), or a run of consecutive calls each on the
    leaf holding the w the last one's update gave (one per sample or mini-batch: per-sample-updates), whose
    updates, at one scale, took w from the previous epoch's value to this one."""
    return _chain_tie(calls, _backward_tie(rate, scales, tol), tol,
                      lambda pair, before: [(before - rate * scale * pair[1], _stepped(rate * scale))
                                            for scale in scales])


def _chain_tie(calls: list[list[Pair]], single: Tie, tol: Tolerance,
               links: Callable[[Pair, float], list[tuple[float, Callable[[Pair], float]]]]) -> Tie:
    """`single`, or a chain of consecutive calls from a call whose pair starts at the previous epoch's value:
    `links(pair, before)` gives where that first call leaves the value and how each next call moves it on."""
    index = _call_index(calls)

    def tie(pair: Pair, before: float, after: float, earlier: float | None) -> bool:
        if single(pair, before, after, earlier):
            return True
        if not _same(pair[0], before, _allowed(before, tol)) or id(pair) not in index:
            return False
        return any(_chain_reaches(calls, index[id(pair)] + 1, start, after, advance, tol)
                   for start, advance in links(pair, before))
    return tie


def _stepped(step: float) -> Callable[[Pair], float]:
    """A backward() call's (value, gradient) -> the value its update gives at this step size."""
    return lambda pair: pair[0] - step * pair[1]


def _chain_reaches(calls: list[list[Pair]], at: int, current: float, after: float,
                   advance: Callable[[Pair], float], tol: Tolerance) -> bool:
    """Whether consecutive calls from `at`, each on the value the last one left (`current`), carry it to
    `after`: each call's pair that starts at the current value moves it to `advance(pair)`."""
    for _ in range(MAX_CHAIN):
        if _same(current, after, _allowed(after, tol)):
            return True
        following = next((p for p in calls[at] if _same(p[0], current, _allowed(current, tol))), None) \
            if at < len(calls) else None
        if following is None:
            return False
        current, at = advance(following), at + 1
    return False


def _call_index(calls: list[list[Pair]]) -> dict[int, int]:
    """A pair's identity -> the index of the call it belongs to, to follow a chain on from it."""
    return {id(pair): at for at, pairs in enumerate(calls) for pair in pairs}


def _step_tie(tol: Tolerance) -> Tie:
    """An optimizer step's (parameter before, parameter after) is the update `before -> after` itself."""
    def tie(pair: Pair, before: float, after: float, earlier: float | None) -> bool:
        return _same(pair[0], before, _allowed(before, tol)) and _same(pair[1], after, _allowed(after, tol))
    return tie


def _step_chain_tie(calls: list[list[Pair]], tol: Tolerance) -> Tie:
    """An optimizer step, or a run of consecutive steps each starting where the last one ended (one per
    sample or mini-batch: per-sample-updates), that took w from the previous epoch's value to this one."""
    return _chain_tie(calls, _step_tie(tol), tol, lambda pair, before: [(pair[1], lambda p: p[1])])


MAX_CHAIN = 1024  # steps in one epoch that a chain may follow (a mini-batch of 1 over 1,024 samples)


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
    DiagnosisCode.WRONG_OPTIMIZER,
    DiagnosisCode.PER_SAMPLE_UPDATES,
})


def _rule_note(exercise: Exercise, check: CheckSpec, fields: dict[str, Any],
               peers: tuple[diagnose.Peer, ...]) -> str:
    """A process check credited on a run that follows another update rule: say plainly that the calls earn
    their points and where the points were lost instead."""
    for peer in peers:
        if peer.check.key == check.key and peer.check.compare == "trajectory" and peer.reference:
            if _close(fields.get("w", fields.get("loss")), peer.reference.get("w", peer.reference.get("loss")),
                      tolerance_for(exercise, peer.check)):
                return ""
            found = diagnose.from_behaviour(exercise, peer.check, fields, peer.reference, None, peers)
            if found is not None and found.code in (DiagnosisCode.WRONG_OPTIMIZER, DiagnosisCode.PER_SAMPLE_UPDATES):
                return (" They are real steps of the training, so this check's points are yours; the training "
                        f"checks lost theirs because the run follows another rule ({found.code}).")
    return ""




def _follows_known_mistake(exercise: Exercise, check: CheckSpec, fields: dict[str, Any],
                           peers: tuple[diagnose.Peer, ...]) -> bool:
    """Whether a trajectory check watching the same run names a cataloged mistake in it."""
    for peer in peers:
        if peer.check.key == check.key and peer.check.compare == "trajectory" and peer.reference:
            found = diagnose.from_behaviour(exercise, peer.check, fields, peer.reference, None, peers)
            if found is not None and found.code in TRAINING_MISTAKES:
                return True
    return False
