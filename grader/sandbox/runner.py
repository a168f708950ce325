"""The trusted parent's handle on a zygote: start it early, send it jobs, get back raw, unparsed outcomes.

A `Zygote` is started before the parent does anything else, so that torch's import in the worker
overlaps the parent's own start-up. The parent never imports torch, never unpickles, and never reads a
submission's stdout as data.
"""

from __future__ import annotations

import itertools
import json
import os
import select
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Self

from grader.sandbox.channel import MAX_CHANNEL_BYTES, ChannelError, decode
from grader.sandbox.isolation import scrubbed_environment

START_TIMEOUT_S = 120.0  # a cold torch import on a loaded machine can take tens of seconds
BACKSTOP_S = 15.0  # beyond the job's own timeout, before the parent gives up on the worker itself
SANDBOX_CHOICES = ("auto", "namespaces", "userns", "process", "none")
OUTPUT_CAP_BYTES = 64 * 1024  # what we keep of a submission's prints
CHANNEL_CAP_BYTES = MAX_CHANNEL_BYTES + 1  # one byte over the decoder's limit, so it can say "too much"
MAX_EVENT_BYTES = 1 << 16


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
    """One pre-warmed worker process. Not thread-safe: one job at a time.

    The worker never sees a job's bytes or its results: for each job this side makes the pipes, passes
    their ends over a unix socket, writes the job into the child's pipe and reads the child's channel and
    output itself (see zygote.py).
    """

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
        self._socket, theirs = _socketpair()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-m", "grader.sandbox.zygote", str(theirs.fileno())],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,  # our Ctrl-C is ours to handle; we stop it explicitly
                cwd="/",
            )
        finally:
            theirs.close()
        self._events = self.process.stdout.fileno()
        self._buffer = b""
        self._command({"framework": framework, "want_cuda": want_cuda, "sandbox": sandbox, "cgroups": cgroups})
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

    def release(self) -> None:
        """No more jobs: the worker exits on its own (close() still waits for it)."""
        try:
            self._socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self._socket.shutdown(socket.SHUT_RDWR)
                self.process.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        self._socket.close()
        self.process.stdout.close()

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
        self.info()
        job_id = f"{os.getpid()}-{next(_job_ids)}"
        limits = job["limits"]
        payload = json.dumps({**job, "job_id": job_id}).encode()
        job_read, job_write = os.pipe()
        result_read, result_write = os.pipe()
        output = tempfile.TemporaryFile(prefix="grader-output-")  # noqa: SIM115 - closed below
        try:
            try:
                socket.send_fds(self._socket, [json.dumps({"job_id": job_id, "limits": limits}).encode()],
                                [job_read, result_write, output.fileno()])
            except OSError as exc:
                os.close(job_write)
                os.close(result_read)
                raise SandboxFailure(f"the grading worker is gone ({exc})") from None
            finally:
                os.close(job_read)
                os.close(result_write)
            try:  # _exchange closes job_write and result_read
                event, channel, overflow = self._exchange(payload, job_write, result_read,
                                                          float(limits["timeout"]) + BACKSTOP_S)
            except (SandboxFailure, ValueError) as exc:
                self.kill()
                raise SandboxFailure(f"the grading worker failed: {exc}") from None
            printed = _read_capped(output)
        finally:
            output.close()
        return _outcome(event, channel, overflow, printed)

    def _exchange(self, payload: bytes, job_write: int, result_read: int,
                  timeout: float) -> tuple[dict[str, Any], bytes, bool]:
        """Feed the job to the child, collect its channel, until the worker says how the child ended."""
        deadline = time.monotonic() + timeout
        chunks: list[bytes] = []
        received, overflow, sent = 0, False, 0
        os.set_blocking(job_write, False)
        selector = selectors.DefaultSelector()
        selector.register(self._events, selectors.EVENT_READ, "events")
        selector.register(result_read, selectors.EVENT_READ, "channel")
        selector.register(job_write, selectors.EVENT_WRITE, "job")
        open_fds = {job_write, result_read}
        event = None
        try:
            while event is None:
                event = self._complete_event()
                if event is not None:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SandboxFailure("the grading worker stopped answering")
                for key, _ in selector.select(remaining):
                    if key.data == "events":
                        chunk = os.read(self._events, 1 << 20)
                        if not chunk:
                            raise SandboxFailure("the grading worker exited")
                        self._buffer += chunk
                    elif key.data == "job":
                        try:
                            sent += os.write(job_write, payload[sent:sent + (1 << 16)])
                        except BlockingIOError:
                            continue
                        except OSError:  # the child is gone or stopped reading: it gets no more
                            sent = len(payload)
                        if sent >= len(payload):
                            selector.unregister(job_write)
                            os.close(job_write)
                            open_fds.discard(job_write)
                    elif key.data == "channel":
                        chunk = os.read(result_read, 1 << 16)
                        received += len(chunk)
                        if chunk and received <= CHANNEL_CAP_BYTES:
                            chunks.append(chunk)
                            continue
                        selector.unregister(result_read)
                        os.close(result_read)
                        open_fds.discard(result_read)
                        if chunk:  # past the cap: the worker stops the child now
                            overflow = True
                            self._stop()
            if result_read in open_fds:  # every writer is dead now: what is left in the pipe, capped
                chunks.extend(_drain(result_read, CHANNEL_CAP_BYTES - received))
        finally:
            selector.close()
            for fd in open_fds:
                os.close(fd)
        return event, b"".join(chunks), overflow

    def _complete_event(self) -> dict[str, Any] | None:
        if b"\n" not in self._buffer:
            if len(self._buffer) > MAX_EVENT_BYTES:
                raise SandboxFailure("the grading worker spoke nonsense")
            return None
        line, _, self._buffer = self._buffer.partition(b"\n")
        event = json.loads(line)
        if not isinstance(event, dict) or event.get("event") != "finished":
            raise SandboxFailure(f"the grading worker answered {str(event)[:80]!r}")
        return event

    def _stop(self) -> None:
        try:
            self._socket.send(json.dumps({"stop": True}).encode())
        except OSError:
            pass

    def _command(self, message: dict[str, Any]) -> None:
        try:
            self._socket.send(json.dumps(message).encode())
        except OSError as exc:
            raise SandboxFailure(f"the grading worker is gone ({exc})") from None

    def _read_line(self, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self._events], [], [], max(0.0, remaining))
            if not ready:
                raise SandboxFailure("the grading worker stopped answering")
            chunk = os.read(self._events, 1 << 20)
            if not chunk:
                raise SandboxFailure("the grading worker exited")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _socketpair() -> tuple[socket.socket, socket.socket]:
    """A message-preserving unix socket pair (one control message, with its descriptors, per job)."""
    try:
        return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    except (AttributeError, OSError):  # macOS has no SOCK_SEQPACKET pairs
        return socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)


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


def _read_capped(output: Any) -> str:
    """The head of what the child printed, and how much there was in all."""
    try:
        size = os.fstat(output.fileno()).st_size
        output.seek(0)
        data = output.read(OUTPUT_CAP_BYTES + 1)
    except OSError:
        return ""
    text = data[:OUTPUT_CAP_BYTES].decode("utf-8", "replace")
    if size > OUTPUT_CAP_BYTES:
        text += f"\n[... output truncated: {size} bytes in all]"
    return text


def _outcome(event: dict[str, Any], raw: bytes, overflow: bool, output: str) -> Outcome:
    channel_error = None
    try:
        messages = tuple(decode(raw))
    except ChannelError as exc:
        messages, channel_error = (), str(exc)
    if overflow:
        channel_error = "the submission sent more result data than the grader accepts"
    return Outcome(
        messages=messages,
        channel_error=channel_error,
        exit_code=event.get("exit_code"),
        signal=event.get("signal"),
        timed_out=bool(event.get("timed_out")),
        memory_exceeded=bool(event.get("memory_exceeded")),
        overflow=overflow,
        output=output,
        duration_s=float(event.get("duration_s", 0.0)),
        peak_rss_mib=float(event.get("peak_rss_mib", 0.0)),
    )
