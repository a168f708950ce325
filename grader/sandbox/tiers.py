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

from enum import StrEnum


class Tier(StrEnum):
    NONE = "none"
    PROCESS = "process"
    NAMESPACES = "namespaces"
    # Not tiers a job runs at: what a report or a worker's answer says instead.
    NOT_RUN = "not-run"  # the submission never reached a worker
    FAILED = "failed"  # the grader's worker broke: the grader's fault, not the submission's
    UNKNOWN = "unknown"  # a worker that did not say
    UNAVAILABLE = "unavailable"  # a grading machine whose worker cannot start


TIERS = (Tier.NONE, Tier.PROCESS, Tier.NAMESPACES)  # the tiers a job runs at, weakest first


def rank(tier: str) -> int:
    """0 for the weakest tier upwards; -1 for anything that is no tier a job runs at (unknown, unavailable)."""
    return TIERS.index(Tier(tier)) if tier in TIERS else -1


def at_least(tier: str, wanted: str) -> bool:
    """Whether `tier` is a real tier no weaker than `wanted`."""
    return tier in TIERS and rank(tier) >= rank(wanted)
