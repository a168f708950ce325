"""Closing the doors in a forked child before student code runs, at the tier its zygote's Plan decided.

`enter()` runs in each forked child and returns what it achieved (the tier and the defences), which every
report records. The pieces live one to a module: the tiers (tiers.py), the plan and its trial (plan.py),
system calls (syscalls.py), rlimits and the environment (rlimits.py), cgroups (cgroups.py), the filesystem
view (rootfs.py), namespaces and uids (namespaces.py) and the seccomp filter (seccomp.py).
"""

from __future__ import annotations

import os
import signal
from typing import Any

from grader.sandbox import cgroups as cgroup_files
from grader.sandbox.control import ChildSetup
from grader.sandbox.namespaces import become, enter_namespaces, sandbox_uid
from grader.sandbox.plan import Plan
from grader.sandbox.rlimits import PROCESSES, apply_rlimits, scrubbed_environment
from grader.sandbox.rootfs import SANDBOX_HOME
from grader.sandbox.seccomp import install_seccomp
from grader.sandbox.syscalls import PR_SET_NO_NEW_PRIVS, prctl
from grader.sandbox.tiers import Tier

BASE_DEFENCES = ("rlimits", "scrubbed-env", "process-tree-kill", "output-cap", "channel-validation")
NAMESPACE_DEFENCES = ("pid-namespace", "mount-namespace", "private-filesystem", "network-namespace",
                      "ipc-namespace", "no-capabilities", "no-new-privs")


def enter(plan: Plan, setup: ChildSetup, workdir: str) -> dict[str, Any]:
    """Isolate this (forked, single-threaded) child. Returns what was achieved, for the report."""
    tier = plan.tier
    cgroups = setup.cgroups
    limits = setup.limits.as_job()
    if not setup.joined:  # a spare child joined before its job came
        cgroup_files.join(cgroups)
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the file limit fails instead of killing
    defences = list(BASE_DEFENCES)
    if tier == Tier.NAMESPACES:
        enter_namespaces(plan, workdir, limits, nproc=True)
        home = SANDBOX_HOME
        defences += [*NAMESPACE_DEFENCES, "user-namespace" if plan.userns else "unprivileged-uid"]
    else:
        os.chdir(workdir)
        home = workdir
        defences += _limit_in_place(plan, limits)
    if tier != Tier.NONE and plan.seccomp:
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        if install_seccomp():
            defences.append("seccomp")
    os.environ.clear()
    os.environ.update(scrubbed_environment(home))
    if tier == Tier.NAMESPACES:
        os.environ["TMPDIR"] = "/tmp"
    defences += [f"{c}-cgroup" for c in sorted(cgroups)]
    return {"tier": tier, "uid": str(os.getuid()), "defences": defences,
            "memory": "cgroup" if "memory" in cgroups else "rss-watchdog",
            "processes": "rlimit-nproc+pids-cgroup" if "pids" in cgroups else "rlimit-nproc"}


def _limit_in_place(plan: Plan, limits: dict[str, Any]) -> list[str]:
    """The process and none tiers: a uid of its own (as root), no_new_privs, rlimits. The defences added."""
    defences = []
    if plan.tier == Tier.PROCESS:
        if plan.drop_uid:
            # A uid of its own, so the student cannot signal the grader or read root's files.
            become(sandbox_uid(plan))
            defences.append("unprivileged-uid")
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        defences.append("no-new-privs")
        if not plan.drop_uid:
            # Our uid's processes count too: allow the submission PROCESSES more than the user already runs.
            limits = {**limits, "processes": (plan.user_tasks or 0) + int(limits.get("processes", PROCESSES))}
    apply_rlimits(limits, processes=plan.tier == Tier.PROCESS)
    return defences
