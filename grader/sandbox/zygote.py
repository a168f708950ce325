"""A pre-warmed worker: imports torch once, then forks one sandboxed child per submission (ahead of it).

Run as `python -I -m grader.sandbox.zygote FD` by `runner.ZygoteClient`, FD being its end of a unix socket to the
trusted parent. It never holds reference data, and it never reads a job or a result either: every child
is forked from this process, so whatever it had read, every later child would inherit (a submission that
scans its own memory would find an earlier student's code). A job arrives as a control message (its id and
limits) with three file descriptors passed over the socket (SCM_RIGHTS): the read end of a pipe that holds
the job (submission, probe, inputs), which only the forked child reads; the write end of the result
channel, which only the parent reads; the file the child's output goes to, which only the parent reads.
The worker forks, isolates, limits, watches (wall clock, memory) and kills each child with its whole
process tree, and says on stdout how the child ended: nothing else.
"""

from __future__ import annotations

import importlib
import json
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from typing import Any

from grader.sandbox import namespaces, plan as sandbox_plan
from grader.sandbox.cgroups import cgroup_memory, job_cgroups, remove_cgroup
from grader.sandbox.control import (
    ChildSetup,
    Command,
    Config,
    Event,
    Finished,
    JobControl,
    Ready,
    Refused,
    Stop,
    parse_command,
)
from grader.sandbox.plan import Plan
from grader.sandbox.proctree import descendants, die_with_parent, kill_tree, rss_mib
from grader.sandbox.spare import (  # moved to spare.py, still named here
    SPARE_NAME as SPARE_NAME,
    Spare as Spare,
    _child as _child,
    _prctl as _prctl,
    _spare as _spare,
    _workdir as _workdir,
)
from grader.sandbox.syscalls import PR_SET_CHILD_SUBREAPER, PR_SET_DUMPABLE

POLL_S = 0.02  # only where there is no pidfd to wake us when the child exits
RSS_EVERY_S = 0.05  # only where no memory cgroup enforces the limit


def run_job(plan: Plan, control: JobControl, fds: list[int], scratch: str, commands: Any = None,
            spare: Spare | None = None) -> Finished:
    """Fork one child for a job this worker never reads (or hand it to the spare), watch it, clean up after it.

    `fds` are the job's own pipes, passed by the trusted parent: the read end of the job (which only the
    child reads), the write end of the result channel (which only the parent reads) and the output file.
    `control` holds nothing of the submission: the job's id and limits. `commands` is the socket on which
    the parent may ask for the job to be stopped (its channel overflowed).
    """
    started = time.monotonic()
    limits = control.limits
    cgroups = spare.hand_over(fds, limits) if spare is not None else None
    if spare is not None and cgroups is not None:
        pid, workdir, made = spare.pid, spare.workdir, spare.cgroups
    else:
        if spare is not None:  # it died waiting: reap it, and fork as if there had been none
            kill_tree()
            spare.discard()
        pid, workdir, cgroups = _fork_child(plan, control, fds, scratch)
        made = cgroups
    watch = Watch(pid, started + float(limits.timeout), float(limits.memory_mib),
                  watch_rss="memory" not in cgroups, intermediate=namespaces.job_has_intermediate(plan))
    watch.run(commands)
    kill_tree(cgroups=cgroups, group=pid)
    status = watch.status if watch.status is not None else _wait(pid)
    peak_rss, killed_for_memory = cgroup_memory(cgroups)
    for directory in made.values():
        remove_cgroup(directory)
    shutil.rmtree(workdir, ignore_errors=True)
    return Finished(
        job_id=control.job_id,
        exit_code=os.WEXITSTATUS(status) if status is not None and os.WIFEXITED(status) else None,
        signal=os.WTERMSIG(status) if status is not None and os.WIFSIGNALED(status) else None,
        timed_out=watch.timed_out,
        memory_exceeded=watch.memory_exceeded or killed_for_memory,
        stopped=watch.stopped,
        peak_rss_mib=round(max(peak_rss, watch.peak_rss), 1),
        duration_s=round(time.monotonic() - started, 4),
    )


def _fork_child(plan: Plan, control: JobControl, fds: list[int], scratch: str) -> tuple[int, str, dict[str, str]]:
    """A child forked for this job now (where there is no spare): its pid, its directory, its cgroups."""
    job_fd, result_fd, output_fd = fds
    workdir = _workdir(scratch)
    cgroups = job_cgroups(plan.cgroups, control.job_id, control.limits.as_job())
    try:
        pid = namespaces.fork_job(plan)
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    if pid == 0:
        _child(plan, ChildSetup(control.limits, cgroups), job_fd, result_fd, output_fd, workdir)
    for fd in fds:
        os.close(fd)
    return pid, workdir, cgroups


