"""Closing the doors in a forked child before student code runs, at the tier its zygote's Plan decided.

`enter()` runs in each forked child, enters the tier its registered entry (tier_builtins.py) describes, and
returns what it achieved (the tier and the defences), which every report records. The pieces live one to a
module: the tiers and their registry (tiers.py, tier_builtins.py), the plan (plan.py),
system calls (syscalls.py), rlimits and the environment (rlimits.py), cgroups (cgroups.py), the filesystem
view (rootfs.py), namespaces and uids (namespaces.py) and the seccomp filter (seccomp.py).
"""

from __future__ import annotations

import os
import signal
from typing import Any

from grader.sandbox import cgroups as cgroup_files, tiers
from grader.sandbox.control import ChildSetup
from grader.sandbox.plan import Plan
from grader.sandbox.rlimits import scrubbed_environment
from grader.sandbox.seccomp import install_seccomp
from grader.sandbox.syscalls import PR_SET_NO_NEW_PRIVS, prctl

BASE_DEFENCES = ("rlimits", "scrubbed-env", "process-tree-kill", "output-cap", "channel-validation")


def enter(plan: Plan, setup: ChildSetup, workdir: str) -> dict[str, Any]:
    """Isolate this (forked, single-threaded) child at its plan's tier (its registered TierEntry). Returns what
    was achieved, for the report."""
    entry = tiers.lookup(plan.tier)
    if entry is None:
        raise ValueError(f"no sandbox tier {plan.tier!r} is registered")
    cgroups = setup.cgroups
    if not setup.joined:  # a spare child joined before its job came
        cgroup_files.join(cgroups)
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the file limit fails instead of killing
    entered = entry.isolate(plan, setup.limits.as_job(), workdir)
    defences = [*BASE_DEFENCES, *entered.defences]
    if entry.seccomp and plan.seccomp:
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        if install_seccomp():
            defences.append("seccomp")
    os.environ.clear()
    os.environ.update(scrubbed_environment(entered.home))
    os.environ.update(entered.environment)
    defences += [f"{c}-cgroup" for c in sorted(cgroups)]
    return {"tier": plan.tier, "uid": str(os.getuid()), "defences": defences,
            "memory": "cgroup" if "memory" in cgroups else "rss-watchdog",
            "processes": "rlimit-nproc+pids-cgroup" if "pids" in cgroups else "rlimit-nproc"}
