"""The messages a job's child writes on its channel, as dataclasses: one list of types, both directions.

The child builds each message here and sends its `to_wire()` (harness.py, spare.py); the parent reads each back
with `from_wire()` (protocol.parse_message), after channel.py has validated the bytes. A message is the child's
word, so `from_wire` coerces every field to its type (a hostile child may send anything). MESSAGES is the one
list of message types: channel.py accepts exactly these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

COUNTERFACTUAL = "counterfactual:"  # the key prefix of a counterfactual call's result (grading.run_probes)


@dataclass(frozen=True)
class ChildError:
    """An exception (or a probe's refusal) as the child described it: harness.describe_exception."""

    kind: str = "exception"  # "exception", "not-implemented", or a probe's own ("missing", "type", "shape")
    type: str | None = None  # the exception's class name
    message: str = ""
    where: str | None = None  # the student's line that raised
    traceback: str = ""
    name: str | None = None  # the missing function's name (kind "missing")
    cell: str = ""  # the notebook cell it raised in
    evidence: dict[str, Any] = field(default_factory=dict)  # what a probe saw as it raised: plain scalars

    def to_wire(self) -> dict[str, Any]:
        """The fields that say something (a default is what from_wire reads for an absent key)."""
        wire: dict[str, Any] = {"kind": self.kind}
        if self.type is not None:
            wire["type"] = self.type
        wire["message"] = self.message
        if self.where is not None:
            wire["where"] = self.where
        if self.traceback:
            wire["traceback"] = self.traceback
        if self.name is not None:
            wire["name"] = self.name
        if self.cell:
            wire["cell"] = self.cell
        if self.evidence:
            wire["evidence"] = self.evidence
        return wire

    @classmethod
    def from_wire(cls, raw: Any) -> ChildError:
        """Anything but a mapping is an error that says nothing."""
        if not isinstance(raw, dict):
            return cls()
        kind, where, evidence = raw.get("kind", "exception"), raw.get("where"), raw.get("evidence")
        return cls(kind=str(kind), type=_str_or_none(raw.get("type")), message=str(raw.get("message", "")),
                   where=str(where) if where else None, traceback=str(raw.get("traceback", "")),
                   name=_str_or_none(raw.get("name")), cell=str(raw.get("cell") or ""),
                   evidence=dict(evidence) if isinstance(evidence, dict) else {})


@dataclass(frozen=True)
class Hello:
    """Sent by the child before any submission code runs: the sandbox it entered."""

    TYPE: ClassVar[str] = "hello"
    tier: dict[str, Any] | None

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, "tier": self.tier}

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> Hello:
        return cls(raw.get("tier") if isinstance(raw.get("tier"), dict) else None)


@dataclass(frozen=True)
class LoadError:
    """The submission raised while it was executed; `continued`: a notebook cell, and the next cells ran."""

    TYPE: ClassVar[str] = "load_error"
    error: ChildError
    continued: bool = False

    def to_wire(self) -> dict[str, Any]:
        wire = {"type": self.TYPE, "error": self.error.to_wire()}
        return {**wire, "continued": True} if self.continued else wire

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> LoadError:
        return cls(ChildError.from_wire(raw.get("error")), bool(raw.get("continued")))


@dataclass(frozen=True)
class Result:
    """One probe's answer on one device: its fields (the untrusted numbers) or the error it raised."""

    TYPE: ClassVar[str] = "result"
    key: str
    device: str
    ok: bool
    fields: Any  # a mapping of numbers when the child behaved; checks.py compares it with the reference
    error: ChildError | None
    output_at: tuple[float, float] | None = None  # the output file's offsets before and after the probe ran
    # seconds the call took, as the child measured them: read only where the code is trusted (`grade record`,
    # which derives each call's budget from the reference's time), never to grade
    elapsed_s: float | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"type": self.TYPE, "key": self.key, "device": self.device, "ok": self.ok}
        if self.ok:
            wire["fields"] = self.fields
        else:
            wire["error"] = (self.error or ChildError()).to_wire()
        if self.output_at is not None:
            wire["output_at"] = [float(self.output_at[0]), float(self.output_at[1])]
        if self.elapsed_s is not None:
            wire["elapsed_s"] = float(self.elapsed_s)
        return wire

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> Result:
        at = raw.get("output_at")
        # "nan" and "inf" decode to floats too: offsets that are not finite label nothing (int(nan) raises)
        offsets = (at[0], at[1]) if isinstance(at, list) and len(at) == 2 and \
            all(isinstance(v, float) and math.isfinite(v) for v in at) else None
        ok = bool(raw.get("ok"))
        elapsed = raw.get("elapsed_s")
        return cls(key=str(raw.get("key")), device=str(raw.get("device")), ok=ok, fields=raw.get("fields"),
                   error=None if ok else ChildError.from_wire(raw.get("error")), output_at=offsets,
                   elapsed_s=elapsed if isinstance(elapsed, float) and math.isfinite(elapsed) and elapsed >= 0
                   else None)


@dataclass(frozen=True)
class Phase:
    """The visible checks are done: the hidden checks' inputs come next."""

    TYPE: ClassVar[str] = "phase"

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE, "next": "hidden"}

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> Phase:
        return cls()


@dataclass(frozen=True)
class Done:
    """The harness reached the end of the job."""

    TYPE: ClassVar[str] = "done"

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.TYPE}

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> Done:
        return cls()


Message = Hello | LoadError | Result | Phase | Done
# The one list of the channel's message types: channel.py accepts these, protocol.parse_message reads them.
MESSAGES: dict[str, type[Hello] | type[LoadError] | type[Result] | type[Phase] | type[Done]] = {
    kind.TYPE: kind for kind in (Hello, LoadError, Result, Phase, Done)}


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
