"""The zygote's own protocol, typed: what the parent tells a worker, what the worker answers, what a spare is handed.

The parent (client.py) sends commands over the worker's socket: `Config` once, then per job a `JobControl` (with
the job's three descriptors) and, when the job's channel overflows, `Stop`. The worker (zygote.py) answers on
its stdout, one JSON line per event: `Ready` once, then `Finished` (or `Refused`) per job. A spare child
(spare.py) is handed its job's `ChildSetup`, which is also what a freshly forked child starts from. Each side
writes `to_wire()` and reads `from_wire()`; COMMANDS and EVENTS are the one list of types each way.

An event is read in the trusted process, possibly after a trip from another grading machine (execution/cluster.py),
so `from_wire` coerces every field to its type: what is not of it reads as absent, never as a crash.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from grader.model.job import Limits


class WireError(ValueError):
    """A command or event that is not one of this protocol's."""


# ---- the parent's commands (over the worker's socket)

@dataclass(frozen=True)
class Config:
    """The worker's first command: what to import, and which sandbox to prepare."""

    TYPE: ClassVar[str] = "config"
    framework: str
    want_cuda: bool = False
    sandbox: str = "auto"
    cgroups: bool = True

    def to_wire(self) -> dict[str, Any]:
        return {"command": self.TYPE, "framework": self.framework, "want_cuda": self.want_cuda,
                "sandbox": self.sandbox, "cgroups": self.cgroups}

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> Config:
        return cls(str(raw.get("framework", "")), raw.get("want_cuda") is True, str(raw.get("sandbox", "auto")),
                   raw.get("cgroups", True) is not False)


@dataclass(frozen=True)
class JobControl:
    """A job, as the worker sees it: its id and limits, nothing of the submission (its descriptors come along)."""

    TYPE: ClassVar[str] = "job"
    job_id: str
    limits: Limits

    def to_wire(self) -> dict[str, Any]:
        return {"command": self.TYPE, "job_id": self.job_id, "limits": self.limits.as_job()}

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> JobControl:
        return cls(str(raw.get("job_id", "")), Limits.from_wire(raw.get("limits")))


@dataclass(frozen=True)
class Stop:
    """Stop the running job now (its channel is past its cap); one that comes after its job is ignored."""

    TYPE: ClassVar[str] = "stop"

    def to_wire(self) -> dict[str, Any]:
        return {"command": self.TYPE}

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> Stop:
        return cls()


Command = Config | JobControl | Stop
COMMANDS: dict[str, type[Config] | type[JobControl] | type[Stop]] = {
    kind.TYPE: kind for kind in (Config, JobControl, Stop)}


def parse_command(raw: Any) -> Command:
    """A decoded command as its dataclass; WireError for anything else."""
    kind = COMMANDS.get(raw.get("command")) if isinstance(raw, dict) and isinstance(raw.get("command"), str) \
        else None
    if kind is None:
        raise WireError(f"not a command: {str(raw)[:80]!r}")
    return kind.from_wire(raw)


# ---- the worker's events (one JSON line each on its stdout)

@dataclass(frozen=True)
class Ready:
    """What a worker found where it runs (its `ready` event, ZygoteClient.info()): torch, CUDA, its sandbox plan."""

    TYPE: ClassVar[str] = "ready"
    torch: str | None
    cuda: bool
    sandbox: dict[str, Any]  # the plan every job of the worker runs under: tier, defences, notes, cgroups
    pid: int | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"event": self.TYPE, "pid": self.pid, "torch": self.torch, "cuda": self.cuda, "sandbox": self.sandbox}

    @classmethod
    def from_wire(cls, info: Any) -> Ready:
        info = info if isinstance(info, dict) else {}
        sandbox = info.get("sandbox")
        return cls(_str_or_none(info.get("torch")), info.get("cuda") is True,
                   dict(sandbox) if isinstance(sandbox, dict) else {}, _int_or_none(info.get("pid")))

    @property
    def tier(self) -> str:
        return str(self.sandbox.get("tier", "unknown"))

    @property
    def notes(self) -> list[str]:
        notes = self.sandbox.get("notes")
        return [str(n) for n in notes] if isinstance(notes, list) else []


@dataclass(frozen=True)
class Finished:
    """The worker's account of how one job's child ended (it never saw the job or its results)."""

    TYPE: ClassVar[str] = "finished"
    job_id: str = ""
    exit_code: int | None = None
    signal: int | None = None
    timed_out: bool = False
    memory_exceeded: bool = False
    stopped: bool = False  # the parent asked for the job to be stopped (or has gone)
    peak_rss_mib: float = 0.0
    duration_s: float = 0.0

    def to_wire(self) -> dict[str, Any]:
        return {"event": self.TYPE, "job_id": self.job_id, "exit_code": self.exit_code, "signal": self.signal,
                "timed_out": self.timed_out, "memory_exceeded": self.memory_exceeded, "stopped": self.stopped,
                "peak_rss_mib": self.peak_rss_mib, "duration_s": self.duration_s}

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> Finished:
        return cls(job_id=str(raw.get("job_id", "")), exit_code=_int_or_none(raw.get("exit_code")),
                   signal=_int_or_none(raw.get("signal")), timed_out=bool(raw.get("timed_out")),
                   memory_exceeded=bool(raw.get("memory_exceeded")), stopped=bool(raw.get("stopped")),
                   peak_rss_mib=_finite(raw.get("peak_rss_mib")), duration_s=_finite(raw.get("duration_s")))


@dataclass(frozen=True)
class Refused:
    """A job command that came without its three descriptors: nothing was run."""

    TYPE: ClassVar[str] = "refused"
    job_id: str = ""

    def to_wire(self) -> dict[str, Any]:
        return {"event": self.TYPE, "job_id": self.job_id}

    @classmethod
    def from_wire(cls, raw: dict[str, Any]) -> Refused:
        return cls(str(raw.get("job_id", "")))


Event = Ready | Finished | Refused
EVENTS: dict[str, type[Ready] | type[Finished] | type[Refused]] = {
    kind.TYPE: kind for kind in (Ready, Finished, Refused)}


def parse_event(raw: Any) -> Event:
    """A decoded event line as its dataclass; WireError for anything else."""
    kind = EVENTS.get(raw.get("event")) if isinstance(raw, dict) and isinstance(raw.get("event"), str) else None
    if kind is None:
        raise WireError(f"not an event: {str(raw)[:80]!r}")
    return kind.from_wire(raw)


# ---- what a job's child starts from (a spare is handed it over its socket)

@dataclass(frozen=True)
class ChildSetup:
    """A job's child's limits and cgroups; `joined`: it is already in them (a spare joined before its job came)."""

    limits: Limits
    cgroups: dict[str, str] = field(default_factory=dict)  # controller -> the job's cgroup directory
    joined: bool = False

    def to_wire(self) -> dict[str, Any]:
        return {"limits": self.limits.as_job(), "cgroups": dict(self.cgroups), "joined": self.joined}

    @classmethod
    def from_wire(cls, raw: Any) -> ChildSetup:
        if not isinstance(raw, dict) or not isinstance(raw.get("cgroups", {}), dict):
            raise WireError("not a child's setup")
        return cls(Limits.from_wire(raw.get("limits")), {str(k): str(v) for k, v in raw.get("cgroups", {}).items()},
                   raw.get("joined") is True)


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _finite(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value) else 0.0
