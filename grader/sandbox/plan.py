"""The sandbox plan: what every job of one zygote gets, decided once by trying the strongest tier in a trial child.

`prepare()` runs once in the zygote, before any job: it finds the strongest tier (tiers.py) this machine
offers by actually building it in a throw-away child, and creates the zygote's cgroups where they are
delegated. The Plan it returns is passed to every step of a job; `as_dict()` is what the worker reports.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import replace

from grader.sandbox import cgroups as cgroup_files
from grader.sandbox.namespaces import enter_namespaces, fork_job, open_pid_ns, sandbox_uid
from grader.sandbox.rootfs import SANDBOX_HOME, python_paths, world_readable
from grader.sandbox.tiers import PROBED, Plan, Tier  # Plan lives beside the tiers; plan.Plan still names it


def prepare(requested: str = "auto", cgroups: bool = True) -> Plan:
    """Once per zygote, before any job: decide the tier by trying it, and set up cgroups.

    `cgroups=False` leaves them out even where delegated (tests of the fallbacks a non-root grader gets).
    """
    plan = Plan(requested=requested, root=hasattr(os, "geteuid") and os.geteuid() == 0, worker_pid=os.getpid(),
                bubblewrap=shutil.which("bwrap"))
    if not sys.platform.startswith("linux"):
        why = (f"no sandbox on {platform.system()}: only rlimits, a fresh directory and a scrubbed environment; "
               "do not grade untrusted work here")
        return replace(plan, linux=False, tier=Tier.NONE, notes=(why,))
    notes: list[str] = []
    plan = replace(plan, cgroups=cgroup_files.zygote_cgroups() if requested != "none" and cgroups else {})
    if cgroups and not plan.cgroups and os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        notes.append("cgroup v2 is not used (only delegated v1 controllers are): memory is watched by "
                     "the RSS watchdog and processes capped by RLIMIT_NPROC")
    tier: Tier | None = None
    if requested in PROBED:
        plan, tier = _probe_namespaces(plan, notes)
    if tier is None:
        tier = Tier.PROCESS if requested != "none" else Tier.NONE
    if tier != Tier.NAMESPACES:
        if plan.pid_ns_fd is not None:
            os.close(plan.pid_ns_fd)
        plan = replace(plan, userns=False, pid_ns_fd=None)
    return _settle_uid(replace(plan, tier=tier), notes)


def _probe_namespaces(plan: Plan, notes: list[str]) -> tuple[Plan, Tier | None]:
    """Try the namespaces tier: as root without a user namespace first, then through one; None if neither."""
    userns = plan.requested == "userns" or not plan.root
    plan = replace(plan, userns=userns, pid_ns_fd=None if userns else open_pid_ns())
    failure = _try_namespaces(plan)
    if failure is not None and plan.pid_ns_fd is not None:
        os.close(plan.pid_ns_fd)
        plan = replace(plan, pid_ns_fd=None)
        failure = _try_namespaces(plan)
    if failure is None:
        return plan, Tier.NAMESPACES
    notes.append(f"namespaces unavailable: {failure}")
    if plan.requested in ("auto", "namespaces") and not plan.userns:
        plan = replace(plan, userns=True)
        if _try_namespaces(plan) is None:
            return plan, Tier.NAMESPACES
    return plan, None


def _settle_uid(plan: Plan, notes: list[str]) -> Plan:
    """Which uid the student runs as, and what the process tier's RLIMIT_NPROC must allow for."""
    # Never leave a submission as uid 0, even without capabilities: kill(-1) would reach every root process.
    drop_uid = plan.tier == Tier.PROCESS and plan.root
    hidden = [p for p in python_paths() if not world_readable(p)]
    if drop_uid and hidden:
        notes.append(f"Python lives where an unprivileged uid cannot read it ({hidden[0]}): at the "
                     "process tier, modules the worker has not imported yet cannot be imported")
    own_uid = plan.root and (plan.tier == Tier.NAMESPACES and not plan.userns or drop_uid)
    plan = replace(plan, drop_uid=drop_uid, notes=tuple(notes),
                   student_uid=sandbox_uid(plan) if own_uid else None)
    if plan.tier == Tier.PROCESS and not drop_uid:
        plan = replace(plan, user_tasks=_tasks_of(os.getuid()))
    return plan


def _tasks_of(uid: int) -> int:
    """How many tasks (threads included, as RLIMIT_NPROC counts them) `uid` runs now."""
    count = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", "rb") as handle:
                fields = dict(line.split(b":", 1) for line in handle if b":" in line)
            if int(fields[b"Uid"].split()[1]) == uid:
                count += int(fields[b"Threads"])
        except (OSError, KeyError, ValueError, IndexError):
            continue
    return count


def _try_namespaces(plan: Plan) -> str | None:
    """Build the whole namespaces sandbox in a throw-away child; None when it worked, else why not."""
    scratch = tempfile.mkdtemp(prefix="grader-probe-")
    os.chmod(scratch, 0o755)
    report_read, report_write = os.pipe()
    try:
        pid = fork_job(plan)
    except OSError as exc:
        os.close(report_read)
        os.close(report_write)
        shutil.rmtree(scratch, ignore_errors=True)
        return str(exc)
    if pid == 0:
        _trial_child(plan, scratch, report_read, report_write)
    os.close(report_write)
    status = _wait_for_trial(pid)
    message = os.read(report_read, 600).decode("utf-8", "replace")
    os.close(report_read)
    shutil.rmtree(scratch, ignore_errors=True)
    if status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        return None
    return message or f"the trial sandbox exited with status {status}"


def _trial_child(plan: Plan, scratch: str, report_read: int, report_write: int) -> None:
    """In the trial child: build the sandbox, say why not on `report_write` if it fails. Never returns."""
    code = 1
    try:
        os.close(report_read)
        os.setsid()
        enter_namespaces(plan, scratch, {"timeout": 5, "memory_mib": 512}, nproc=False, keep_fds=(report_write,))
        code = 0 if os.path.isdir(sys.base_prefix) and os.path.isdir(SANDBOX_HOME) else 3
    except BaseException as exc:  # noqa: BLE001 - report every failure, never escape the fork
        os.write(report_write, str(exc).encode()[:500])
    finally:
        os._exit(code)


def _wait_for_trial(pid: int) -> int | None:
    """The trial child's wait status, or None when it had to be killed after 10 s."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None
