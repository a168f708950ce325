"""The sandbox tiers, as the reports name them (`"sandbox": {"tier": ...}`): their registry, their order, the plan.

Tiers, weakest to strongest:
- "none": not Linux (or asked for); a fresh working directory, a scrubbed environment and rlimits.
- "process": rlimits, a scrubbed environment, the process tree killed by the zygote, a seccomp filter,
  no_new_privs, and, when the grader runs as root, a uid of its own. The filesystem and the network stay
  as file permissions and the host leave them.
- "namespaces": the student runs as PID 1 of new PID, mount, network, IPC and UTS namespaces (plus a user
  namespace when the grader is not root), in a private filesystem view (an empty tmpfs root with the
  system and Python bound read-only, a fresh /tmp, a minimal /dev, its own masked /proc), with no
  capabilities, no_new_privs, the seccomp filter, and a uid of its own when the grader runs as root.
Memory and process counts are capped by cgroups where they are delegated (cgroup v1, as root), else by
the zygote's RSS watchdog and RLIMIT_NPROC.

The other members are what a report or a worker's answer says where no sandbox tier applies; a str enum,
so that JSON carries the same strings as before.

Each tier a job runs at is a `TierEntry` in the registry below: its name and strength, the `--sandbox`
requests that try it, what it needs, how the zygote tries it (plan.prepare), how a job's child enters it
(isolation.enter) and what `grade doctor` says each defence relies on at it. tier_builtins.py registers the
three above; a new tier is one more entry there (or in a module of its own that tier_builtins imports).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from grader.model.report import GRADER_FAILED_TIER


class Tier(StrEnum):
    NONE = "none"
    PROCESS = "process"
    NAMESPACES = "namespaces"
    # Not tiers a job runs at: what a report or a worker's answer says instead.
    NOT_RUN = "not-run"  # the submission never reached a worker
    FAILED = GRADER_FAILED_TIER  # the grader's worker broke: the grader's fault, not the submission's
    UNKNOWN = "unknown"  # a worker that did not say
    UNAVAILABLE = "unavailable"  # a grading machine whose worker cannot start


def rank(tier: str) -> int:
    """0 for the weakest tier upwards; -1 for anything that is no tier a job runs at (unknown, unavailable)."""
    found = names()
    return found.index(tier) if tier in found else -1


def at_least(tier: str, wanted: str) -> bool:
    """Whether `tier` is a real tier no weaker than `wanted`."""
    return tier in names() and rank(tier) >= rank(wanted)


# The plan: which tier a zygote's jobs get, decided once by plan.prepare() (it lives here, beside the tiers, so
# that namespaces.py can take one without importing the module that builds it).
PROBED = ("auto", "namespaces", "userns")  # the requests for which the namespaces tier is tried


@dataclass(frozen=True)
class Plan:
    """How this zygote's jobs are isolated. The defaults are what a zygote that never prepared runs at."""

    requested: str = "auto"
    tier: str = Tier.PROCESS
    root: bool = False  # the grader runs as root
    worker_pid: int = field(default_factory=os.getpid)
    bubblewrap: str | None = None  # where bwrap is (reported only: the sandbox is built without it)
    notes: tuple[str, ...] = ()  # why the tier is below what was asked for, and what that costs
    cgroups: dict[str, str] = field(default_factory=dict)  # controller -> this zygote's cgroup directory
    userns: bool = False  # the namespaces tier enters a user namespace (the grader is not root, or asked)
    pid_ns_fd: int | None = None  # our own PID namespace, to step back into after forking a PID 1
    drop_uid: bool = False  # the process tier, as root: the student gets a uid of its own
    student_uid: int | None = None
    user_tasks: int | None = None  # the tasks our uid already runs (the process tier's RLIMIT_NPROC adds them)
    seccomp: bool = True
    linux: bool = True

    def as_dict(self) -> dict[str, Any]:
        """The plan as the worker reports it (`grade doctor --json`'s "plan"), in the keys' historic order."""
        found: dict[str, Any] = {"requested": self.requested, "root": self.root, "worker_pid": self.worker_pid,
                                 "bubblewrap": self.bubblewrap, "notes": list(self.notes)}
        if not self.linux:
            return {**found, "tier": self.tier}
        found["cgroups"] = dict(self.cgroups)
        namespaces = {"userns": self.userns, "pid_ns_fd": self.pid_ns_fd}
        if self.requested in PROBED:
            found.update(namespaces, tier=self.tier)
        else:
            found.update({"tier": self.tier, **namespaces})
        found["drop_uid"] = self.drop_uid
        if self.student_uid is not None:
            found["student_uid"] = self.student_uid
        if self.user_tasks is not None:
            found["user_tasks"] = self.user_tasks
        return found


