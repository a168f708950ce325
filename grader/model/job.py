"""A grading job as plain data: the per-submission limits, and the job the trusted parent sends a sandboxed child.

`Job` is written by the parent (grading.run_probes, the doctor) and read by the child (sandbox/spare.py,
harness.py) through the same `to_wire()`/`from_wire()`: on the wire it is one JSON line, then, where hidden
checks follow, a second line (`HiddenPart`) sent only once the visible checks are done. The job travels the
trusted direction, but a field that is not what it should be is refused with a ValueError all the same (the
child then ends without running anything, which its parent reads as a run that broke).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MEMORY_MIB = 2048


@dataclass(frozen=True)
class Limits:
    timeout: float = DEFAULT_TIMEOUT_S
    memory_mib: int = DEFAULT_MEMORY_MIB

    def as_job(self) -> dict[str, Any]:
        return {"timeout": float(self.timeout), "memory_mib": int(self.memory_mib)}

    @classmethod
    def from_wire(cls, raw: Any) -> Limits:
        raw = _mapping(raw, "limits")
        return cls(_number(raw.get("timeout", DEFAULT_TIMEOUT_S), "limits.timeout"),
                   int(_number(raw.get("memory_mib", DEFAULT_MEMORY_MIB), "limits.memory_mib")))


@dataclass(frozen=True)
class Invocation:
    """One probe call: `probe(ctx, **args)` from the exercise's probe module, its result sent under `key`."""

    key: str
    probe: str
    args: dict[str, Any]
    budget_s: float | None = None  # this call's own budget (from the reference's recorded time); None: the job's

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"key": self.key, "probe": self.probe, "args": self.args}
        if self.budget_s is not None:
            wire["budget_s"] = self.budget_s
        return wire

    @classmethod
    def from_wire(cls, raw: Any) -> Invocation:
        raw = _mapping(raw, "invocation")
        budget = raw.get("budget_s")
        return cls(_text(raw.get("key"), "invocation.key"), _text(raw.get("probe"), "invocation.probe"),
                   dict(_mapping(raw.get("args", {}), "invocation.args")),
                   _number(budget, "invocation.budget_s") if budget is not None else None)

    @classmethod
    def many(cls, raw: Iterable[Any]) -> tuple[Invocation, ...]:
        """Each of `raw` (Invocations or their wire form, as exercises.invocations() lists them)."""
        return tuple(i if isinstance(i, Invocation) else cls.from_wire(i) for i in raw)


@dataclass(frozen=True)
class Cell:
    """One cell of the submission (a .py file is one), executed in order under its label."""

    label: str
    source: str

    def to_wire(self) -> dict[str, Any]:
        return {"label": self.label, "source": self.source}

    @classmethod
    def from_wire(cls, raw: Any) -> Cell:
        raw = _mapping(raw, "cell")
        return cls(_text(raw.get("label"), "cell.label"), _text(raw.get("source"), "cell.source"))


@dataclass(frozen=True)
class Perturbed:
    """The process checks' calls once more at the end, with gradients and learning rates scaled (the job's
    `counterfactual`; probing.perturb applies the factors)."""

    gradient: float
    rate: float
    invocations: tuple[Invocation, ...]

    def to_wire(self) -> dict[str, Any]:
        return {"gradient": self.gradient, "rate": self.rate, "invocations": [i.to_wire() for i in self.invocations]}

    @classmethod
    def from_wire(cls, raw: Any) -> Perturbed:
        raw = _mapping(raw, "counterfactual")
        return cls(_number(raw.get("gradient"), "counterfactual.gradient"),
                   _number(raw.get("rate"), "counterfactual.rate"),
                   Invocation.many(_list(raw.get("invocations", []), "counterfactual.invocations")))


@dataclass(frozen=True)
class HiddenPart:
    """The job's second line: the hidden checks' calls (and their counterfactual calls), sent after the phase."""

    invocations: tuple[Invocation, ...] = ()
    counterfactual_invocations: tuple[Invocation, ...] = ()

    def to_wire(self) -> dict[str, Any]:
        return {"invocations": [i.to_wire() for i in self.invocations],
                "counterfactual_invocations": [i.to_wire() for i in self.counterfactual_invocations]}

    @classmethod
    def from_wire(cls, raw: Any) -> HiddenPart:
        raw = _mapping(raw, "the hidden part")
        return cls(Invocation.many(_list(raw.get("invocations", []), "invocations")),
                   Invocation.many(_list(raw.get("counterfactual_invocations", []), "counterfactual_invocations")))


