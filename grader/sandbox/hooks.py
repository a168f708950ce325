"""Child side: the hooks on autograd and torch.optim that record the process evidence, and the counterfactual's.

Installed by probing.Context around each call of the student's function (_torch_hooks), and once, after the
normal runs, by harness.run for the counterfactual calls (perturb). Runs inside the sandboxed child only."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Events:
    """What the student's code did through autograd and torch.optim while a probe ran."""

    backward: int = 0  # backward() calls that returned (one that raised did nothing the history can use)
    autograd_grad: int = 0  # torch.autograd.grad calls that returned
    step: int = 0
    zero_grad: int = 0
    backward_done: int = 0  # the same as `backward`, kept apart: `_note_rebound`'s evidence
    order: list[str] = field(default_factory=list)  # "B" backward, "S" step, "Z" zero_grad, capped
    warnings: list[str] = field(default_factory=list)
    # Where the process went, for the parent to tie it to the history: per backward() or autograd.grad call
    # that returned, a (value before, gradient after) pair for each one-number leaf its graph reached; per
    # step() a (before, after) pair for each one-number parameter it holds; for a watched model, per step
    # holding all of it, the model's parameters before and after it.
    backward_leaves: list[list[list[float]]] = field(default_factory=list)
    step_pairs: list[list[list[float]]] = field(default_factory=list)
    model_steps: list[list[list[float]]] = field(default_factory=list)
    watched: tuple[Any, ...] = ()
    steps_holding_watched: int = 0
    # A probe that watches a model's parameters ties the run to the history through the model's steps; the
    # per-call values (a graph walk per backward()) are evidence only where there is a one-number w.
    values: bool = True

    def log(self, letter: str) -> None:
        if len(self.order) < 5000:
            self.order.append(letter)

    def as_fields(self) -> dict[str, Any]:
        return {
            "backward_calls": self.backward,
            "autograd_grad_calls": self.autograd_grad,
            "step_calls": self.step,
            "zero_grad_calls": self.zero_grad,
            "event_order": "".join(self.order),
            "broadcast_warning": any("broadcast" in w for w in self.warnings),
            **({"backward_leaves": self.backward_leaves, "step_pairs": self.step_pairs} if self.values else {}),
            **({"steps_holding_model": self.steps_holding_watched, "model_steps": self.model_steps}
               if self.watched else {}),
        }


MAX_EVENTS = 5000  # backward()/step() calls whose values are kept


MAX_VALUES = 8  # one-number leaves or parameters kept per call


MAX_MODEL_VALUES = 64  # a watched model's parameters kept per step


MAX_GRAPH_NODES = 10_000


def _reached_leaves(torch: Any, tensors: Any, inputs: Any = None) -> list[Any]:
    """The leaf tensors a backward() from `tensors` reaches by walking its graph; with `inputs`, only those of
    them that `inputs` names (a tensor named there that the graph does not reach gets no gradient)."""
    roots = [tensors] if isinstance(tensors, torch.Tensor) else list(tensors or ())
    leaves, seen = [], set()
    frontier = [t.grad_fn for t in roots if isinstance(t, torch.Tensor) and t.grad_fn is not None]
    leaves += [t for t in roots if isinstance(t, torch.Tensor) and t.grad_fn is None and t.requires_grad]
    while frontier and len(seen) < MAX_GRAPH_NODES:
        node = frontier.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        variable = getattr(node, "variable", None)
        if variable is not None:
            leaves.append(variable)
        frontier.extend(next_node for next_node, _ in node.next_functions)
    if inputs is not None:
        named = {id(t) for t in ([inputs] if isinstance(inputs, torch.Tensor) else list(inputs))}
        leaves = [t for t in leaves if id(t) in named]
    return [t for t in leaves if t.numel() == 1][:MAX_VALUES]


def _value(tensor: Any) -> float:
    return float(tensor.detach().reshape(()).item())


def _flat_values(parameters: Sequence[Any]) -> list[float]:
    values: list[float] = []
    for parameter in parameters:
        values += parameter.detach().reshape(-1).tolist()[:MAX_MODEL_VALUES - len(values)]
    return values


