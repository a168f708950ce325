"""Cgroup v1 memory and pids controllers, where they are delegated: one cgroup per zygote, one per job below it."""

from __future__ import annotations

import contextlib
import os
from typing import Any

from grader.sandbox.rlimits import PROCESSES
from grader.sandbox.syscalls import write_file


def _cgroup_v1_dir(controller: str) -> str | None:
    """This process's own cgroup v1 directory for `controller`, if we may create children in it."""
    try:
        with open("/proc/self/cgroup", encoding="ascii") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            directory = os.path.join("/sys/fs/cgroup", controller) + path
            if os.path.isdir(directory) and os.access(directory, os.W_OK):
                return directory
    return None


def zygote_cgroups() -> dict[str, str]:
    """One cgroup per controller for this zygote (jobs get sub-cgroups); empty where not delegated."""
    made = {}
    for controller, probe_file in (("memory", "memory.limit_in_bytes"), ("pids", "pids.max")):
        parent = _cgroup_v1_dir(controller)
        if parent is None:
            continue
        _remove_stale_cgroups(parent)
        directory = os.path.join(parent, f"grader-{os.getpid()}")
        try:
            os.makedirs(directory, exist_ok=True)
            if os.path.exists(os.path.join(directory, probe_file)):
                made[controller] = directory
            else:
                os.rmdir(directory)
        except OSError:
            continue
    return made


def _remove_stale_cgroups(parent: str) -> None:
    """Cgroups left by zygotes that were killed before they could clean up."""
    try:
        names = [n for n in os.listdir(parent) if n.startswith("grader-") and n[7:].isdigit()]
    except OSError:
        return
    for name in names:
        if not os.path.exists(f"/proc/{name[7:]}"):
            remove_cgroup(os.path.join(parent, name))


def remove_cgroup(directory: str) -> None:
    for sub in sorted((e.path for e in os.scandir(directory) if e.is_dir()), reverse=True) \
            if os.path.isdir(directory) else []:
        remove_cgroup(sub)
    with contextlib.suppress(OSError):
        os.rmdir(directory)


def job_cgroups(zygote: dict[str, str], job_id: str, limits: dict[str, Any] | None = None,
                prefix: str = "job-") -> dict[str, str]:
    """Create a job's cgroups below the zygote's (in the zygote, before forking), with its limits where they
    are known already (a spare child's get theirs from `limit` when its job arrives)."""
    made = {}
    for controller, base in zygote.items():
        directory = os.path.join(base, f"{prefix}{job_id}")
        try:
            os.mkdir(directory)
            made[controller] = directory
        except OSError:
            remove_cgroup(directory)
    return made if limits is None else limit(made, limits)


def limit(cgroups: dict[str, str], limits: dict[str, Any]) -> dict[str, str]:
    """Write a job's limits into its cgroups; what comes back are those that took them (any other is
    removed, and its limit falls back to the rlimits and the RSS watchdog)."""
    kept = {}
    for controller, directory in cgroups.items():
        try:
            if controller == "memory":
                value = str(int(limits["memory_mib"]) * 1024 * 1024)
                write_file(os.path.join(directory, "memory.limit_in_bytes"), value)
                swap = os.path.join(directory, "memory.memsw.limit_in_bytes")
                if os.path.exists(swap):
                    write_file(swap, value)  # no swapping our way past the limit
            else:
                write_file(os.path.join(directory, "pids.max"), str(int(limits.get("processes", PROCESSES))))
            kept[controller] = directory
        except OSError:
            remove_cgroup(directory)
    return kept


def join(cgroups: dict[str, str]) -> None:
    """Move this process into the job's cgroups (in the forked child, before anything else). On cgroup v1
    this waits for an RCU grace period (about 10 ms) unless another move came just before: a spare child
    does it before its job arrives."""
    for directory in cgroups.values():
        write_file(os.path.join(directory, "cgroup.procs"), str(os.getpid()))


def cgroup_pids(cgroups: dict[str, str]) -> list[int]:
    for directory in cgroups.values():
        try:
            with open(os.path.join(directory, "cgroup.procs"), encoding="ascii") as handle:
                return [int(line) for line in handle if line.strip()]
        except OSError:
            continue
    return []


def cgroup_memory(cgroups: dict[str, str]) -> tuple[float, bool]:
    """(peak MiB, whether the kernel had to kill for memory) for a job's memory cgroup."""
    directory = cgroups.get("memory")
    if directory is None:
        return 0.0, False
    try:
        with open(os.path.join(directory, "memory.max_usage_in_bytes"), encoding="ascii") as handle:
            peak = int(handle.read()) / (1024 * 1024)
        with open(os.path.join(directory, "memory.oom_control"), encoding="ascii") as handle:
            fields = dict(line.split() for line in handle if line.strip())
        with open(os.path.join(directory, "memory.failcnt"), encoding="ascii") as handle:
            failcnt = int(handle.read())
    except (OSError, ValueError):
        return 0.0, False
    return peak, int(fields.get("oom_kill", "0")) > 0 or (failcnt > 0 and "oom_kill" not in fields)
