"""The trusted parent's handle on a zygote: start it early, send it jobs, get back raw, unparsed outcomes.

A `ZygoteClient` is started before the parent does anything else, so that torch's import in the worker
overlaps the parent's own start-up. The parent never imports torch, never unpickles, and never reads a
submission's stdout as data.
"""

from __future__ import annotations

import base64
import contextlib
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
from typing import Any, Self

from grader.model.job import Job
from grader.sandbox import protocol, tiers
from grader.sandbox.channel import MAX_CHANNEL_BYTES, encode
from grader.sandbox.control import Config, Finished, JobControl, Stop
from grader.sandbox.messages import Phase
from grader.sandbox.protocol import OUTPUT_CAP_BYTES, Outcome, SandboxFailure, decode_capped, decode_event
from grader.sandbox.rlimits import scrubbed_environment

START_TIMEOUT_S = 120.0  # a cold torch import on a loaded machine can take tens of seconds
BACKSTOP_S = 15.0  # beyond the job's own timeout, before the parent gives up on the worker itself
SANDBOX_CHOICES = tiers.choices()  # "auto", "namespaces", "userns", "process", "none": the registered tiers
CHANNEL_CAP_BYTES = MAX_CHANNEL_BYTES + 1  # one byte over the decoder's limit, so it can say "too much"
MAX_EVENT_BYTES = 1 << 16


_job_ids = itertools.count(1)


