"""The protocol between the trusted parent and a job's child, typed: every wire message parsed once, here.

The child's channel (channel.py: bytes → validated plain dicts) carries hello, load_error, result, phase and
done; the worker adds its account of how the child ended (the `finished` event) and, once, its `ready`
event. This module turns them into frozen dataclasses; no other module reads a raw wire dict. A message is
the child's word, so every field is coerced to its type here (a hostile child may send anything): what
breaks the channel's rules is a ChannelError, which makes the outcome's `channel_error` (status `rejected`).
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from typing import Any

from grader.sandbox.channel import ChannelError, decode

OUTPUT_CAP_BYTES = 64 * 1024  # what we keep of a submission's prints


class SandboxFailure(RuntimeError):
    """The worker itself failed (not the submission): it died, hung, or spoke nonsense."""


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

    tier: dict[str, Any] | None


@dataclass(frozen=True)
class LoadError:
    """The submission raised while it was executed; `continued`: a notebook cell, and the next cells ran."""

    error: ChildError
    continued: bool


COUNTERFACTUAL = "counterfactual:"  # the key prefix of a counterfactual call's result (grading.run_probes)


@dataclass(frozen=True)
class Result:
    """One probe's answer on one device: its fields (the untrusted numbers) or the error it raised."""

    key: str
    device: str
    ok: bool
    fields: Any  # a mapping of numbers when the child behaved; checks.py compares it with the reference
    error: ChildError | None
    output_at: tuple[float, float] | None  # the output file's offsets before and after the probe ran


@dataclass(frozen=True)
class Phase:
    """The visible checks are done: the hidden checks' inputs come next."""


@dataclass(frozen=True)
class Done:
    """The harness reached the end of the job."""


Message = Hello | LoadError | Result | Phase | Done


def parse_message(raw: dict[str, Any]) -> Message:
    """One decoded channel message (its type already one of channel.MESSAGE_TYPES) as its dataclass."""
    kind = raw["type"]
    if kind == "hello":
        return Hello(raw.get("tier") if isinstance(raw.get("tier"), dict) else None)
    if kind == "load_error":
        return LoadError(ChildError.from_wire(raw.get("error")), bool(raw.get("continued")))
    if kind == "result":
        at = raw.get("output_at")
        # "nan" and "inf" decode to floats too: offsets that are not finite label nothing (int(nan) raises)
        offsets = (at[0], at[1]) if isinstance(at, list) and len(at) == 2 and \
            all(isinstance(v, float) and math.isfinite(v) for v in at) else None
        ok = bool(raw.get("ok"))
        return Result(key=str(raw.get("key")), device=str(raw.get("device")), ok=ok, fields=raw.get("fields"),
                      error=None if ok else ChildError.from_wire(raw.get("error")), output_at=offsets)
    if kind == "phase":
        return Phase()
    if kind == "done":
        return Done()
    raise ChannelError(f"unknown message type {str(kind)[:40]!r}")


def parse_channel(data: bytes) -> tuple[Message, ...]:
    """Everything a child sent, validated (channel.decode) and typed. Raises ChannelError."""
    return tuple(parse_message(m) for m in decode(data))


@dataclass(frozen=True)
class Outcome:
    """What came back from one job: the child's typed messages and the worker's account, still untrusted."""

    messages: tuple[Message, ...]
    channel_error: str | None
    exit_code: int | None
    signal: int | None
    timed_out: bool
    memory_exceeded: bool
    overflow: bool
    output: str  # printed before any hidden check ran (capped): what a student may read
    duration_s: float
    peak_rss_mib: float
    hidden_output: str = ""  # printed once the hidden checks' inputs were handed over: instructors only
    output_raw: bytes = b""  # `output`'s bytes, for labelling by the results' output offsets
    hidden_from: int | None = None  # index in `messages` of the phase message: later ones are hidden checks'
    # the counterfactual calls' results (grading.run_probes sets them apart from the checks' own)
    counterfactual: tuple[Result, ...] = ()

    @property
    def hello(self) -> Hello | None:
        return next((m for m in self.messages if isinstance(m, Hello)), None)

    @property
    def results(self) -> tuple[Result, ...]:
        return tuple(m for m in self.messages if isinstance(m, Result))

    @property
    def load_error(self) -> LoadError | None:
        """The error that stopped the submission's loading (a .py file's, or a notebook's fatal one)."""
        return next((m for m in self.messages if isinstance(m, LoadError) and not m.continued), None)

    @property
    def cell_errors(self) -> tuple[ChildError, ...]:
        """Each notebook cell that raised, the cells after it still run."""
        return tuple(m.error for m in self.messages if isinstance(m, LoadError) and m.continued)

    @property
    def done(self) -> bool:
        return any(isinstance(m, Done) for m in self.messages)


