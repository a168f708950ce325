"""A pre-warmed worker: imports torch once, then forks one sandboxed child per submission.

Run as `python -I -m grader.sandbox.zygote` by `runner.Zygote`. It speaks JSON lines on stdin/stdout
with the trusted parent and never holds reference data: a job carries the submission, the probe code
and the inputs, nothing to compare against. It never runs student code itself; each job's child is
forked, isolated, limited, watched (wall clock, memory) and killed with its whole process tree.
"""

from __future__ import annotations

import base64
import ctypes
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
POLL_S = 0.02
RSS_EVERY_S = 0.05
PR_SET_CHILD_SUBREAPER = 36
PR_SET_DUMPABLE = 4


def _prctl(option: int, value: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: nothing to set
        pass


def descendants(root: int) -> list[int]:
    """Every live process below `root`, read from /proc (children before grandchildren)."""
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


def rss_mib(pids: list[int]) -> float:
    total_kib = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status", "rb") as handle:
                for line in handle:
                    if line.startswith(b"VmRSS:"):
                        total_kib += int(line.split()[1])
                        break
        except (OSError, ValueError):
            continue
    return total_kib / 1024


def kill_tree(grace_s: float = 0.2) -> None:
    """SIGTERM every descendant, then SIGKILL whatever is left, until nothing is left.

    As a child subreaper we inherit orphans, so a grandchild that called setsid() is still ours.
    Stopping before killing keeps a fork bomb from outrunning the scan.
    """
    me = os.getpid()
    pids = descendants(me)
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while pids and time.monotonic() < deadline:
        _reap()
        time.sleep(0.01)
        pids = descendants(me)
    for _ in range(200):
        pids = descendants(me)
        if not pids:
            break
        for pid in pids:
            _signal(pid, signal.SIGSTOP)
        for pid in pids:
            _signal(pid, signal.SIGKILL)
        _reap()
        time.sleep(0.005)
    _reap()


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
        except BaseException:  # noqa: BLE001
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
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child(job, write_fd, output_fd, workdir)
    os.close(write_fd)
    os.close(output_fd)
    chunks: list[bytes] = []
    received = 0
    timed_out = memory_exceeded = overflow = False
    peak_rss = 0.0
    status: int | None = None
    next_rss = 0.0
    deadline = started + limits["timeout"]
    channel_open = True
    while True:
        now = time.monotonic()
        if status is None:
            done, status_raw = os.waitpid(pid, os.WNOHANG)
            if done:
                status = status_raw
        if status is not None and not channel_open:
            break
        if status is not None and now > deadline:
            break  # the child is gone; a leftover process is holding the pipe open
        if now > deadline:
            timed_out = True
            break
        if now >= next_rss:
            next_rss = now + RSS_EVERY_S
            used = rss_mib([pid, *descendants(pid)])
            peak_rss = max(peak_rss, used)
            if used > limits["memory_mib"]:
                memory_exceeded = True
                break
        if channel_open:
            ready, _, _ = select.select([read_fd], [], [], POLL_S)
            if ready:
                chunk = os.read(read_fd, 65536)
                if not chunk:
                    channel_open = False
                else:
                    received += len(chunk)
                    if received > CHANNEL_CAP_BYTES:
                        overflow = True
                        break
                    chunks.append(chunk)
        else:
            time.sleep(POLL_S)
    kill_tree()
    if status is None:
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            status = None
    os.close(read_fd)
    output = _read_capped(output_path)
    shutil.rmtree(workdir, ignore_errors=True)
    return {
        "event": "finished",
        "job_id": job["job_id"],
        "exit_code": os.WEXITSTATUS(status) if status is not None and os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if status is not None and os.WIFSIGNALED(status) else None,
        "timed_out": timed_out,
        "memory_exceeded": memory_exceeded,
        "overflow": overflow,
        "peak_rss_mib": round(peak_rss, 1),
        "channel": base64.b64encode(b"".join(chunks)).decode("ascii"),
        "output": output,
        "duration_s": round(time.monotonic() - started, 4),
    }


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


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> None:
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_DUMPABLE, 0)  # a same-user child cannot read our memory through /proc
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
    else:
        import numpy  # noqa: F401 - warm it for the NumPy exercises
    isolation.prepare()
    scratch = tempfile.mkdtemp(prefix="grader-zygote-")
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


if __name__ == "__main__":
    main()
