"""Child-side helpers for an exercise's probe.py: build inputs, call the student, turn answers into numbers.

Runs inside the sandboxed child only. A probe receives a `Context` and the check's plain arguments, and
returns a dict of plain numbers. Anything the student returns that is not the promised type or shape
raises `ProbeFailure`, which the harness reports as a failed check with the message given here.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any


class ProbeFailure(Exception):
    """The student's answer has the wrong type or shape, or a required name is missing."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass
class Events:
    """What the student's code did through autograd and torch.optim while a probe ran."""

    backward: int = 0
    autograd_grad: int = 0
    step: int = 0
    zero_grad: int = 0
    order: list[str] = field(default_factory=list)  # "B" backward, "S" step, "Z" zero_grad, capped
    warnings: list[str] = field(default_factory=list)
    # Where the process went, for the parent to tie it to the history: per backward() the values of the
    # one-number leaves its gradient reached (before the update); per step() the values of the optimizer's
    # one-number parameters after it; and how many steps ran on an optimizer holding every watched parameter.
    backward_values: list[list[float]] = field(default_factory=list)
    step_values: list[list[float]] = field(default_factory=list)
    watched: tuple[Any, ...] = ()
    steps_holding_watched: int = 0

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
            "backward_values": self.backward_values,
            "step_values": self.step_values,
            **({"steps_holding_model": self.steps_holding_watched} if self.watched else {}),
        }


class Context:
    """Everything a probe needs: the student's module, the device, and converters."""

    def __init__(self, student: Any, device: str):
        self.student = student
        self.device = device

    # ---- inputs
    def tensor(self, values: Any, dtype: str = "float32") -> Any:
        import torch

        return torch.tensor(values, dtype=getattr(torch, dtype), device=self.device)

    @staticmethod
    def array(values: Any, dtype: str = "float32") -> Any:
        import numpy as np

        return np.asarray(values, dtype=dtype)

    # ---- calling the student
    def function(self, name: str) -> Callable[..., Any]:
        target = getattr(self.student, name, None)
        if target is None:
            raise ProbeFailure("missing", f"`{name}` is not defined in your file.")
        if not callable(target):
            raise ProbeFailure("missing", f"`{name}` is defined but is not a function.")
        return target

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self.function(name)(*args, **kwargs)

    @contextlib.contextmanager
    def substitute(self, **replacements: Callable[..., Any]) -> Iterator[None]:
        """Swap in reference helpers so a bug in one function is charged to that function only."""
        saved = {name: getattr(self.student, name, None) for name in replacements}
        for name, function in replacements.items():
            setattr(self.student, name, function)
        try:
            yield
        finally:
            for name, previous in saved.items():
                setattr(self.student, name, previous)

    @contextlib.contextmanager
    def watch(self, parameters: Sequence[Any] = ()) -> Iterator[Events]:
        """Count backward()/step()/zero_grad() calls and collect warnings while the student runs.

        `parameters` (ex05: the model's): count the steps whose optimizer holds every one of them."""
        events = Events(watched=tuple(parameters))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with _torch_hooks(events):
                yield events
        events.warnings = [str(w.message)[:200] for w in caught[:20]]

    # ---- outputs
    def number(self, value: Any, what: str) -> float:
        """A Python float, NumPy scalar, or one-element tensor on any device, as a float."""
        if isinstance(value, bool):
            raise ProbeFailure("type", f"{what} should be a number, but it is a bool ({value}).")
        if isinstance(value, (int, float)):
            return float(value)
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise ProbeFailure(
                    "shape", f"{what} should be a single number, but it is a tensor of shape "
                    f"{tuple(value.shape)}."
                )
            return float(value.detach().cpu().reshape(()).item())
        np = sys.modules.get("numpy")
        if np is not None and isinstance(value, (np.generic, np.ndarray)):
            if np.size(value) != 1:
                raise ProbeFailure(
                    "shape", f"{what} should be a single number, but it is an array of shape "
                    f"{np.shape(value)}."
                )
            if not np.issubdtype(np.asarray(value).dtype, np.number):
                raise ProbeFailure("type", f"{what} should be a number, got dtype {np.asarray(value).dtype}.")
            return float(np.asarray(value).reshape(()))
        raise ProbeFailure("type", f"{what} should be a number, but it is {_describe(value)}.")

    def vector(self, value: Any, shape: Sequence[int], what: str) -> list[Any]:
        """An array or tensor of exactly `shape`, as nested lists of floats."""
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(value, torch.Tensor):
            got = tuple(value.shape)
            data = value.detach().cpu().double()
        else:
            np = sys.modules.get("numpy")
            if np is None or not isinstance(value, (np.ndarray, np.generic)):
                raise ProbeFailure(
                    "type", f"{what} should be an array/tensor of shape {tuple(shape)}, but it is "
                    f"{_describe(value)}."
                )
            if not np.issubdtype(value.dtype, np.number):
                raise ProbeFailure("type", f"{what} has dtype {value.dtype}; expected numbers.")
            got = tuple(value.shape)
            data = value.astype("float64")
        if got != tuple(shape):
            raise ProbeFailure(
                "shape", f"{what} has shape {got}, expected {tuple(shape)}"
                + (" (an (n, 1) column against an (n,) vector broadcasts to (n, n))" if len(got) == 2 else "")
                + "."
            )
        return data.tolist()

    def train(self, name: str, *args: Any, columns: Sequence[str], n_iters: int,
              substitutes: dict[str, Callable[..., Any]] | None = None, watch: bool = False,
              parameters: Sequence[Any] = (), **kwargs: Any) -> dict[str, Any]:
        """Call a training function (`n_iters` passed by keyword) and return its history, column by column.

        `substitutes` swaps reference helpers in while it runs; `watch` adds the autograd/optimizer events
        (and, for `parameters`, whether each step's optimizer holds them).
        """
        with self.substitute(**(substitutes or {})), self.watch(parameters) as events:
            value = self.call(name, *args, n_iters=n_iters, **kwargs)
        fields: dict[str, Any] = self.history(value, n_iters, columns, f"{name}(...)")
        return {**fields, **events.as_fields()} if watch else fields

    def history(self, value: Any, n_iters: int, columns: Sequence[str], what: str) -> dict[str, list[float]]:
        """A list with one entry per epoch; each entry a number or a tuple with one item per column."""
        if not isinstance(value, (list, tuple)):
            raise ProbeFailure(
                "type", f"{what} should return a list with one entry per epoch, but it returned "
                f"{_describe(value)}. Did you forget a `return` statement?"
            )
        if len(value) != n_iters:
            raise ProbeFailure(
                "shape", f"{what} returned {len(value)} entries for n_iters={n_iters}; expected one per epoch."
            )
        out: dict[str, list[float]] = {c: [] for c in columns}
        for epoch, entry in enumerate(value, 1):
            items = (entry,) if len(columns) == 1 and not isinstance(entry, (list, tuple)) else entry
            if not isinstance(items, (list, tuple)) or len(items) != len(columns):
                raise ProbeFailure(
                    "shape", f"{what}: entry {epoch} should be ({', '.join(columns)}), got {_describe(entry)}."
                )
            for column, item in zip(columns, items):
                out[column].append(self.number(item, f"{what}: {column} at epoch {epoch}"))
        return out


