"""The sandbox tiers, as the reports name them (`"sandbox": {"tier": ...}`), and their order.

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
"""

from __future__ import annotations

import os
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


TIERS = (Tier.NONE, Tier.PROCESS, Tier.NAMESPACES)  # the tiers a job runs at, weakest first


def rank(tier: str) -> int:
    """0 for the weakest tier upwards; -1 for anything that is no tier a job runs at (unknown, unavailable)."""
    return TIERS.index(Tier(tier)) if tier in TIERS else -1


def at_least(tier: str, wanted: str) -> bool:
    """Whether `tier` is a real tier no weaker than `wanted`."""
    return tier in TIERS and rank(tier) >= rank(wanted)


# The plan: which tier a zygote's jobs get, decided once by plan.prepare() (it lives here, beside the tiers, so
# that namespaces.py can take one without importing the module that builds it).
PROBED = ("auto", "namespaces", "userns")  # the requests for which the namespaces tier is tried


@dataclass(frozen=True)
class Plan:
    """How this zygote's jobs are isolated. The defaults are what a zygote that never prepared runs at."""

    requested: str = "auto"
    tier: Tier = Tier.PROCESS
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