@dataclass(frozen=True)
class Job:
    """What the parent sends a job's child: the submission's cells, the probe module and the calls to make.

    The parent builds the whole job; `for_child(job_id)` is its first line (the hidden calls left out, and
    `hidden_follows` set where they come later as `hidden_part()`). `to_wire()` of the whole job is what
    travels to another grading machine (execution/cluster.py), which splits it the same way.
    """

    exercise: str
    module_name: str
    probe_source: str
    cells: tuple[Cell, ...]
    invocations: tuple[Invocation, ...]
    devices: tuple[str, ...]
    limits: Limits
    forgiving_cells: bool = False  # a notebook: a cell that raises is reported and the next cells still run
    call_budget_s: float | None = None  # one probe call's budget (runaway loops), None: only the run's timeout
    hidden_invocations: tuple[Invocation, ...] = ()
    counterfactual: Perturbed | None = None
    hidden_counterfactual: tuple[Invocation, ...] = ()  # the hidden process checks' perturbed calls
    job_id: str = ""  # set by the client that sends it (for_child)
    hidden_follows: bool = False  # the hidden part comes as a second line, after the phase message

    def for_child(self, job_id: str) -> Job:
        """The job's first line: everything but the hidden calls."""
        return replace(self, hidden_invocations=(), hidden_counterfactual=(), job_id=job_id,
                       hidden_follows=bool(self.hidden_invocations))

    def hidden_part(self) -> HiddenPart | None:
        """The job's second line, or None where there are no hidden calls."""
        if not self.hidden_invocations:
            return None
        return HiddenPart(self.hidden_invocations, self.hidden_counterfactual)

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "exercise": self.exercise, "module_name": self.module_name, "probe_source": self.probe_source,
            "cells": [c.to_wire() for c in self.cells], "forgiving_cells": self.forgiving_cells,
            "invocations": [i.to_wire() for i in self.invocations], "devices": list(self.devices),
            "limits": self.limits.as_job()}
        if self.call_budget_s is not None:
            wire["call_budget_s"] = self.call_budget_s
        if self.hidden_invocations:
            wire["hidden_invocations"] = [i.to_wire() for i in self.hidden_invocations]
        if self.counterfactual is not None:
            wire["counterfactual"] = self.counterfactual.to_wire()
        if self.hidden_counterfactual:
            wire["hidden_counterfactual"] = [i.to_wire() for i in self.hidden_counterfactual]
        if self.job_id:
            wire["job_id"] = self.job_id
        if self.hidden_follows:
            wire["hidden_follows"] = True
        return wire

    @classmethod
    def from_wire(cls, raw: Any) -> Job:
        """The job from its wire form; ValueError where a field is missing or not of its type."""
        raw = _mapping(raw, "job")
        budget = raw.get("call_budget_s")
        counterfactual = raw.get("counterfactual")
        return cls(
            exercise=_text(raw.get("exercise", ""), "exercise"),
            module_name=_text(raw.get("module_name"), "module_name"),
            probe_source=_text(raw.get("probe_source"), "probe_source"),
            cells=tuple(Cell.from_wire(c) for c in _list(raw.get("cells"), "cells")),
            invocations=Invocation.many(_list(raw.get("invocations"), "invocations")),
            devices=tuple(_text(d, "devices") for d in _list(raw.get("devices"), "devices")),
            limits=Limits.from_wire(raw.get("limits")),
            forgiving_cells=raw.get("forgiving_cells") is True,
            # as the harness always read it: a budget that is not a positive number is no budget
            call_budget_s=float(budget) if isinstance(budget, int | float) and not isinstance(budget, bool)
            and budget > 0 else None,
            hidden_invocations=Invocation.many(_list(raw.get("hidden_invocations", []), "hidden_invocations")),
            counterfactual=Perturbed.from_wire(counterfactual) if counterfactual is not None else None,
            hidden_counterfactual=Invocation.many(_list(raw.get("hidden_counterfactual", []),
                                                        "hidden_counterfactual")),
            job_id=str(raw.get("job_id", "")),
            hidden_follows=raw.get("hidden_follows") is True,
        )


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"the job's {what} is not a mapping")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"the job's {what} is not a list")
    return list(value)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"the job's {what} is not text")
    return value


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"the job's {what} is not a finite number")
    return float(value)