def _wait(pid: int) -> int | None:
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return None


@dataclass
class Watch:
    """One job's child, watched until it exits, runs past its deadline or its memory, or the parent says stop.

    The child's exit wakes us through a pidfd (no polling); the RSS watchdog ticks only where no memory
    cgroup enforces the limit. What it saw is left in its fields for the job's account.
    """

    pid: int
    deadline: float  # time.monotonic()
    memory_mib: float
    watch_rss: bool  # no memory cgroup: the RSS watchdog enforces the limit
    intermediate: bool  # the child's first process is an intermediate, not the student's
    status: int | None = None  # the child's wait status, once it exited
    timed_out: bool = False
    memory_exceeded: bool = False
    stopped: bool = False  # the parent asked for the job to be stopped (or has gone)
    peak_rss: float = 0.0

    def run(self, commands: Any) -> None:
        """Sleep in select() until the child exits, the deadline or an RSS check is due, or the parent says stop."""
        pidfd = _pidfd(self.pid)
        baseline = rss_mib([os.getpid()]) if self.watch_rss else 0.0
        next_rss = time.monotonic()
        try:
            while True:
                now = time.monotonic()
                if self._ended(now):
                    return
                if self.watch_rss and now >= next_rss:
                    next_rss = now + RSS_EVERY_S
                    if self._over_memory(baseline):
                        return
                wake = min(self.deadline, next_rss) if self.watch_rss else self.deadline
                if pidfd is None:
                    wake = min(wake, now + POLL_S)
                if self._told_to_stop(commands, pidfd, max(0.0, wake - now)):
                    return
        finally:
            if pidfd is not None:
                os.close(pidfd)

    def _ended(self, now: float) -> bool:
        done, status = os.waitpid(self.pid, os.WNOHANG)
        if done:
            self.status = status
            return True
        self.timed_out = now > self.deadline
        return self.timed_out

    def _over_memory(self, baseline: float) -> bool:
        below = descendants(self.pid)
        used = rss_mib(below if below and self.intermediate else [self.pid, *below], baseline)
        self.peak_rss = max(self.peak_rss, used)
        self.memory_exceeded = used > self.memory_mib
        return self.memory_exceeded

    def _told_to_stop(self, commands: Any, pidfd: int | None, timeout: float) -> bool:
        """Wait up to `timeout` for the child's exit or a word from the parent; True for a stop."""
        waiting = ([] if commands is None else [commands]) + ([] if pidfd is None else [pidfd])
        ready, _, _ = select.select(waiting, [], [], timeout)
        if commands is None or commands not in ready:
            return False
        _, fds, _, _ = socket.recv_fds(commands, 4096, 4)  # a stop, or the parent has gone (empty)
        for fd in fds:  # a stop carries none; anything else is closed unread
            os.close(fd)
        self.stopped = True
        return True


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # before Linux 5.3, or not Linux
        return None


def _remove_stale_scratch() -> None:
    """Scratch folders of workers that were killed before they could clean up (their pid is gone)."""
    top = tempfile.gettempdir()
    if not os.path.isdir("/proc/self"):
        return  # no way to tell a live worker from a dead one
    try:
        names = os.listdir(top)
    except OSError:
        return
    for name in names:
        parts = name.split("-")
        if name.startswith("grader-zygote-") and len(parts) == 4 and parts[2].isdigit() \
                and not os.path.exists(f"/proc/{parts[2]}"):
            shutil.rmtree(os.path.join(top, name), ignore_errors=True)


def warm_torch(torch: Any, backward: bool) -> None:
    """Load, once and before any fork, what a submission of any exercise needs on first use.

    A first nn.Linear, MSELoss and SGD step touch lazily built kernels and dispatch tables; torch.optim would
    also import torch._dynamo (~0.8 s), which lazy_dynamo defers until something really compiles. Done here,
    every forked child inherits them warm.
    backward() starts autograd's per-device threads: harmless on a CPU-only worker (a child's CPU backward
    never needs them), but a forked child cannot restart them for CUDA, so a CUDA worker skips it.
    """
    import torch.nn
    import torch.nn.functional
    import torch.optim

    from grader.sandbox import lazy_dynamo

    lazy_dynamo.install()
    generator_state = torch.random.get_rng_state()
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    inputs, targets = torch.ones(2, 1), torch.ones(2, 1)
    if backward:
        torch.nn.MSELoss()(model(inputs), targets).backward()
    else:
        with torch.no_grad():
            torch.nn.MSELoss()(model(inputs), targets)
        for parameter in model.parameters():
            parameter.grad = torch.zeros_like(parameter)
    optimizer.step()
    optimizer.zero_grad()
    torch.random.set_rng_state(generator_state)  # every child seeds anyway; leave no trace of the warm-up