def decode_event(event: dict[str, Any]) -> Outcome:
    """What `ZygoteClient.run_raw` returned (here or on another machine), decoded and validated into an Outcome."""
    if not isinstance(event, dict):
        raise SandboxFailure("the grading worker's answer could not be read (not a mapping)")
    try:
        raw = base64.b64decode(str(event.get("channel", "")), validate=True)
        visible = (base64.b64decode(str(event.get("visible_output", "")), validate=True),
                   int(event.get("visible_size", 0)))
        hidden_output = str(event.get("hidden_output", ""))
    except (ValueError, TypeError) as exc:
        raise SandboxFailure(f"the grading worker's answer could not be read ({exc})") from None
    return _outcome(event, raw, bool(event.get("overflow")), visible, hidden_output)


def _outcome(event: dict[str, Any], raw: bytes, overflow: bool, visible: tuple[bytes, int],
             hidden_output: str) -> Outcome:
    channel_error = None
    try:
        messages = parse_channel(raw)
    except ChannelError as exc:
        messages, channel_error = (), str(exc)
    if overflow:
        channel_error = "the submission sent more result data than the grader accepts"
    phase = next((i for i, m in enumerate(messages) if isinstance(m, Phase)), None)
    return Outcome(
        messages=messages,
        channel_error=channel_error,
        exit_code=event.get("exit_code"),
        signal=event.get("signal"),
        timed_out=bool(event.get("timed_out")),
        memory_exceeded=bool(event.get("memory_exceeded")),
        overflow=overflow,
        output=decode_capped(*visible),
        duration_s=float(event.get("duration_s", 0.0)),
        peak_rss_mib=float(event.get("peak_rss_mib", 0.0)),
        hidden_output=hidden_output,
        output_raw=visible[0][:OUTPUT_CAP_BYTES],
        hidden_from=phase,
    )


def decode_capped(data: bytes, size: int) -> str:
    text = data[:OUTPUT_CAP_BYTES].decode("utf-8", "replace")
    if size > OUTPUT_CAP_BYTES:
        text += f"\n[... output truncated: {size} bytes in all]"
    return text


def ready(event: Any) -> dict[str, Any]:
    """The worker's first line, checked: ZygoteClient.info() keeps it as sent; read it through `Ready`."""
    if not isinstance(event, dict) or event.get("event") != "ready":
        raise SandboxFailure("the grading worker did not start")
    return event


@dataclass(frozen=True)
class Ready:
    """What a worker found where it runs (its `ready` event, ZygoteClient.info()): torch, CUDA, its sandbox plan."""

    torch: str | None
    cuda: bool
    sandbox: dict[str, Any]  # the plan every job of the worker runs under: tier, defences, notes, cgroups

    @classmethod
    def from_wire(cls, info: Any) -> Ready:
        info = info if isinstance(info, dict) else {}
        sandbox = info.get("sandbox")
        return cls(_str_or_none(info.get("torch")), info.get("cuda") is True,
                   dict(sandbox) if isinstance(sandbox, dict) else {})

    @property
    def tier(self) -> str:
        return str(self.sandbox.get("tier", "unknown"))

    @property
    def notes(self) -> list[str]:
        notes = self.sandbox.get("notes")
        return [str(n) for n in notes] if isinstance(notes, list) else []


def finished(event: Any) -> dict[str, Any]:
    """The worker's account of one job (exit status, signal, limits), for decode_event. SandboxFailure
    otherwise."""
    if not isinstance(event, dict) or event.get("event") != "finished":
        raise SandboxFailure(f"the grading worker answered {str(event)[:80]!r}")
    return event


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


__all__ = ["ChildError", "Done", "Hello", "LoadError", "Message", "Outcome", "Phase", "Ready", "Result",
           "SandboxFailure",
           "decode_event", "finished", "parse_channel", "parse_message", "ready"]
