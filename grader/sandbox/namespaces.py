"""The namespaces tier's child: PID, mount, network, IPC, UTS (and user) namespaces, and the uid it runs as.

`fork_job()` forks a job's child (as root, born PID 1 of a new PID namespace); `enter_namespaces()` then
shuts it in, in its private filesystem view (rootfs.py), without capabilities.
"""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING, Any

from grader.sandbox.rlimits import apply_rlimits
from grader.sandbox.rootfs import SANDBOX_HOME, build_root
from grader.sandbox.syscalls import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    MS_BIND,
    MS_NODEV,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    PR_SET_DUMPABLE,
    PR_SET_NO_NEW_PRIVS,
    PR_SET_PDEATHSIG,
    drop_bounding_set,
    drop_capabilities,
    libc,
    mount,
    pivot_root,
    prctl,
    setns,
    unshare,
    write_file,
)
from grader.sandbox.tiers import Tier

if TYPE_CHECKING:
    from grader.sandbox.tiers import Plan

# When the grader runs as root the student gets a uid of its own: SANDBOX_UID_BASE + the worker's pid, so
# that no other process shares it (RLIMIT_NPROC counts per uid, and fails a fork before it copies memory).
SANDBOX_UID_BASE = 2_000_000_000


def fork_job(plan: Plan) -> int:
    """os.fork() for a job. As root at the namespaces tier the child is born PID 1 of a new PID namespace.

    The worker unshares the PID namespace for its next child, forks, and steps back into its own PID
    namespace for the following job (setns). This saves the intermediate process that a child must
    otherwise fork to get a PID 1 of its own: one fork of a torch-sized process per submission.
    """
    own = plan.pid_ns_fd
    if own is None:
        return os.fork()
    unshare(CLONE_NEWPID)
    try:
        pid = os.fork()
    except BaseException:
        setns(own, CLONE_NEWPID, "setns back to our PID namespace")
        raise
    if pid != 0:
        setns(own, CLONE_NEWPID, "setns back to our PID namespace")
    return pid


def job_has_intermediate(plan: Plan) -> bool:
    """Whether a job's child forks an intermediate (which waits in the tree, and is no part of the student)."""
    return plan.tier == Tier.NAMESPACES and plan.pid_ns_fd is None


def open_pid_ns() -> int | None:
    """Where fork_job() can make PID namespaces itself: as root, without a user namespace."""
    try:
        return os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


def enter_namespaces(plan: Plan, host_dir: str, limits: dict[str, Any], nproc: bool,
                     keep_fds: tuple[int, ...] = ()) -> None:
    """Split into an intermediate (waits, relays the exit status) and the student's PID 1, which returns.

    `host_dir` is an empty directory that becomes the new root (a tmpfs over it, seen only inside).
    """
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the zygote dies: so do we
    _become_pid_1(plan.userns, keep_fds)
    if os.getsid(0) != os.getpid():
        os.setsid()  # kill(0, ...) from the student reaches its own group only
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount propagates back to the host
    build_root(host_dir)
    pivot_root(host_dir)
    mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    libc().sethostname(b"sandbox", 7)
    os.makedirs(SANDBOX_HOME, mode=0o700)
    drop_bounding_set()
    if not plan.userns:
        os.chown(SANDBOX_HOME, sandbox_uid(plan), sandbox_uid(plan))
        become(sandbox_uid(plan))
    drop_capabilities()
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # a uid change clears it
    apply_rlimits(limits, processes=nproc)
    os.chdir(SANDBOX_HOME)


def _become_pid_1(userns: bool, keep_fds: tuple[int, ...]) -> None:
    """Unshare the namespaces; unless fork_job() made us PID 1 already, fork it and relay in the intermediate."""
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    if os.getpid() == 1:  # fork_job() already made us PID 1 of a new PID namespace: no intermediate
        unshare(flags)
        return
    unshare(flags | CLONE_NEWPID | (CLONE_NEWUSER if userns else 0))
    if userns:
        # Only our own uid can be mapped without help from outside: inside root = us, without powers later.
        write_file("/proc/self/setgroups", "deny")
        write_file("/proc/self/uid_map", f"0 {uid} 1")
        write_file("/proc/self/gid_map", f"0 {gid} 1")
    pid = os.fork()
    if pid != 0:
        _relay(pid, keep_fds)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the intermediate dies: so does PID 1, and its namespace


def _relay(pid: int, keep_fds: tuple[int, ...]) -> None:
    """The intermediate: hold nothing open, wait for PID 1, and end the same way it did."""
    os.closerange(0, min(keep_fds, default=1 << 16))
    for fd in keep_fds:
        os.closerange(fd + 1, 1 << 16)
    status = 0
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
        except ChildProcessError:
            os._exit(70)
    if os.WIFEXITED(status):
        os._exit(os.WEXITSTATUS(status))
    sig = os.WTERMSIG(status)
    signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)
    os._exit(128 + sig)


def sandbox_uid(plan: Plan) -> int:
    return SANDBOX_UID_BASE + plan.worker_pid


def become(uid: int) -> None:
    """From root to `uid` (same gid): every capability goes with it."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    prctl(PR_SET_DUMPABLE, 1)  # the uid change made /proc/self root-owned; the student's own is harmless