def _emit(event: Event) -> None:
    sys.stdout.write(json.dumps(event.to_wire()) + "\n")
    sys.stdout.flush()


def _receive(commands: socket.socket) -> tuple[Command | None, list[int]]:
    """The next command and the descriptors that came with it; (None, []) once the parent has gone. A message
    that is no command raises WireError (ValueError)."""
    message, fds, _, _ = socket.recv_fds(commands, 65536, 4)
    if not message:
        for fd in fds:
            os.close(fd)
        return None, []
    try:
        return parse_command(json.loads(message)), fds
    except ValueError:
        for fd in fds:
            os.close(fd)
        raise


def main() -> None:
    if len(sys.argv) > 2:  # a first thing: a parent may die during the slow imports below
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        die_with_parent(int(sys.argv[2]))  # a Dask worker SIGKILLed: unwind through main's `finally`
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_DUMPABLE, 0)  # a same-user child cannot read our memory through /proc
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    # SIGTERM from the parent (a batch being stopped) unwinds through `finally`, which kills the job's tree.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    commands = socket.socket(fileno=int(sys.argv[1]))
    config, _ = _receive(commands)
    if not isinstance(config, Config):
        os._exit(0)
    ready = _warm_up(config)
    plan = sandbox_plan.prepare(config.sandbox, config.cgroups)
    ready = replace(ready, sandbox=plan.as_dict())
    _remove_stale_scratch()
    scratch = tempfile.mkdtemp(prefix=f"grader-zygote-{os.getpid()}-")
    os.chmod(scratch, 0o711)
    _emit(ready)
    try:
        _serve(plan, commands, scratch)
    finally:
        kill_tree()
        shutil.rmtree(scratch, ignore_errors=True)
        for directory in plan.cgroups.values():
            remove_cgroup(directory)
        # Skip the interpreter's teardown: with torch loaded it takes ~0.4 s that every cold `grade` would
        # wait for, and everything is already cleaned up and said.
        try:
            sys.stdout.flush()
        finally:
            os._exit(0)


def _warm_up(config: Config) -> Ready:
    """Import, once and before any fork, what every child needs; the `ready` event, less the sandbox plan."""
    ready = Ready(torch=None, cuda=False, sandbox={}, pid=os.getpid())
    if config.framework == "torch" or config.want_cuda:
        import torch

        torch.set_num_threads(1)  # forked children must not inherit a half-started thread pool
        ready = replace(ready, torch=torch.__version__,
                        cuda=bool(torch.cuda.is_available()) if config.want_cuda else False)
        warm_torch(torch, backward=not ready.cuda)
    # NumPy (with numpy.random, which every job seeds) is imported once here, not once per child; the harness
    # is loaded now because the child's filesystem view has no course repository.
    for module in ("numpy", "numpy.random", "grader.sandbox.harness"):
        importlib.import_module(module)
    return ready


def _serve(plan: Plan, commands: socket.socket, scratch: str) -> None:
    """The job loop, until the parent has gone.

    Every child is forked from this loop, so it never reads a job or a result: a control message is a job
    id and limits, and the job's bytes go from the parent's pipe to the child's, past us. The next job's
    child is forked (a spare) once a job's tree is gone, while the parent scores it.
    """
    spares = 0
    spare = _spare(plan, scratch, spares)
    try:
        while True:
            try:
                control, fds = _receive(commands)
            except ValueError:  # no command of ours (only the parent writes here): ignored, as a late stop is
                continue
            if control is None:
                return
            if not isinstance(control, JobControl) or len(fds) != 3:
                for fd in fds:
                    os.close(fd)
                if not isinstance(control, Stop):  # a stop that came after its job had ended: nothing to say
                    _emit(Refused(control.job_id if isinstance(control, JobControl) else ""))
                continue
            given, spare = spare, None  # this job's from now on, whatever happens
            _emit(run_job(plan, control, fds, scratch, commands, given))
            spares += 1
            spare = _spare(plan, scratch, spares)
    finally:
        if spare is not None:
            spare.close()


if __name__ == "__main__":
    main()
