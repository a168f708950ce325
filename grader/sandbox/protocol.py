"""The protocol between the trusted parent and a job's child, typed: every wire message parsed once, here.

The child's channel (channel.py: bytes → validated plain dicts) carries the messages of messages.py (hello,
load_error, result, phase, done), each read back by its own `from_wire`; the worker adds its account of how
the child ended (the `finished` event) and, once, its `ready` event. This module turns them into frozen
dataclasses; no other module reads a raw wire dict. A message is the child's word, so every field is coerced to
its type (a hostile child may send anything): what breaks the channel's rules is a ChannelError, which makes
the outcome's `channel_error` (status `rejected`).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from grader.sandbox.channel import ChannelError, decode
from grader.sandbox.control import Finished, Ready, WireError, parse_event
from grader.sandbox.messages import (
    COUNTERFACTUAL,
    MESSAGES,
    ChildError,
    Done,
    Hello,
    LoadError,
    Message,
    Phase,
    Result,
)

OUTPUT_CAP_BYTES = 64 * 1024  # what we keep of a submission's prints


class SandboxFailure(RuntimeError):
    """The worker itself failed (not the submission): it died, hung, or spoke nonsense."""


def parse_message(raw: dict[str, Any]) -> Message:
    """One decoded channel message (its type already one of messages.MESSAGES) as its dataclass."""
    kind = MESSAGES.get(raw["type"]) if isinstance(raw.get("type"), str) else None
    if kind is None:
        raise ChannelError(f"unknown message type {str(raw['type'])[:40]!r}")
    return kind.from_wire(raw)


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
    return _outcome(finished(event), raw, bool(event.get("overflow")), visible, hidden_output)


def _outcome(event: Finished, raw: bytes, overflow: bool, visible: tuple[bytes, int],
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
        exit_code=event.exit_code,
        signal=event.signal,
        timed_out=event.timed_out,
        memory_exceeded=event.memory_exceeded,
        overflow=overflow,
        output=decode_capped(*visible),
        duration_s=event.duration_s,
        peak_rss_mib=event.peak_rss_mib,
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
    try:
        parsed = parse_event(event)
    except WireError:
        parsed = None
    if not isinstance(parsed, Ready):
        raise SandboxFailure("the grading worker did not start")
    return event


def finished(event: Any) -> Finished:
    """The worker's account of one job (exit status, signal, limits), for decode_event. SandboxFailure
    otherwise."""
    try:
        parsed = parse_event(event)
    except WireError:
        parsed = None
    if not isinstance(parsed, Finished):
        raise SandboxFailure(f"the grading worker answered {str(event)[:80]!r}")
    return parsed


__all__ = ["COUNTERFACTUAL", "ChildError", "Done", "Finished", "Hello", "LoadError", "Message", "Outcome", "Phase",
           "Ready", "Result", "SandboxFailure", "decode_event", "finished", "parse_channel", "parse_message", "ready"]