class ZygoteClient:
    """One pre-warmed worker process. Not thread-safe: one job at a time.

    The worker never sees a job's bytes or its results: for each job this side makes the pipes, passes
    their ends over a unix socket, writes the job into the child's pipe and reads the child's channel and
    output itself (see zygote.py).
    """

    def __init__(self, framework: str, want_cuda: bool = False, sandbox: str = "auto", cgroups: bool = True,
                 die_with_parent: bool = False):
        """`sandbox`: "auto" picks the strongest tier that works here; "namespaces" (as root, else through a
        user namespace) and "userns" (always through a user namespace, as a non-root grader gets them) make
        info() raise SandboxFailure where they cannot be had; "process" and "none" ask for a weaker one.
        `cgroups=False` does without cgroups even where they are delegated (RSS watchdog, RLIMIT_NPROC).

        Without a parent the worker exits as soon as it next reads its socket (idle, or watching a job). With
        `die_with_parent` it is also sent SIGTERM the moment the thread that started it ends, through
        PR_SET_PDEATHSIG (Linux), even while it is still importing torch: for a parent that can be killed
        at any time and whose starting thread lives as long as the process (a Dask worker's)."""
        if sandbox not in tiers.choices():
            raise ValueError(f"unknown sandbox tier {sandbox!r}")
        self.framework = framework
        self.want_cuda = want_cuda
        self.sandbox = sandbox
        env = scrubbed_environment(os.environ.get("TMPDIR", "/tmp"))
        env["TMPDIR"] = os.environ.get("TMPDIR", "/tmp")
        self._socket, theirs = _socketpair()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-m", "grader.sandbox.zygote", str(theirs.fileno()),
                 *([str(os.getpid())] if die_with_parent else [])],
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
        self._command(Config(framework, want_cuda, sandbox, cgroups))
        self._info: dict[str, Any] | None = None

    # ---- lifecycle
    def info(self) -> dict[str, Any]:
        """Wait until the worker has imported what it needs; returns what it found (torch, cuda)."""
        if self._info is None:
            line = self._read_line(START_TIMEOUT_S)
            info = protocol.ready(json.loads(line))
            reached = protocol.Ready.from_wire(info).tier
            required = tiers.insisted(self.sandbox)
            if required is not None and not tiers.at_least(reached, required.name):
                notes = "; ".join(protocol.Ready.from_wire(info).notes)
                self.kill()
                raise SandboxFailure(f"the {required.name} sandbox tier was required, but this worker only "
                                     f"reaches {reached!r} ({notes or f'no {required.name} here'})")
            self._info = info
        return self._info

    def release(self) -> None:
        """No more jobs: the worker exits on its own (close() still waits for it)."""
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)

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
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    @property
    def tier(self) -> str:
        """The tier every job of this worker runs at (decided by trying it when the worker started)."""
        return protocol.Ready.from_wire(self.info()).tier

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    # ---- jobs
    def run(self, job: Job) -> Outcome:
        return decode_event(self.run_raw(job))

    def run_raw(self, job: Job) -> dict[str, Any]:
        """Run one job and return what came back as plain JSON data, undecoded: the worker's finished event
        with the channel's bytes and the output (base64). A grading machine of a cluster ships this back to
        the trusted process, which decodes and validates it with `decode_event`, as `run` does here. Raises
        SandboxFailure (and kills the worker) when the worker broke."""
        self.info()
        job_id = f"{os.getpid()}-{next(_job_ids)}"
        limits = job.limits.as_job()
        hidden = job.hidden_part()  # the hidden checks' calls (and their counterfactual calls): held back
        payload = json.dumps(job.for_child(job_id).to_wire()).encode() + b"\n"
        later = json.dumps(hidden.to_wire()).encode() + b"\n" if hidden is not None else b""
        job_read, job_write = os.pipe()
        result_read, result_write = os.pipe()
        output = tempfile.TemporaryFile(prefix="grader-output-")  # noqa: SIM115 - closed below
        try:
            try:
                socket.send_fds(self._socket, [json.dumps(JobControl(job_id, job.limits).to_wire()).encode()],
                                [job_read, result_write, output.fileno()])
            except OSError as exc:
                os.close(job_write)
                os.close(result_read)
                raise SandboxFailure(f"the grading worker is gone ({exc})") from None
            finally:
                os.close(job_read)
                os.close(result_write)
            exchange = _Exchange(payload, later, output)
            try:  # it closes job_write and result_read
                event = self._exchange(exchange, job_write, result_read, float(limits["timeout"]) + BACKSTOP_S)
            except (SandboxFailure, ValueError) as exc:
                self.kill()
                raise SandboxFailure(f"the grading worker failed: {exc}") from None
            if exchange.visible is None:  # the hidden checks never started: all of it was printed in view
                exchange.visible = _read_head(output)
                hidden_text = ""
            else:
                hidden_text = decode_capped(*_read_head(output, exchange.visible[1]))
        finally:
            output.close()
        return {**event.to_wire(), "channel": base64.b64encode(b"".join(exchange.chunks)).decode("ascii"),
                "overflow": exchange.overflow, "visible_output": base64.b64encode(exchange.visible[0]).decode("ascii"),
                "visible_size": exchange.visible[1], "hidden_output": hidden_text}

    def _exchange(self, exchange: _Exchange, job_write: int, result_read: int, timeout: float) -> Finished:
        """Feed the job to the child, collect its channel, until the worker says how the child ended."""
        deadline = time.monotonic() + timeout
        os.set_blocking(job_write, False)
        selector = selectors.DefaultSelector()
        selector.register(self._events, selectors.EVENT_READ, "events")
        selector.register(result_read, selectors.EVENT_READ, "channel")
        selector.register(job_write, selectors.EVENT_WRITE, "job")
        open_fds = {job_write, result_read}
        writing = True

        def close(fd: int) -> None:
            selector.unregister(fd)
            os.close(fd)
            open_fds.discard(fd)

        try:
            while True:
                event = self._complete_event()
                if event is not None:
                    break
                if not writing and exchange.pending and job_write in open_fds:
                    selector.register(job_write, selectors.EVENT_WRITE, "job")  # the hidden checks' turn
                    writing = True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SandboxFailure("the grading worker stopped answering")
                for key, _ in selector.select(remaining):
                    if key.data == "events":
                        chunk = os.read(self._events, 1 << 20)
                        if not chunk:
                            raise SandboxFailure("the grading worker exited")
                        self._buffer += chunk
                    elif key.data == "job" and job_write in open_fds:
                        if not exchange.write(job_write):
                            continue
                        if exchange.finished_writing:
                            close(job_write)
                        else:  # until the child asks for the hidden checks
                            selector.unregister(job_write)
                            writing = False
                    elif key.data == "channel" and result_read in open_fds:
                        chunk = os.read(result_read, 1 << 16)
                        if not chunk:
                            close(result_read)
                        elif not exchange.received(chunk):
                            close(result_read)
                            self._stop()  # past the cap: the worker stops the child now
            if result_read in open_fds:  # every writer is dead now: what is left in the pipe, capped
                for chunk in _drain(result_read, CHANNEL_CAP_BYTES - exchange.size):
                    exchange.received(chunk)
        finally:
            selector.close()
            for fd in open_fds:
                os.close(fd)
        return event

    def _complete_event(self) -> Finished | None:
        if b"\n" not in self._buffer:
            if len(self._buffer) > MAX_EVENT_BYTES:
                raise SandboxFailure("the grading worker spoke nonsense")
            return None
        line, _, self._buffer = self._buffer.partition(b"\n")
        return protocol.finished(json.loads(line))

    def _stop(self) -> None:
        with contextlib.suppress(OSError):
            self._socket.send(json.dumps(Stop().to_wire()).encode())

    def _command(self, message: Config) -> None:
        try:
            self._socket.send(json.dumps(message.to_wire()).encode())
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


