"""The sandbox plan: what every job of one zygote gets, decided once by trying the strongest tier in a trial child.

`prepare()` runs once in the zygote, before any job: it finds the strongest registered tier (tiers.py,
tier_builtins.py) this machine offers by trying each (the namespaces tier is built in a throw-away child), and
creates the zygote's cgroups where they are delegated. The Plan it returns is passed to every step of a job;
`as_dict()` is what the worker reports.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from dataclasses import replace

from grader.sandbox import cgroups as cgroup_files, tiers
from grader.sandbox.tiers import Plan, Tier  # Plan lives beside the tiers; plan.Plan still names it


def prepare(requested: str = "auto", cgroups: bool = True) -> Plan:
    """Once per zygote, before any job: decide the tier by trying it, and set up cgroups.

    The registered tiers (tiers.entries) that answer `requested` are tried strongest first; the first that
    can be had is the plan's. `cgroups=False` leaves them out even where delegated (tests of the fallbacks a
    non-root grader gets).
    """
    plan = Plan(requested=requested, root=hasattr(os, "geteuid") and os.geteuid() == 0, worker_pid=os.getpid(),
                bubblewrap=shutil.which("bwrap"))
    if not sys.platform.startswith("linux"):
        why = (f"no sandbox on {platform.system()}: only rlimits, a fresh directory and a scrubbed environment; "
               "do not grade untrusted work here")
        return replace(plan, linux=False, tier=Tier.NONE, notes=(why,))
    notes: list[str] = []
    plan = replace(plan, cgroups=cgroup_files.zygote_cgroups() if tiers.wants_cgroups(requested) and cgroups else {})
    if cgroups and not plan.cgroups and os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        notes.append("cgroup v2 is not used (only delegated v1 controllers are): memory is watched by "
                     "the RSS watchdog and processes capped by RLIMIT_NPROC")
    for entry in tiers.entries():
        if requested in entry.requests:
            found = entry.attempt(plan, notes)
            if found is not None:
                return replace(found, tier=entry.name, notes=tuple(notes))
    raise ValueError(f"no sandbox tier answers the request {requested!r} (the tiers: {', '.join(tiers.names())})")
