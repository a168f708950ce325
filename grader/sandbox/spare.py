"""A job's child: forked ahead of its job (the spare, waiting under its own name), isolated, then running the harness.

The zygote (zygote.py) keeps one spare ready per job slot, so a submission's child is already forked, isolated at
the plan's tier and past its imports when the job arrives. Runs in the zygote and its children only."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
from dataclasses import replace

from grader.model.job import HiddenPart, Job, Limits
from grader.sandbox import isolation, namespaces
from grader.sandbox.cgroups import job_cgroups, join as join_cgroups, limit as limit_cgroups, remove_cgroup
from grader.sandbox.control import ChildSetup
from grader.sandbox.plan import Plan
from grader.sandbox.syscalls import PR_SET_PDEATHSIG, prctl

JOB_CAP_BYTES = 64 * 1024 * 1024  # what a child reads of its own job pipe (the parent sends a few MB at most)


SPARE_NAME = "grader-spare"  # a spare child's process name while it waits for its job


def _prctl(option: int, value: int) -> None:
    with contextlib.suppress(OSError, AttributeError):  # not Linux: nothing to set
        prctl(option, value)


def _child(plan: Plan, setup: ChildSetup, job_fd: int, result_fd: int, output_fd: int, workdir: str) -> None:
    """In the forked child: close every door, read this job from its own pipe, hand over to the harness.

    The job (the submission, the probe, the inputs) is read here, after the fork and inside the sandbox:
    the worker this child was forked from never held it. Never returns.
    """
    code = 70
    try:
        os.setsid()
        _only_the_jobs_descriptors(job_fd, result_fd, output_fd)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        tier = isolation.enter(plan, setup, workdir)
        from grader.sandbox.harness import Channel, run
        from grader.sandbox.messages import Hello

        channel = Channel(result_fd)
        channel.send(Hello(tier))
        reader = _JobReader(job_fd)
        job = Job.from_wire(json.loads(reader.line()))
        if not job.hidden_follows:
            reader.close()  # nothing more comes: one descriptor fewer in the submission's hands
        run(job, channel, reader.last)
        code = 0
    except BaseException:  # noqa: BLE001 - nothing may escape the fork
        code = 71
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001, S110 - the fork must end here whatever happens
            pass
        os._exit(code)


def _only_the_jobs_descriptors(job_fd: int, result_fd: int, output_fd: int) -> None:
    """stdin from /dev/null, stdout and stderr to the job's output file; every other descriptor closed."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(output_fd, 1)
    os.dup2(output_fd, 2)
    keep = sorted({job_fd, result_fd})
    os.closerange(3, keep[0])
    os.closerange(keep[0] + 1, keep[-1])
    os.closerange(keep[-1] + 1, 1 << 16)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115


class _JobReader:
    """The child's end of its job pipe: one JSON line at a time (the hidden checks' line comes later)."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buffer = b""
        self.read = 0

    def line(self) -> bytes:
        while b"\n" not in self.buffer:
            chunk = os.read(self.fd, 1 << 20)
            self.read += len(chunk)
            if not chunk or self.read > JOB_CAP_BYTES:
                raise ValueError("the job ended early or is larger than the worker accepts")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def last(self) -> HiddenPart:
        """The job's last part (the hidden checks' invocations), after which the pipe is closed."""
        part = HiddenPart.from_wire(json.loads(self.line()))
        self.close()
        return part

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Spare:
    """A child forked ahead of its job, already in its own cgroups, waiting on a socket for the job's pipes.

    Moving a process into a cgroup costs an RCU grace period on cgroup v1 (~10 ms, a quarter of a NumPy
    submission's whole run), and a fork copies the page tables of a torch-sized worker: the spare pays both
    while the trusted parent is still scoring the previous job. It is forked from this worker like any job's
    child, after the previous job's process tree is gone, and it holds nothing of any job until its own
    arrives: the descriptors (and the limits) come over its socket, exactly what a freshly forked child gets.
    """

    def __init__(self, plan: Plan, scratch: str, number: int):
        self.workdir = _workdir(scratch)
        self.cgroups = job_cgroups(plan.cgroups, f"{os.getpid()}-{number}", prefix="spare-")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        name = _rename(SPARE_NAME)  # born with its name: whoever lists our children never sees it nameless
        try:
            self.pid = namespaces.fork_job(plan)
        except BaseException:
            _rename(name)
            ours.close()
            theirs.close()
            self.discard()
            raise
        if self.pid == 0:
            ours.close()
            _wait_for_job(plan, theirs, self.cgroups, self.workdir, name)
        _rename(name)
        theirs.close()
        self.socket = ours

    def hand_over(self, fds: list[int], limits: Limits) -> dict[str, str] | None:
        """Give the spare its job (closing our copies of the descriptors if it took them); the cgroups whose
        limits hold, or None where the spare is gone and a child must be forked as before."""
        cgroups = limit_cgroups(self.cgroups, limits.as_job())
        message = json.dumps(ChildSetup(limits, cgroups).to_wire()).encode()
        try:
            socket.send_fds(self.socket, [message], fds)
        except OSError:
            return None
        finally:
            self.socket.close()
        for fd in fds:
            os.close(fd)
        return cgroups

    def close(self) -> None:
        """The worker is closing: the spare holds nothing, so SIGKILL (as PID 1 of its own PID namespace it
        would ignore SIGTERM) and reap it."""
        self.socket.close()
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        self.discard()

    def discard(self) -> None:
        """Its child gone (or never born): remove what was made for it."""
        for directory in self.cgroups.values():
            remove_cgroup(directory)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _workdir(scratch: str) -> str:
    """A job's own directory under the worker's scratch (the new root at the namespaces tier)."""
    workdir = tempfile.mkdtemp(prefix="sub-", dir=scratch)
    os.chmod(workdir, 0o777)  # the child may run as an unprivileged user
    return workdir


def _spare(plan: Plan, scratch: str, number: int) -> Spare | None:
    try:
        return Spare(plan, scratch, number)
    except OSError:  # no fork now (a process limit): the next job forks its own child
        return None


def _wait_for_job(plan: Plan, commands: socket.socket, cgroups: dict[str, str], workdir: str,
                  name: str | None) -> None:
    """In a spare child: join its cgroups, then wait for the job's descriptors and go on as `_child`."""
    try:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        keep = commands.fileno()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)  # not the worker's event pipe to the parent
        os.closerange(3, keep)
        os.closerange(keep + 1, 1 << 16)  # nor the worker's socket: its end of file tells the parent it died
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        join_cgroups(cgroups)
        message, fds, _, _ = socket.recv_fds(commands, 65536, 3)
        if not message or len(fds) != 3:
            os._exit(0)  # the worker is closing, or has gone
        setup = replace(ChildSetup.from_wire(json.loads(message)), joined=True)
        commands.close()
        _rename(name)  # the worker's name again, as a child forked for its job has
    except BaseException:  # noqa: BLE001 - nothing may escape the fork
        os._exit(72)
    _child(plan, setup, *fds, workdir)


def _rename(name: str | None) -> str | None:
    """Set this process's name (its /proc comm) and return the one it had; None where there is no /proc."""
    if name is None:
        return None
    try:
        with open("/proc/self/comm", encoding="utf-8") as comm:
            old = comm.read().strip()
        with open("/proc/self/comm", "w", encoding="utf-8") as comm:
            comm.write(name)
        return old
    except OSError:
        return None
