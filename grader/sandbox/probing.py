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
from typing import Any

from grader.sandbox.hooks import (  # moved to hooks.py, still named here
    Events as Events,
    _torch_hooks as _torch_hooks,
    perturb as perturb,
)


class ProbeFailure(Exception):
    """The student's answer has the wrong type or shape, or a required name is missing."""

    def __init__(self, kind: str, message: str, name: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.name = name  # the student's name it is about (a missing function), for the parent's wording


class Context:
    """Everything a probe needs: the student's module, the device, and converters."""

    def __init__(self, student: Any, device: str):
        self.student = student
        self.device = device
        self.runaway: set[str] = set()  # the student's functions a call budget stopped (sandbox/budget.py)
        self.calls_made = 0  # probe calls on this device so far (the first one gets a longer budget)
        # The counterfactual calls (harness.run) read a history by its first n_iters epochs: a loop that ignores
        # n_iters (a hard-coded epoch count) still shows how its first epochs respond to the perturbation.
        self.history_prefix = False

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
        if name in self.runaway:
            raise ProbeFailure("runaway-skipped", f"not run: `{name}` did not return within its budget in an "
                               "earlier check, and would cost this one its budget too.", name)
        target = getattr(self.student, name, None)
        if target is None:
            raise ProbeFailure("missing", f"`{name}` is not defined in your file.", name)
        if not callable(target):
            raise ProbeFailure("missing", f"`{name}` is defined but is not a function.", name)
        return target

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self.function(name)(*args, **kwargs)

    @contextlib.contextmanager
    def substitute(self, **replacements: Callable[..., Any]) -> Iterator[None]:
        """Swap in reference helpers so a bug in one function is charged to that function only."""
        absent = object()
        saved = {name: getattr(self.student, name, absent) for name in replacements}
        for name, function in replacements.items():
            setattr(self.student, name, function)
        try:
            yield
        finally:
            for name, previous in saved.items():
                if previous is absent:  # a function the submission never defined stays undefined
                    with contextlib.suppress(AttributeError):
                        delattr(self.student, name)
                else:
                    setattr(self.student, name, previous)

    @contextlib.contextmanager
    def watch(self, parameters: Sequence[Any] = ()) -> Iterator[Events]:
        """Count backward()/step()/zero_grad() calls and collect warnings while the student runs.

        `parameters` (ex05: the model's): count the steps whose optimizer holds every one of them."""
        events = Events(watched=tuple(parameters), values=not parameters)
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
              parameters: Sequence[Any] = (), parameter: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """Call a training function (`n_iters` passed by keyword) and return its history, column by column.

        `substitutes` swaps reference helpers in while it runs; `watch` adds the autograd/optimizer events
        (and, for `parameters`, whether each step's optimizer holds them). `parameter` names the trained
        tensor's local variable: when the run raises after a backward() and that variable no longer holds a
        leaf that requires grad, the exception carries the evidence (`rebound-parameter`). A substitute that
        records `call_orders` adds them to the fields.
        """
        with self.substitute(**(substitutes or {})), self.watch(parameters) as events:
            try:
                value = self.call(name, *args, n_iters=n_iters, **kwargs)
            except Exception as exc:
                if parameter:
                    _note_rebound(exc, getattr(self.function(name), "__code__", None), parameter, events)
                raise
        fields: dict[str, Any] = self.history(value, n_iters, columns, f"{name}(...)")
        orders = {k: v for s in (substitutes or {}).values() for k, v in getattr(s, "call_orders", {}).items()}
        if orders:
            fields["call_orders"] = orders
        return {**fields, **events.as_fields()} if watch else fields

    def history(self, value: Any, n_iters: int, columns: Sequence[str], what: str) -> dict[str, list[float]]:
        """A list with one entry per epoch; each entry a number or a tuple with one item per column."""
        if not isinstance(value, (list, tuple)):
            raise ProbeFailure(
                "type", f"{what} should return a list with one entry per epoch, but it returned "
                f"{_describe(value)}. Did you forget a `return` statement?"
            )
        if self.history_prefix and len(value) > n_iters:
            value = value[:n_iters]
        if len(value) != n_iters:
            raise ProbeFailure(
                "shape", f"{what} returned {len(value)} entries for n_iters={n_iters}; expected one per epoch."
            )
        out: dict[str, Any] = {c: [] for c in columns}
        items_by_column: dict[str, list[Any]] = {c: [] for c in columns}
        for epoch, entry in enumerate(value, 1):
            items = (entry,) if len(columns) == 1 and not isinstance(entry, (list, tuple)) else entry
            if not isinstance(items, (list, tuple)) or len(items) != len(columns):
                raise ProbeFailure(
                    "shape", f"{what}: entry {epoch} should be ({', '.join(columns)}), got {_describe(entry)}."
                )
            for column, item in zip(columns, items, strict=False):
                out[column].append(self.number(item, f"{what}: {column} at epoch {epoch}"))
                items_by_column[column].append(item)
        for column, items in items_by_column.items():
            if len(items) > 1 and all(_same_memory(items[0], item) for item in items[1:]):
                out[f"aliased_{column}"] = True  # every entry is one live array: it shows its final value
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


ROLE_NAMES = {"x": "x", "y": "y", "prediction": "y_pred"}


def in_callers_order(reference: Callable[..., Any], x: Any, y: Any, name: str,
                     forward: Callable[..., Any] | None = None) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The reference `name(x, y, y_pred)`, called with the meaning of the student's own arguments, and a
    forward that marks its outputs as predictions.

    A student's `train` may call its helper as `gradient(x, y_pred, y)`, the order of its own definition.
    A substitute taking the exercise's order would then swap y and y_pred and invent a sign mistake, so each
    argument is recognised: the object the (returned) forward produced is the prediction, the train's own
    x and y arrays are x and y, and failing identity, equal values say which is which. The order seen is
    kept in `call_orders` (evidence for `argument-order`); when the roles are not clear (a loop over single
    samples), the order last seen, else the exercise's, is used.
    """
    import numpy as np

    known = {"x": x, "y": y}
    produced: list[Any] = []

    def marking_forward(*args: Any, **kwargs: Any) -> Any:
        out = (forward or reference_forward)(*args, **kwargs)
        produced[:] = [out]
        return out

    def roles_of(values: list[Any]) -> list[str | None]:
        """Identity first (the forward's output, the train's own x and y), then equal values for the roles
        still open; one value left over is the prediction (at w = 1 it equals x by value, yet is not x)."""
        roles: list[str | None] = []
        for value in values:
            if any(value is p for p in produced):
                roles.append("prediction")
            else:
                roles.append(next((label for label, data in known.items() if value is data), None))
        for index, value in enumerate(values):
            if roles[index] is None:
                array = np.asarray(value)
                open_roles = [label for label, data in known.items() if label not in roles
                              and array.shape == np.shape(data) and np.array_equal(array, data)]
                roles[index] = open_roles[0] if len(open_roles) == 1 else None
        if roles.count(None) == 1 and "prediction" not in roles:
            roles[roles.index(None)] = "prediction"
        return roles

    last: list[list[str]] = []

    def substitute(*args: Any, **kwargs: Any) -> Any:
        values = list(args) + list(kwargs.values())
        roles = roles_of(values) if len(values) == 3 else []
        if sorted(r for r in roles if r) != ["prediction", "x", "y"]:
            if not (last and len(values) == 3 and not kwargs):
                return reference(*args, **kwargs)
            roles = last[0]
        last[:] = [roles]
        by_role = dict(zip(roles, values, strict=False))
        if not kwargs and roles != ["x", "y", "prediction"]:  # only an unusual order is news
            substitute.call_orders[name] = ", ".join(ROLE_NAMES[r] for r in roles)
        return reference(by_role["x"], by_role["y"], by_role["prediction"])

    substitute.call_orders = {}  # type: ignore[attr-defined]
    return substitute, marking_forward


def _same_memory(first: Any, other: Any) -> bool:
    """Whether two history entries are one mutable array or tensor (or views of the same memory region: rows of
    one preallocated buffer are different memory, and hold different values)."""
    if first is other and not isinstance(first, (int, float, bool, str)):
        return not _immutable_scalar(first)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(first, torch.Tensor) and isinstance(other, torch.Tensor):
        try:
            return first.untyped_storage().data_ptr() == other.untyped_storage().data_ptr() and \
                first.data_ptr() == other.data_ptr() and first.shape == other.shape and \
                first.stride() == other.stride() and first.numel() > 0
        except (RuntimeError, AttributeError):
            return False
    np = sys.modules.get("numpy")
    if np is not None and isinstance(first, np.ndarray) and isinstance(other, np.ndarray):
        return bool(np.shares_memory(first, other))
    return False


def _immutable_scalar(value: Any) -> bool:
    np = sys.modules.get("numpy")
    return np is not None and isinstance(value, np.generic)


def _note_rebound(exc: BaseException, code: Any, parameter: str, events: Events) -> None:
    """Mark `exc` when the trained parameter was replaced by a new tensor during the run.

    Evidence: the student's training frame, where it raised, holds in `parameter` a tensor that is no longer
    a leaf requiring grad (it has a grad_fn, or requires no grad), after at least one backward() went through
    (so it was a trainable leaf before: the first epochs ran).
    """
    torch = sys.modules.get("torch")
    if torch is None or events.backward_done < 1:
        return
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code is code:
            value = frame.f_locals.get(parameter)
            if isinstance(value, torch.Tensor) and (value.grad_fn is not None or not value.requires_grad):
                exc.__grader_evidence__ = {  # type: ignore[attr-defined]
                    "rebound": parameter, "requires_grad": bool(value.requires_grad),
                    "backward_calls": events.backward_done}
            return
        tb = tb.tb_next


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"a {type(value).__name__} ({text})"