# ---- reference helpers a probe swaps in for the student's (NumPy arrays and tensors alike)
def reference_forward(w: Any, x: Any) -> Any:
    """f(x) = w * x, written as the solutions write it so substituted runs reproduce the references."""
    return w * x


def reference_mse(y: Any, y_pred: Any) -> Any:
    """Mean squared error, as the solutions write it."""
    return ((y_pred - y) ** 2).mean()


def reference_mse_gradient(x: Any, y: Any, y_pred: Any) -> Any:
    """dMSE/dw = mean(2 * x * (y_pred - y)) for NumPy arrays, as solutions/ex01.py writes it."""
    import numpy as np

    return np.mean(2 * x * (y_pred - y))


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"a {type(value).__name__} ({text})"


MAX_EVENTS = 5000  # backward()/step() calls whose values are kept
MAX_VALUES = 8  # one-number leaves or parameters kept per call
MAX_GRAPH_NODES = 10_000


def _reached_values(torch: Any, tensors: Any, inputs: Any) -> list[float]:
    """The values of the one-number leaf tensors a backward() from `tensors` accumulates gradients into."""
    if inputs is not None:
        leaves = [inputs] if isinstance(inputs, torch.Tensor) else list(inputs)
    else:
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
    return [float(t.detach().reshape(()).item()) for t in leaves if t.numel() == 1][:MAX_VALUES]


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

    def backward(*args: Any, **kwargs: Any) -> Any:
        events.backward += 1
        events.log("B")
        if len(events.backward_values) < MAX_EVENTS:
            try:  # before the call: the graph is freed by it
                events.backward_values.append(_reached_values(torch, args[0] if args else kwargs.get("tensors"),
                                                              kwargs.get("inputs")))
            except Exception:  # noqa: BLE001 - a graph we cannot walk is evidence of nothing
                events.backward_values.append([])
        return original_backward(*args, **kwargs)

    def grad(*args: Any, **kwargs: Any) -> Any:
        events.autograd_grad += 1
        return original_grad(*args, **kwargs)

    def zero_grad(self: Any, *args: Any, **kwargs: Any) -> Any:
        events.zero_grad += 1
        events.log("Z")
        return original_zero_grad(self, *args, **kwargs)

    def step_hook(optimizer: Any, args: Any, kwargs: Any) -> None:
        events.step += 1
        events.log("S")

    def after_step(optimizer: Any, args: Any, kwargs: Any) -> None:
        try:
            held = [p for group in optimizer.param_groups for p in group["params"]]
            if len(events.step_values) < MAX_EVENTS:
                events.step_values.append([float(p.detach().reshape(()).item()) for p in held[:MAX_VALUES]
                                           if p.numel() == 1])
            if events.watched and {id(p) for p in events.watched} <= {id(p) for p in held}:
                events.steps_holding_watched += 1
        except Exception:  # noqa: BLE001 - an optimizer we cannot read is evidence of nothing
            events.step_values.append([])

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