# ---- the registry of the tiers a job runs at

@dataclass(frozen=True)
class Entered:
    """What a job's child got from its tier (TierEntry.isolate): its home, the defences, extra environment."""

    home: str
    defences: tuple[str, ...]
    environment: dict[str, str] = field(default_factory=dict)  # set over the scrubbed environment


@dataclass(frozen=True)
class DoctorLines:
    """What the defences that differ between tiers rely on at one tier, as `grade doctor` prints them."""

    network: str
    filesystem: str
    signalling: str  # no signalling the grader
    privileges: str
    timeout: str = ""  # added to the wall-clock timeout's line


@dataclass(frozen=True)
class TierEntry:
    """One sandbox tier a job can run at, with everything the zygote, the child and the doctor need of it."""

    name: str
    strength: int  # its place in the order: a higher one is a stronger tier
    requests: tuple[str, ...]  # the `--sandbox` requests under which it is tried (strongest tier first)
    needs: str  # what a machine needs for it, in words
    # In the zygote, once: the plan at this tier, or None where it cannot be had (with why appended to the notes).
    attempt: Callable[[Plan, list[str]], Plan | None]
    # In the job's forked child (cgroups joined, before any student code): close this tier's doors.
    isolate: Callable[[Plan, dict[str, Any], str], Entered]  # (plan, limits, workdir)
    doctor: Callable[[dict[str, Any], str], DoctorLines]  # (the worker's plan, how the student's uid reads)
    insisted_by: tuple[str, ...] = ()  # the requests that refuse a worker below this tier (ZygoteClient.info)
    seccomp: bool = True  # the seccomp filter and no_new_privs go on at this tier
    cgroups: bool = True  # asking for this tier alone still sets up cgroups where they are delegated
    # the child sees a filesystem of its own (the system and Python, read-only): a folder elsewhere is not there
    private_filesystem: bool = False


_REGISTRY: dict[str, TierEntry] = {}


def register(entry: TierEntry) -> TierEntry:
    """Add (or replace) a tier; every consumer reads the registry when it runs, so it joins by itself."""
    _REGISTRY[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def entries() -> list[TierEntry]:
    """Every registered tier, strongest first."""
    return sorted(_REGISTRY.values(), key=lambda e: -e.strength)


def lookup(tier: str | None) -> TierEntry | None:
    return _REGISTRY.get(str(tier)) if tier is not None else None


def names() -> tuple[str, ...]:
    """The tiers a job runs at, weakest first."""
    return tuple(e.name for e in reversed(entries()))


def choices() -> tuple[str, ...]:
    """The `--sandbox` requests: "auto", then each tier's own requests, strongest tier first."""
    found = ["auto"]
    for entry in entries():
        found += [r for r in entry.requests if r not in found]
    return tuple(found)


def insisted(requested: str) -> TierEntry | None:
    """The tier that `requested` refuses to run below, if any."""
    return next((e for e in entries() if requested in e.insisted_by), None)


def wants_cgroups(requested: str) -> bool:
    return any(e.cgroups for e in entries() if requested in e.requests)
