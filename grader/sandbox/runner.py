"""The trusted parent's handle on a zygote: start it early, send it jobs, get back raw, unparsed outcomes.

A `Zygote` is started before the parent does anything else, so that torch's import in the worker
overlaps the parent's own start-up. The parent never imports torch, never unpickles, and never reads a
submission's stdout as data.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Self

from grader.sandbox.channel import ChannelError, decode
from grader.sandbox.isolation import scrubbed_environment

START_TIMEOUT_S = 120.0  # a cold torch import on a loaded machine can take tens of seconds
BACKSTOP_S = 15.0
SANDBOX_CHOICES = ("auto", "namespaces", "userns", "process", "none")  # beyond the job's own timeout, before the parent gives up on the zygote itself


class SandboxFailure(RuntimeError):
    """The worker itself failed (not the submission): it died, hung, or spoke nonsense."""


@dataclass(frozen=True)
class Outcome:
    """What came back from one job, decoded and validated, still untrusted numbers."""

    messages: tuple[dict[str, Any], ...]
    channel_error: str | None
    exit_code: int | None
    signal: int | None
    timed_out: bool
    memory_exceeded: bool
    overflow: bool
    output: str
    duration_s: float
    peak_rss_mib: float


_job_ids = itertools.count(1)


class Zygote:
    """One pre-warmed worker process. Not thread-safe: one job at a time."""

    def __init__(self, framework: str, want_cuda: bool = False, sandbox: str = "auto", cgroups: bool = True):
        """`sandbox`: "auto" picks the strongest tier that works here; "namespaces" (as root, else through a
        user namespace) and "userns" (always through a user namespace, as a non-root grader gets them) make
        info() raise SandboxFailure where they cannot be had; "process" and "none" ask for a weaker one.
        `cgroups=False` does without cgroups even where they are delegated (RSS watchdog, RLIMIT_NPROC)."""
        if sandbox not in SANDBOX_CHOICES:
            raise ValueError(f"unknown sandbox tier {sandbox!r}")
        self.framework = framework
        self.want_cuda = want_cuda
        self.sandbox = sandbox
        env = scrubbed_environment(os.environ.get("TMPDIR", "/tmp"))
        env["TMPDIR"] = os.environ.get("TMPDIR", "/tmp")
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-m", "grader.sandbox.zygote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # our Ctrl-C is ours to handle; we stop it explicitly
            cwd="/",
        )
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.process.stdout, selectors.EVENT_READ)
        self._buffer = b""
        self._send({"framework": framework, "want_cuda": want_cuda, "sandbox": sandbox, "cgroups": cgroups})
        self._info: dict[str, Any] | None = None

    # ---- lifecycle
    def info(self) -> dict[str, Any]:
        """Wait until the worker has imported what it needs; returns what it found (torch, cuda)."""
        if self._info is None:
            line = self._read_line(START_TIMEOUT_S)
            info = json.loads(line)
            if info.get("event") != "ready":
                raise SandboxFailure("the grading worker did not start")
            reached = info.get("sandbox", {}).get("tier")
            if self.sandbox in ("namespaces", "userns") and reached != "namespaces":
                notes = "; ".join(info.get("sandbox", {}).get("notes", []))
                self.kill()
                raise SandboxFailure(f"the namespaces sandbox tier was required, but this worker only reaches "
                                     f"{reached!r} ({notes or 'no namespaces here'})")
            self._info = info
        return self._info

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.close()
                self.process.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        self._selector.close()

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()

    @property
    def tier(self) -> str:
        """The tier every job of this worker runs at (decided by trying it when the worker started)."""
        return str(self.info().get("sandbox", {}).get("tier", "unknown"))

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    # ---- jobs
    def run(self, job: dict[str, Any]) -> Outcome:
        return _outcome(self.run_raw(job))

    def run_raw(self, job: dict[str, Any]) -> dict[str, Any]:
        """Run one job and return the worker's finished event undecoded (channel bytes still base64):
        what a grading machine of a cluster ships back to the trusted process, which decodes it with
        `decode_event`. Raises SandboxFailure (and kills the worker) when the worker broke."""
        self.info()
        job = {**job, "job_id": f"{os.getpid()}-{next(_job_ids)}"}
        self._send(job)
        try:
            line = self._read_line(job["limits"]["timeout"] + BACKSTOP_S)
            event = json.loads(line)
        except (SandboxFailure, ValueError) as exc:
            self.kill()
            raise SandboxFailure(f"the grading worker failed: {exc}") from None
        if not isinstance(event, dict):
            self.kill()
            raise SandboxFailure("the grading worker failed: it answered something other than an event")
        return event

    def _send(self, message: dict[str, Any]) -> None:
        try:
            self.process.stdin.write((json.dumps(message) + "\n").encode())
            self.process.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise SandboxFailure(f"the grading worker is gone ({exc})") from None

    def _read_line(self, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._selector.select(remaining):
                raise SandboxFailure("the grading worker stopped answering")
            chunk = os.read(self.process.stdout.fileno(), 1 << 20)
            if not chunk:
                raise SandboxFailure("the grading worker exited")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def decode_event(event: dict[str, Any]) -> Outcome:
    """A finished event (as `Zygote.run_raw` returns it, here or on another machine) decoded and validated."""
    return _outcome(event)


def _outcome(event: dict[str, Any]) -> Outcome:
    raw = base64.b64decode(event.get("channel", ""))
    channel_error = None
    try:
        messages = tuple(decode(raw))
    except ChannelError as exc:
        messages, channel_error = (), str(exc)
    if event.get("overflow"):
        channel_error = "the submission sent more result data than the grader accepts"
    return Outcome(
        messages=messages,
        channel_error=channel_error,
        exit_code=event.get("exit_code"),
        signal=event.get("signal"),
        timed_out=bool(event.get("timed_out")),
        memory_exceeded=bool(event.get("memory_exceeded")),
        overflow=bool(event.get("overflow")),
        output=str(event.get("output", ""))[:70_000],
        duration_s=float(event.get("duration_s", 0.0)),
        peak_rss_mib=float(event.get("peak_rss_mib", 0.0)),
    )