PHASE_LINE = encode(Phase().to_wire())  # the line the harness writes when the visible checks are done


class _Exchange:
    """One job's traffic: the job's bytes still to write, and the channel's bytes received so far.

    The hidden checks' part of the job (`later`) is held back until the child's channel says the visible
    checks are done (PHASE_LINE after a newline); at that moment everything printed so far is read and set
    aside as the visible output, so nothing printed with the hidden inputs in hand can be shown to the student.
    """

    def __init__(self, payload: bytes, later: bytes, output: Any):
        self.pending, self.later, self.output = payload, later, output
        self.chunks: list[bytes] = []
        self.size = 0
        self.overflow = False
        self.tail = b""
        self.visible: tuple[bytes, int] | None = None  # (head of the visible output, its size in all)

    @property
    def finished_writing(self) -> bool:
        return not self.pending and (not self.later or self.visible is not None)

    def write(self, fd: int) -> bool:
        try:
            written = os.write(fd, self.pending[:1 << 16])
        except BlockingIOError:
            return False
        except OSError:  # the child is gone or stopped reading: it gets no more
            written = len(self.pending)
            self.later = b"" if self.visible is None else self.later
        self.pending = self.pending[written:]
        return True

    def received(self, chunk: bytes) -> bool:
        """Keep `chunk`; False once the channel is past its cap (the rest is not read)."""
        self.size += len(chunk)
        if self.size > CHANNEL_CAP_BYTES:
            self.overflow = True
            return False
        self.chunks.append(chunk)
        if self.later and self.visible is None and PHASE_LINE in (self.tail + chunk):
            window = self.tail + chunk
            at = window.find(PHASE_LINE)
            if at > 0 and window[at - 1:at] == b"\n":
                self.visible = _read_head(self.output)
                self.pending, self.later = self.pending + self.later, b""
        self.tail = (self.tail + chunk)[-len(PHASE_LINE) - 1:]
        return True


def _read_head(output: Any, start: int = 0) -> tuple[bytes, int]:
    """Up to OUTPUT_CAP_BYTES + 1 of the output file from `start`, and the file's size past `start`."""
    try:
        size = os.fstat(output.fileno()).st_size
        output.seek(start)
        return output.read(OUTPUT_CAP_BYTES + 1), max(0, size - start) if start else size
    except (OSError, ValueError):
        return b"", 0


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
