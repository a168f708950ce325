"""A pre-warmed worker: imports torch once, then forks one sandboxed child per submission.

Run as `python -I -m grader.sandbox.zygote FD` by `runner.Zygote`, FD being its end of a unix socket to the
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
from typing import Any

from grader.sandbox import isolation

JOB_CAP_BYTES = 64 * 1024 * 1024  # what a child reads of its own job pipe (the parent sends a few MB at most)
POLL_S = 0.02  # only where there is no pidfd to wake us when the child exits
RSS_EVERY_S = 0.05  # only where no memory cgroup enforces the limit
KILL_PATIENCE_S = 30.0


def _prctl(option: int, value: int) -> None:
    try:
        isolation.prctl(option, value)
    except (OSError, AttributeError):  # not Linux: nothing to set
        pass


def descendants(root: int) -> list[int]:
    """Every live process below `root` (children before grandchildren).

    Follows /proc/<pid>/task/<tid>/children, which costs one read per process in the tree instead of a scan
    of the whole machine; falls back to the full /proc scan where the kernel lacks those files.
    """
    if not os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children"):
        return _descendants_by_scan(root)
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


def _descendants_by_scan(root: int) -> list[int]:
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
        return sorted(set(descendants(me)) | set(isolation.cgroup_pids(cgroups or {})) - {me})

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
    try:
        os.killpg(group, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _child(control: dict[str, Any], job_fd: int, result_fd: int, output_fd: int, workdir: str) -> None:
    """In the forked child: close every door, read this job from its own pipe, hand over to the harness.

    The job (the submission, the probe, the inputs) is read here, after the fork and inside the sandbox:
    the worker this child was forked from never held it. Never returns.
    """
    code = 70
    try:
        os.setsid()
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
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        tier = isolation.enter(control, workdir)
        from grader.sandbox.harness import Channel, run

        channel = Channel(result_fd)
        channel.send({"type": "hello", "tier": tier})
        reader = _JobReader(job_fd)
        job = json.loads(reader.line())
        if not job.get("hidden_follows"):
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

    def last(self) -> Any:
        """The job's last part (the hidden checks' invocations), after which the pipe is closed."""
        part = json.loads(self.line())
        self.close()
        return part

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def run_job(control: dict[str, Any], fds: list[int], scratch: str, commands: Any = None) -> dict[str, Any]:
    """Fork one child for a job this worker never reads, watch it, clean up after it.

    `fds` are the job's own pipes, passed by the trusted parent: the read end of the job (which only the
    child reads), the write end of the result channel (which only the parent reads) and the output file.
    `control` holds nothing of the submission: the job's id and limits. `commands` is the socket on which
    the parent may ask for the job to be stopped (its channel overflowed).
    """
    started = time.monotonic()
    job_fd, result_fd, output_fd = fds
    workdir = tempfile.mkdtemp(prefix="sub-", dir=scratch)
    os.chmod(workdir, 0o777)  # the child may run as an unprivileged user
    limits = control["limits"]
    cgroups = isolation.job_cgroups(str(control["job_id"]), limits)
    try:
        pid = isolation.fork_job()
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    if pid == 0:
        _child({"limits": limits, "cgroups": cgroups}, job_fd, result_fd, output_fd, workdir)
    for fd in fds:
        os.close(fd)
    watch = _watch(pid, started + float(limits["timeout"]), float(limits["memory_mib"]),
                   "memory" not in cgroups, commands)
    kill_tree(cgroups=cgroups, group=pid)
    status = watch["status"]
    if status is None:
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            status = None
    peak_rss, killed_for_memory = isolation.cgroup_memory(cgroups)
    for directory in cgroups.values():
        isolation.remove_cgroup(directory)
    shutil.rmtree(workdir, ignore_errors=True)
    return {
        "event": "finished",
        "job_id": control["job_id"],
        "exit_code": os.WEXITSTATUS(status) if status is not None and os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if status is not None and os.WIFSIGNALED(status) else None,
        "timed_out": watch["timed_out"],
        "memory_exceeded": watch["memory_exceeded"] or killed_for_memory,
        "stopped": watch["stopped"],
        "peak_rss_mib": round(max(peak_rss, watch["peak_rss"]), 1),
        "duration_s": round(time.monotonic() - started, 4),
    }


def _watch(pid: int, deadline: float, memory_mib: float, watch_rss: bool, commands: Any) -> dict[str, Any]:
    """Sleep in select() until the child exits, the deadline or an RSS check is due, or the parent says stop.

    The child's exit wakes us through a pidfd (no polling); the RSS watchdog ticks only where no memory
    cgroup enforces the limit. Whatever the child left running is killed as soon as it has exited.
    """
    state: dict[str, Any] = {"status": None, "timed_out": False, "memory_exceeded": False, "stopped": False,
                             "peak_rss": 0.0}
    pidfd = _pidfd(pid)
    baseline = rss_mib([os.getpid()]) if watch_rss else 0.0
    next_rss = time.monotonic()
    while True:
        now = time.monotonic()
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            state["status"] = status
            break
        if now > deadline:
            state["timed_out"] = True
            break
        if watch_rss and now >= next_rss:
            next_rss = now + RSS_EVERY_S
            below = descendants(pid)
            used = rss_mib(below if below and isolation.job_has_intermediate() else [pid, *below], baseline)
            state["peak_rss"] = max(state["peak_rss"], used)
            if used > memory_mib:
                state["memory_exceeded"] = True
                break
        wake = min(deadline, next_rss) if watch_rss else deadline
        waiting = [] if commands is None else [commands]
        if pidfd is None:
            wake = min(wake, now + POLL_S)
        else:
            waiting.append(pidfd)
        ready, _, _ = select.select(waiting, [], [], max(0.0, wake - now))
        if commands is not None and commands in ready:
            _, fds, _, _ = socket.recv_fds(commands, 4096, 4)  # a stop, or the parent has gone (empty)
            for fd in fds:  # a stop carries none; anything else is closed unread
                os.close(fd)
            state["stopped"] = True
            break
    if pidfd is not None:
        os.close(pidfd)
    return state


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


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _receive(commands: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    """The next control message and the descriptors that came with it; (None, []) once the parent has gone."""
    message, fds, _, _ = socket.recv_fds(commands, 65536, 4)
    if not message:
        for fd in fds:
            os.close(fd)
        return None, []
    return json.loads(message), fds


def _die_with_parent(parent: int) -> None:
    """SIGTERM when the thread that started us ends (a Dask worker SIGKILLed), which unwinds through main's
    `finally` and kills the job's tree; if the parent is already gone, go now."""
    _prctl(isolation.PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os._exit(0)


def main() -> None:
    if len(sys.argv) > 2:  # a first thing: a parent may die during the slow imports below
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        _die_with_parent(int(sys.argv[2]))
    _prctl(isolation.PR_SET_CHILD_SUBREAPER, 1)
    _prctl(isolation.PR_SET_DUMPABLE, 0)  # a same-user child cannot read our memory through /proc
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    # SIGTERM from the parent (a batch being stopped) unwinds through `finally`, which kills the job's tree.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    commands = socket.socket(fileno=int(sys.argv[1]))
    config, _ = _receive(commands)
    if config is None:
        os._exit(0)
    info: dict[str, Any] = {"event": "ready", "pid": os.getpid(), "torch": None, "cuda": False}
    if config.get("framework") == "torch" or config.get("want_cuda"):
        import torch

        torch.set_num_threads(1)  # forked children must not inherit a half-started thread pool
        info["torch"] = torch.__version__
        if config.get("want_cuda"):
            info["cuda"] = bool(torch.cuda.is_available())
        warm_torch(torch, backward=not info["cuda"])
    # NumPy (with numpy.random, which every job seeds) is imported once here, not once per child; the harness
    # is loaded now because the child's filesystem view has no course repository.
    for module in ("numpy", "numpy.random", "grader.sandbox.harness"):
        importlib.import_module(module)

    info["sandbox"] = isolation.prepare(str(config.get("sandbox", "auto")), bool(config.get("cgroups", True)))
    _remove_stale_scratch()
    scratch = tempfile.mkdtemp(prefix=f"grader-zygote-{os.getpid()}-")
    os.chmod(scratch, 0o711)
    _emit(info)
    try:
        # Every child is forked from this loop, so it never reads a job or a result: a control message is a
        # job id and limits, and the job's bytes go from the parent's pipe to the child's, past us.
        while True:
            control, fds = _receive(commands)
            if control is None:
                break
            if control.get("stop"):
                continue  # a stop that came after its job had ended
            if len(fds) != 3:
                for fd in fds:
                    os.close(fd)
                _emit({"event": "refused", "job_id": control.get("job_id")})
                continue
            _emit(run_job(control, fds, scratch, commands))
    finally:
        kill_tree()
        shutil.rmtree(scratch, ignore_errors=True)
        for directory in info["sandbox"].get("cgroups", {}).values():
            isolation.remove_cgroup(directory)
        # Skip the interpreter's teardown: with torch loaded it takes ~0.4 s that every cold `grade` would
        # wait for, and everything is already cleaned up and said.
        try:
            sys.stdout.flush()
        finally:
            os._exit(0)


if __name__ == "__main__":
    main()
