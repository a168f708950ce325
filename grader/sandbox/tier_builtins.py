"""The tiers this grader ships, registered (tiers.register): namespaces, process and none, strongest first.

Each entry says which `--sandbox` requests try it, how the zygote tries it once (`attempt`: the namespaces tier
is built in a throw-away child), how each job's child enters it (`isolate`) and what `grade doctor` says each
defence relies on at it. plan.prepare, isolation.enter, the doctor and the client read only the registry. A new
tier is one more `register(TierEntry(...))`, here or in a module of its own imported below.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import replace
from typing import Any

from grader.sandbox.namespaces import become, enter_namespaces, fork_job, open_pid_ns, sandbox_uid
from grader.sandbox.rlimits import PROCESSES, apply_rlimits
from grader.sandbox.rootfs import SANDBOX_HOME, python_paths, world_readable
from grader.sandbox.syscalls import PR_SET_NO_NEW_PRIVS, prctl
from grader.sandbox.tiers import PROBED, DoctorLines, Entered, Plan, Tier, TierEntry, register

NAMESPACE_DEFENCES = ("pid-namespace", "mount-namespace", "private-filesystem", "network-namespace",
                      "ipc-namespace", "no-capabilities", "no-new-privs")


# ---- namespaces

def _attempt_namespaces(plan: Plan, notes: list[str]) -> Plan | None:
    """Try the namespaces tier: as root without a user namespace first, then through one; None if neither."""
    userns = plan.requested == "userns" or not plan.root
    trial = replace(plan, tier=Tier.NAMESPACES, userns=userns, pid_ns_fd=None if userns else open_pid_ns())
    failure = _try_namespaces(trial)
    if failure is not None and trial.pid_ns_fd is not None:
        os.close(trial.pid_ns_fd)
        trial = replace(trial, pid_ns_fd=None)
        failure = _try_namespaces(trial)
    if failure is not None:
        notes.append(f"namespaces unavailable: {failure}")
        if plan.requested not in ("auto", "namespaces") or trial.userns:
            return None
        trial = replace(trial, userns=True)
        if _try_namespaces(trial) is not None:
            return None
    own_uid = plan.root and not trial.userns
    return replace(trial, student_uid=sandbox_uid(trial) if own_uid else None)


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


def _isolate_namespaces(plan: Plan, limits: dict[str, Any], workdir: str) -> Entered:
    enter_namespaces(plan, workdir, limits, nproc=True)
    return Entered(SANDBOX_HOME, (*NAMESPACE_DEFENCES, "user-namespace" if plan.userns else "unprivileged-uid"),
                   {"TMPDIR": "/tmp"})


def _doctor_namespaces(plan: dict[str, Any], uid_note: str) -> DoctorLines:
    return DoctorLines(
        network="network namespace (no interfaces up)",
        filesystem="mount namespace: tmpfs root, system and Python read-only, fresh /tmp",
        signalling="PID namespace (the grader has no pid inside) and " + uid_note,
        privileges="no capabilities, no_new_privs, " + uid_note,
        timeout=", and the PID namespace dies with its PID 1")


# ---- process and none: the child stays where it is, limited in place

def _attempt_process(plan: Plan, notes: list[str]) -> Plan:
    """Always there: as root, a uid of its own; else RLIMIT_NPROC on top of what our uid already runs."""
    # Never leave a submission as uid 0, even without capabilities: kill(-1) would reach every root process.
    plan = replace(plan, tier=Tier.PROCESS, drop_uid=plan.root)
    hidden = [p for p in python_paths() if not world_readable(p)]
    if plan.drop_uid and hidden:
        notes.append(f"Python lives where an unprivileged uid cannot read it ({hidden[0]}): at the "
                     "process tier, modules the worker has not imported yet cannot be imported")
    if plan.drop_uid:
        return replace(plan, student_uid=sandbox_uid(plan))
    return replace(plan, user_tasks=_tasks_of(os.getuid()))


def _attempt_none(plan: Plan, notes: list[str]) -> Plan:
    return replace(plan, tier=Tier.NONE)


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


def _isolate_in_place(plan: Plan, limits: dict[str, Any], workdir: str) -> Entered:
    """The process and none tiers: a uid of its own (as root), no_new_privs, rlimits. The defences added."""
    os.chdir(workdir)
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
    return Entered(workdir, tuple(defences))


def _doctor_in_place(plan: dict[str, Any], uid_note: str) -> DoctorLines:
    own = bool(plan.get("drop_uid"))
    return DoctorLines(
        network="NOT DEFENDED at this tier",
        filesystem="file permissions only (a uid of its own)" if own else "NOT DEFENDED",
        signalling=uid_note if own else "NOT DEFENDED (same uid)",
        privileges="a uid of its own, no_new_privs" if own else "the grader's own uid")


register(TierEntry(
    name=Tier.NAMESPACES, strength=2, requests=PROBED, insisted_by=("namespaces", "userns"),
    needs="Linux with user namespaces enabled, or root", attempt=_attempt_namespaces,
    isolate=_isolate_namespaces, doctor=_doctor_namespaces, private_filesystem=True))
register(TierEntry(
    name=Tier.PROCESS, strength=1, requests=(*PROBED, "process"), needs="Linux",
    attempt=_attempt_process, isolate=_isolate_in_place, doctor=_doctor_in_place))
register(TierEntry(
    name=Tier.NONE, strength=0, requests=("none",), needs="nothing", attempt=_attempt_none,
    isolate=_isolate_in_place, doctor=_doctor_in_place, seccomp=False, cgroups=False))