@contextlib.contextmanager
def _torch_hooks(events: Events) -> Iterator[None]:
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    # Tensor.backward() calls torch.autograd.backward(), so patching the function counts both spellings.
    original_backward = torch.autograd.backward
    original_grad = torch.autograd.grad
    original_zero_grad = torch.optim.Optimizer.zero_grad

    def leaves_before(tensors: Any, inputs: Any) -> list[tuple[Any, float]] | None:
        if not events.values or len(events.backward_leaves) >= MAX_EVENTS:
            return None
        try:  # before the call: the graph is freed by it
            return [(leaf, _value(leaf)) for leaf in _reached_leaves(torch, tensors, inputs)]
        except Exception:  # noqa: BLE001 - a graph we cannot walk is evidence of nothing
            return []

    def backward(*args: Any, **kwargs: Any) -> Any:
        reached = leaves_before(args[0] if args else kwargs.get("tensors"),
                                args[5] if len(args) > 5 else kwargs.get("inputs"))
        result = original_backward(*args, **kwargs)  # counted only once it returned
        events.backward += 1
        events.backward_done += 1
        events.log("B")
        if reached is not None:
            try:
                events.backward_leaves.append([[value, _value(leaf.grad)] for leaf, value in reached
                                               if isinstance(leaf.grad, torch.Tensor) and leaf.grad.numel() == 1])
            except Exception:  # noqa: BLE001
                events.backward_leaves.append([])
        return result

    def grad(*args: Any, **kwargs: Any) -> Any:
        inputs = args[1] if len(args) > 1 else kwargs.get("inputs")
        reached = leaves_before(args[0] if args else kwargs.get("outputs"), inputs)
        result = original_grad(*args, **kwargs)
        events.autograd_grad += 1
        events.log("B")
        if reached is not None:
            try:
                named = [inputs] if isinstance(inputs, torch.Tensor) else list(inputs)
                by_id = {id(t): g for t, g in zip(named, result, strict=False)}
                events.backward_leaves.append([[value, _value(by_id[id(leaf)])] for leaf, value in reached
                                               if isinstance(by_id.get(id(leaf)), torch.Tensor)])
            except Exception:  # noqa: BLE001
                events.backward_leaves.append([])
        return result

    def zero_grad(self: Any, *args: Any, **kwargs: Any) -> Any:
        events.zero_grad += 1
        events.log("Z")
        return original_zero_grad(self, *args, **kwargs)

    before_step: list[Any] = []

    def step_hook(optimizer: Any, args: Any, kwargs: Any) -> None:
        events.step += 1
        events.log("S")
        before_step[:] = [None]
        try:
            held = [p for group in optimizer.param_groups for p in group["params"]]
            if events.values and len(events.step_pairs) < MAX_EVENTS:
                scalars = [p for p in held if p.numel() == 1][:MAX_VALUES]
                before_step[:] = [("values", scalars, [_value(p) for p in scalars])]
            elif events.watched and {id(p) for p in events.watched} <= {id(p) for p in held}:
                if len(events.model_steps) < MAX_EVENTS:
                    before_step[:] = [("model", None, _flat_values(events.watched))]
                else:
                    before_step[:] = [("model", None, None)]
        except Exception:  # noqa: BLE001 - an optimizer we cannot read is evidence of nothing
            before_step[:] = [None]

    def after_step(optimizer: Any, args: Any, kwargs: Any) -> None:
        taken = before_step[0] if before_step else None
        before_step[:] = []
        try:
            if taken is not None and taken[0] == "values":
                events.step_pairs.append([[b, _value(p)] for p, b in zip(taken[1], taken[2], strict=False)])
            elif taken is not None and taken[0] == "model":
                events.steps_holding_watched += 1
                if taken[2] is not None:
                    events.model_steps.append([taken[2], _flat_values(events.watched)])
            elif events.values:
                events.step_pairs.append([])
        except Exception:  # noqa: BLE001
            if events.values:
                events.step_pairs.append([])

    from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

    handle = register_optimizer_step_pre_hook(step_hook)
    after = register_optimizer_step_post_hook(after_step)
    torch.autograd.backward = backward
    torch.autograd.grad = grad
    torch.optim.Optimizer.zero_grad = zero_grad
    try:
        yield
    finally:
        handle.remove()
        after.remove()
        torch.autograd.backward = original_backward
        torch.autograd.grad = original_grad
        torch.optim.Optimizer.zero_grad = original_zero_grad


def perturb(gradient: float, rate: float) -> None:
    """The counterfactual runs' mechanism, for the rest of the child's life (harness.run installs it once the
    normal runs are done): autograd's engine gets every seed scaled by `gradient`, so every gradient it returns
    is (backward() and autograd.grad alike, however the submission bound them, and every hook sees it), and
    every optimizer step runs with each group's learning rate scaled by `rate` (restored after the step)."""
    import torch
    import torch.autograd.graph
    from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

    # backward() and autograd.grad call it through torch.autograd's module global, at every call.
    engine = torch.autograd._engine_run_backward

    def scaled_engine(outputs: Any, seeds: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(seeds, (tuple, list)):
            seeds = type(seeds)(s * gradient if isinstance(s, torch.Tensor) else s for s in seeds)
        return engine(outputs, seeds, *args, **kwargs)

    rates: list[list[Any]] = []

    def scale_rate(optimizer: Any, args: Any, kwargs: Any) -> None:
        rates.append([(group, group.get("lr")) for group in optimizer.param_groups])
        for group in optimizer.param_groups:
            try:  # a float, or a tensor (SGD takes either)
                group["lr"] = group["lr"] * rate
            except (KeyError, TypeError):
                continue

    def restore_rate(optimizer: Any, args: Any, kwargs: Any) -> None:
        for group, lr in rates.pop() if rates else ():
            group["lr"] = lr

    register_optimizer_step_pre_hook(scale_rate)
    register_optimizer_step_post_hook(restore_rate)
    torch.autograd._engine_run_backward = scaled_engine
