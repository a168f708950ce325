"""The process tree below a zygote: finding every descendant, their resident memory, and killing them all.

The zygote is a child subreaper, so whatever a job's child forks (and orphans) stays below it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

from grader.sandbox.cgroups import cgroup_pids
from grader.sandbox.syscalls import PR_SET_PDEATHSIG, prctl

KILL_PATIENCE_S = 30.0


def descendants(root: int) -> list[int]:
    """Every live process below `root` (children before grandchildren).

    Follows /proc/<pid>/task/<tid>/children, which costs one read per process in the tree instead of a scan
    of the whole machine; falls back to the full /proc scan where the kernel lacks those files.
    """
    if not os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children"):
        return descendants_by_scan(root)
    found: list[int] = []
    frontier = [root]
    seen = {root}
    while frontier:
        parent = frontier.pop()
        for child in _children(parent):
            if child not in seen:
                seen.add(child)
                found.append(child)
                frontier.append(child)
    return found


def _children(pid: int) -> list[int]:
    children: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return children
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as handle:
                children.extend(int(x) for x in handle.read().split())
        except (OSError, ValueError):
            continue
    return children


def descendants_by_scan(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for name in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        parents[int(name)] = int(fields[1])
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found.extend(children)
        frontier.extend(children)
    return found


def die_with_parent(parent: int) -> None:
    """SIGTERM when our parent (or the thread that started us) ends, through PR_SET_PDEATHSIG; if `parent`
    is gone already, exit now. Without prctl (not Linux) the caller's other watches must notice."""
    with contextlib.suppress(OSError, AttributeError):
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os._exit(0)


def name_of(pid: int) -> str:
    """A process's name (its /proc comm: a spare child is `grader-spare`); "" where it is gone or unknown."""
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8") as comm:
            return comm.read().strip()
    except OSError:
        return ""


def rss_mib(pids: list[int], baseline_mib: float = 0.0) -> float:
    """Resident memory of `pids`, each counted beyond `baseline_mib`.

    A forked child starts out sharing the worker's resident pages (torch, NumPy): counting them in every
    process would charge a submission for the worker's imports, once per process. With the worker's own
    resident size as the baseline, what is counted is roughly what the submission added, as a memory cgroup
    would charge it.
    """
    total_kib = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status", "rb") as handle:
                for line in handle:
                    if line.startswith(b"VmRSS:"):
                        total_kib += max(0.0, int(line.split()[1]) - baseline_mib * 1024)
                        break
        except (OSError, ValueError):
            continue
    return total_kib / 1024


def kill_tree(grace_s: float = 0.2, cgroups: dict[str, str] | None = None, group: int | None = None) -> None:
    """SIGTERM every descendant, then SIGKILL whatever is left, until nothing is left.

    As a child subreaper we inherit orphans, so a grandchild that called setsid() is still ours; a job's
    cgroups list its processes too, wherever they went. Stopping before killing keeps a fork bomb from
    outrunning the scan.
    """
    me = os.getpid()

    def alive() -> list[int]:
        return sorted(set(descendants(me)) | set(cgroup_pids(cgroups or {})) - {me})

    if group is not None:  # the job's session: all there is to find where there is no /proc (macOS)
        _signal_group(group, signal.SIGTERM)
    pids = alive()
    if not pids and not _group_alive(group):
        _reap()
        return
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while (pids or _group_alive(group)) and time.monotonic() < deadline:
        _reap()
        time.sleep(0.01)
        pids = alive()
    # Until every one is gone, zombies included: a process stuck in the kernel (a fork copying a large
    # address space) takes its SIGKILL when it comes back, and must not outlive the job.
    give_up = time.monotonic() + KILL_PATIENCE_S
    while (pids or _group_alive(group)) and time.monotonic() < give_up:
        for pid in pids:
            _signal(pid, signal.SIGSTOP)
        for pid in pids:
            _signal(pid, signal.SIGKILL)
        if group is not None:
            _signal_group(group, signal.SIGKILL)
        _reap()
        time.sleep(0.005)
        pids = alive()
    _reap()


def _group_alive(group: int | None) -> bool:
    if group is None:
        return False
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _signal_group(group: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, sig)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
