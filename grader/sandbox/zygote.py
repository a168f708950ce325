"""A pre-warmed worker: imports torch once, then forks one sandboxed child per submission.

Run as `python -I -m grader.sandbox.zygote` by `runner.Zygote`. It speaks JSON lines on stdin/stdout
with the trusted parent and never holds reference data: a job carries the submission, the probe code
and the inputs, nothing to compare against. It never runs student code itself; each job's child is
forked, isolated, limited, watched (wall clock, memory) and killed with its whole process tree.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import select
import shutil
import signal
import sys
import tempfile
import time
from typing import Any

from grader.sandbox import isolation

OUTPUT_CAP_BYTES = 64 * 1024  # what we keep of a submission's prints
OUTPUT_FILE_LIMIT = 8 * 1024 * 1024  # RLIMIT_FSIZE: past this, the submission's writes fail
CHANNEL_CAP_BYTES = 8 * 1024 * 1024 + 1  # one byte over the parent's limit, so it can say "too much"
POLL_S = 0.02  # only where there is no pidfd to wake us when the child exits
RSS_EVERY_S = 0.05  # only where no memory cgroup enforces the limit
LEFTOVER_GRACE_S = 0.2
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


def _child(job: dict[str, Any], result_fd: int, output_fd: int, workdir: str) -> None:
    """In the forked child: close every door, then hand over to the harness. Never returns."""
    code = 70
    try:
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
        os.closerange(3, result_fd)
        os.closerange(result_fd + 1, 1 << 16)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        tier = isolation.enter(job, workdir)
        from grader.sandbox.harness import Channel, run

        channel = Channel(result_fd)
        channel.send({"type": "hello", "tier": tier})
        run(job, channel)
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


def run_job(job: dict[str, Any], scratch: str) -> dict[str, Any]:
    """Fork one child for `job`, watch it, collect its channel bytes and output, clean up after it."""
    started = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="sub-", dir=scratch)
    os.chmod(workdir, 0o777)  # the child may run as an unprivileged user
    output_path = os.path.join(scratch, f"out-{job['job_id']}")
    output_fd = os.open(output_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    read_fd, write_fd = os.pipe()
    limits = job["limits"]
    cgroups = isolation.job_cgroups(job["job_id"], limits)
    pid = isolation.fork_job()
    if pid == 0:
        os.close(read_fd)
        _child({**job, "cgroups": cgroups}, write_fd, output_fd, workdir)
    os.close(write_fd)
    os.close(output_fd)
    watch = _watch(pid, read_fd, started + limits["timeout"], limits["memory_mib"], "memory" not in cgroups)
    kill_tree(cgroups=cgroups, group=pid)
    status = watch["status"]
    if status is None:
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            status = None
    chunks = watch["chunks"]
    if not watch["overflow"]:
        chunks.extend(_drain(read_fd, CHANNEL_CAP_BYTES - watch["received"]))
    os.close(read_fd)
    peak_rss, killed_for_memory = isolation.cgroup_memory(cgroups)
    for directory in cgroups.values():
        isolation.remove_cgroup(directory)
    output = _read_capped(output_path)
    shutil.rmtree(workdir, ignore_errors=True)
    return {
        "event": "finished",
        "job_id": job["job_id"],
        "exit_code": os.WEXITSTATUS(status) if status is not None and os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if status is not None and os.WIFSIGNALED(status) else None,
        "timed_out": watch["timed_out"],
        "memory_exceeded": watch["memory_exceeded"] or killed_for_memory,
        "overflow": watch["overflow"],
        "peak_rss_mib": round(max(peak_rss, watch["peak_rss"]), 1),
        "channel": base64.b64encode(b"".join(chunks)).decode("ascii"),
        "output": output,
        "duration_s": round(time.monotonic() - started, 4),
    }


def _watch(pid: int, read_fd: int, deadline: float, memory_mib: float, watch_rss: bool) -> dict[str, Any]:
    """Sleep in select() until the channel speaks, the child exits, the deadline or an RSS check is due.

    The child's exit wakes us through a pidfd (no polling); the RSS watchdog ticks only where no memory
    cgroup enforces the limit. Once the child has exited, leftovers get LEFTOVER_GRACE_S to close the
    channel before they are killed, instead of holding the job open until the deadline.
    """
    state: dict[str, Any] = {"status": None, "chunks": [], "received": 0, "timed_out": False,
                             "memory_exceeded": False, "overflow": False, "peak_rss": 0.0}
    pidfd = _pidfd(pid)
    baseline = rss_mib([os.getpid()]) if watch_rss else 0.0
    channel_open = True
    next_rss = time.monotonic()
    exited_at = None
    while True:
        now = time.monotonic()
        if state["status"] is None:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                state["status"], exited_at = status, now
        if state["status"] is not None and not channel_open:
            break
        if exited_at is not None and now > min(deadline, exited_at + LEFTOVER_GRACE_S):
            break  # the child is gone; a leftover process is holding the channel open
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
        wake = deadline if exited_at is None else min(deadline, exited_at + LEFTOVER_GRACE_S)
        if watch_rss:
            wake = min(wake, next_rss)
        waiting = [read_fd] if channel_open else []
        if state["status"] is None:
            if pidfd is None:
                wake = min(wake, now + POLL_S)
            else:
                waiting.append(pidfd)
        ready, _, _ = select.select(waiting, [], [], max(0.0, wake - now))
        if read_fd in ready:
            chunk = os.read(read_fd, 65536)
            if not chunk:
                channel_open = False
                continue
            state["received"] += len(chunk)
            if state["received"] > CHANNEL_CAP_BYTES:
                state["overflow"] = True
                break
            state["chunks"].append(chunk)
    if pidfd is not None:
        os.close(pidfd)
    return state


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # before Linux 5.3, or not Linux
        return None


def _drain(read_fd: int, budget: int) -> list[bytes]:
    """What is left in the channel once every writer is dead (non-blocking; capped)."""
    os.set_blocking(read_fd, False)
    chunks = []
    while budget > 0:
        try:
            chunk = os.read(read_fd, min(65536, budget))
        except (BlockingIOError, OSError):
            break
        if not chunk:
            break
        chunks.append(chunk)
        budget -= len(chunk)
    return chunks


def _read_capped(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read(OUTPUT_CAP_BYTES + 1)
        size = os.path.getsize(path)
        os.unlink(path)
    except OSError:
        return ""
    text = data[:OUTPUT_CAP_BYTES].decode("utf-8", "replace")
    if size > OUTPUT_CAP_BYTES:
        text += f"\n[... output truncated: {size} bytes in all]"
    return text


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


def main() -> None:
    _prctl(isolation.PR_SET_CHILD_SUBREAPER, 1)
    _prctl(isolation.PR_SET_DUMPABLE, 0)  # a same-user child cannot read our memory through /proc
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    # SIGTERM from the parent (a batch being stopped) unwinds through `finally`, which kills the job's tree.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    config = json.loads(sys.stdin.readline())
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
        for line in sys.stdin:
            if not line.strip():
                continue
            _emit(run_job(json.loads(line), scratch))
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
