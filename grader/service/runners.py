"""Grading runners: the processes in which `grade serve` grades, apart from the process that answers HTTP.

`grade serve --jobs N` starts N runners (with `--scheduler`, one runner holding the cluster's slots). Each
is a fresh interpreter (`python -m grader.service.runners`, started by exec: it holds no reference or result
of its parent) that leases jobs from the database itself, exactly as the service process did: its own
lease owner, its own heartbeat, its own executor (grader/execution/executor.py: `LocalExecutor` with warm, sandboxed
zygotes, or `DaskExecutor`), and it stores each report (with its webhook, in one transaction) before the
job counts as done. The database stays the record and the queue; the API process only stores submissions,
answers and serves pages, so its interpreter's GIL never waits on a grading parent's comparing and scoring.

Between the API process (the parent) and a runner there are two pipes and no shared state:
- the runner's stdin: one line of JSON (the RunnerSpec, the webhook secret in it: never in argv or the
  environment, which the sandboxed children must not see), then one byte per new submission (a wake-up,
  so an idle runner claims it at once instead of at its next poll); end of file means the parent is gone.
- the runner's stdout: JSON lines for the parent's /healthz and /metrics: `{"healthy": bool}` and
  `{"graded_s": seconds}` per stored report.

A runner outlives nothing: it asks the kernel for SIGTERM when its parent dies (PR_SET_PDEATHSIG), and
watches its stdin for end of file as well (a parent killed with SIGKILL is noticed either way). Stopping
(SIGTERM, or the parent gone), it stops claiming, hands the jobs it holds back to the queue (the attempt
not counted) and kills its zygotes; a watchdog ends it after STOP_GRACE_S whatever it was waiting for. A
runner killed outright (SIGKILL, the OOM killer) loses nothing either: its leases expire and another
runner requeues its job, and the parent starts a new runner in its place.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from grader.grading import pipeline as grading
from grader.sandbox.proctree import die_with_parent

log = logging.getLogger("grader.service")
STOP_GRACE_S = 20.0  # a stopping runner that has not exited by then ends itself (os._exit)


@dataclass(frozen=True)
class RunnerSpec:
    """What one runner needs to know, sent as the first line of its stdin."""

    db_url: str | None
    slots: int
    index: int
    secret: str
    device: str = "auto"
    timeout: float = grading.DEFAULT_TIMEOUT_S
    memory_mib: int = grading.DEFAULT_MEMORY_MIB
    scheduler: str | None = None  # a Dask scheduler's address: grade on the cluster instead of local zygotes
    webhooks: bool = False  # deliver the outbox's callbacks (one runner per service does: no double posts)
    nice: int = 0  # added to the runner's niceness (its zygotes inherit it): the API answers first

    def line(self) -> bytes:
        return (json.dumps(asdict(self)) + "\n").encode("utf-8")

    @classmethod
    def from_line(cls, line: bytes) -> RunnerSpec:
        return cls(**json.loads(line))

    @property
    def limits(self) -> grading.Limits:
        return grading.Limits(timeout=self.timeout, memory_mib=self.memory_mib)


def build_executor(spec: RunnerSpec) -> Any:
    """The executor a runner grades on: the interface (grader/execution/executor.py) is the same for both kinds."""
    if spec.scheduler:
        from grader.execution.cluster import DaskExecutor

        return DaskExecutor(spec.scheduler, spec.slots, device=spec.device, prewarm="ex03")
    from grader.execution.executor import LocalExecutor
    from grader.sandbox.client import ZygoteClient

    if not spec.nice:
        return LocalExecutor(spec.slots, device=spec.device, prewarm="ex03")

    def nicer_zygote(*args: Any, **kwargs: Any) -> ZygoteClient:
        """A zygote inherits the runner's niceness, but it starts a session of its own, and where the kernel
        groups the scheduling by session (autogroup: desktops, shells) that niceness counts only inside
        its group: the group's own niceness is what makes the sandboxed children yield to the API."""
        zygote = ZygoteClient(*args, **kwargs)
        with contextlib.suppress(OSError), open(f"/proc/{zygote.process.pid}/autogroup", "w") as autogroup:
            autogroup.write(str(spec.nice))
        return zygote

    return LocalExecutor(spec.slots, device=spec.device, prewarm="ex03", factory=nicer_zygote)


class Relay:
    """The runner's side of its stdout pipe (several threads write; a parent that is gone stops the runner)."""

    def __init__(self, stop: threading.Event):
        self.stop = stop
        self._lock = threading.Lock()
        self._out = sys.stdout.buffer

    def send(self, **message: Any) -> None:
        data = (json.dumps(message) + "\n").encode("utf-8")
        with self._lock:
            try:
                self._out.write(data)
                self._out.flush()
            except (OSError, ValueError):
                self.stop.set()

    def observe(self, seconds: float) -> None:  # stands in for the latency histogram (it lives in the parent)
        self.send(graded_s=round(seconds, 4))


def _watch_parent(stop: threading.Event, wake: threading.Event) -> None:
    stdin = sys.stdin.buffer.raw if hasattr(sys.stdin.buffer, "raw") else sys.stdin.buffer
    while True:
        try:
            data = os.read(stdin.fileno(), 4096)
        except InterruptedError:
            continue
        except OSError:
            data = b""
        if not data:
            if not stop.is_set():
                log.warning("grading runner %d: grade serve is gone; stopping", os.getpid())
            stop.set()
            wake.set()
            return
        wake.set()


def main(argv: list[str]) -> int:
    parent = int(argv[1]) if len(argv) > 1 else os.getppid()
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the parent's to handle: it stops us
    import faulthandler

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 PID`: every thread's stack, on stderr
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    line = sys.stdin.buffer.readline()
    if not line:
        return 0
    spec = RunnerSpec.from_line(line)
    logging.basicConfig(level=logging.INFO,
                        format=f"%(asctime)s %(name)s[runner {spec.index}] %(levelname)s %(message)s")
    if spec.nice:
        with contextlib.suppress(OSError):
            os.nice(spec.nice)

    from grader.execution.executor import ExecutorGone
    from grader.service.db import make_engine
    from grader.service.dispatcher import Dispatcher, Metrics, Timing
    from grader.service.store import Store

    relay = Relay(stop)
    engine = make_engine(spec.db_url)  # the parent migrated the database before starting us
    try:
        executor = build_executor(spec)
    except (ExecutorGone, ValueError, OSError) as exc:  # a cluster gone or refused: the parent tries again later
        log.error("grading runner %d cannot grade: %s", os.getpid(), " ".join(str(exc).split())[:300])
        return 3
    gc.collect()
    gc.freeze()  # the modules and the warm-up's objects: out of the collector's sight (a full pass is ~0.1 s)
    metrics = Metrics()
    metrics.latency = relay  # the parent keeps the histogram: each stored report's time goes up the pipe
    dispatcher = Dispatcher(Store(engine), executor, spec.secret, Timing.from_environment(), metrics, spec.limits,
                            webhooks=spec.webhooks)
    threading.Thread(target=_watch_parent, args=(stop, dispatcher.wake), name="grade-parent", daemon=True).start()
    dispatcher.start()
    reported: bool | None = None
    last = 0.0
    while not stop.wait(0.5):
        healthy = bool(executor.healthy())
        if healthy != reported or time.monotonic() - last > 5:
            relay.send(healthy=healthy)
            reported, last = healthy, time.monotonic()
    log.info("grading runner %d stopping: its jobs go back to the queue", os.getpid())
    watchdog = threading.Timer(STOP_GRACE_S, os._exit, (1,))
    watchdog.daemon = True
    watchdog.start()
    dispatcher.close()  # stops claiming; the jobs this runner holds go back to the queue
    executor.close(wait=False)
    engine.dispose()
    return 0


# ---- in the API process: start, watch, restart and stop the runners

class Runners:
    """The grading runners of one `grade serve`. One supervising thread starts them (PR_SET_PDEATHSIG is
    tied to the thread that started a child: this one lives until close), reads their reports, and starts
    a new runner in place of one that exited, after a back-off when they keep dying young."""

    def __init__(self, specs: list[RunnerSpec], on_graded: Callable[[float], None] | None = None):
        self.specs = specs
        self.on_graded = on_graded or (lambda seconds: None)
        self._processes: list[subprocess.Popen | None] = [None] * len(specs)
        self._healthy = [False] * len(specs)
        self._lock = threading.Lock()  # guards the processes' stdin (wake-ups) against their closing
        self._stop = threading.Event()
        self._up = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="grade-runners", daemon=True)

    @property
    def capacity(self) -> int:
        return sum(spec.slots for spec in self.specs)

    def start(self) -> None:
        self._thread.start()
        self._up.wait(60)

    def pids(self) -> list[int]:
        return [p.pid for p in self._processes if p is not None and p.poll() is None]

    def healthy(self) -> bool:
        """At least one runner is alive and says a warm worker answers."""
        return any(p is not None and p.poll() is None and ok for p, ok in zip(self._processes, self._healthy,
                                                                               strict=True))

    def wake(self) -> None:
        """A new job: every idle runner looks at the queue now (one byte down each stdin; never blocks)."""
        with self._lock:
            for process in self._processes:
                if process is None or process.stdin is None or process.stdin.closed:
                    continue
                with contextlib.suppress(OSError, ValueError):
                    process.stdin.write(b"w")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=STOP_GRACE_S + 15)

    def _spawn(self, index: int) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-m", "grader.service.runners", str(os.getpid())],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, close_fds=True,
                                   process_group=0)  # a terminal's Ctrl-C reaches us, and we stop them
        with contextlib.suppress(OSError):  # it died at once: the supervisor sees it exit
            process.stdin.write(self.specs[index].line())
        os.set_blocking(process.stdin.fileno(), False)
        log.info("grading runner %d started (pid %d, %d slot%s)", index, process.pid, self.specs[index].slots,
                 "" if self.specs[index].slots == 1 else "s")
        return process

    def _supervise(self) -> None:
        selector = selectors.DefaultSelector()
        buffers: dict[int, bytes] = {}
        started = [0.0] * len(self.specs)
        failures = [0] * len(self.specs)
        due = [0.0] * len(self.specs)  # when a runner that exited is started again

        def start(index: int) -> None:
            process = self._spawn(index)
            with self._lock:
                self._processes[index] = process
            self._healthy[index] = False
            buffers[index] = b""
            started[index] = time.monotonic()
            selector.register(process.stdout, selectors.EVENT_READ, index)

        try:
            for index in range(len(self.specs)):
                start(index)
            self._up.set()
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=0.25):
                    index = key.data
                    data = b""
                    with contextlib.suppress(OSError):
                        data = os.read(key.fd, 65536)
                    if not data:
                        selector.unregister(key.fileobj)
                        continue
                    *lines, buffers[index] = (buffers[index] + data).split(b"\n")
                    for line in lines:
                        self._message(index, line)
                now = time.monotonic()
                for index, process in enumerate(self._processes):
                    if process is None:
                        if now >= due[index] and not self._stop.is_set():
                            start(index)
                        continue
                    if process.poll() is None:
                        continue
                    with contextlib.suppress(KeyError, ValueError):
                        selector.unregister(process.stdout)
                    self._forget(index)
                    lived = now - started[index]
                    failures[index] = failures[index] + 1 if lived < 30 else 0
                    delay = min(30.0, 0.5 * 2 ** failures[index])
                    due[index] = now + delay
                    log.warning("grading runner %d (pid %d) exited with %s after %.0f s; starting another in %.1f s "
                                "(its jobs go back to the queue when their leases run out)", index, process.pid,
                                _exit_status(process.returncode), lived, delay)
        finally:
            self._up.set()
            self._stop_all()
            selector.close()

    def _message(self, index: int, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            return
        if "healthy" in message:
            self._healthy[index] = bool(message["healthy"])
        if isinstance(message.get("graded_s"), int | float):
            self.on_graded(float(message["graded_s"]))

    def _forget(self, index: int) -> None:
        with self._lock:
            process, self._processes[index] = self._processes[index], None
        self._healthy[index] = False
        if process is not None:
            for stream in (process.stdin, process.stdout):
                with contextlib.suppress(OSError):
                    stream.close()

    def _stop_all(self) -> None:
        """SIGTERM to every runner (each hands its jobs back and exits), then SIGKILL to any still there."""
        running = [p for p in self._processes if p is not None and p.poll() is None]
        for process in running:
            with contextlib.suppress(OSError):
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S + 5
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("grading runner (pid %d) did not stop; killing it", process.pid)
                with contextlib.suppress(OSError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for index in range(len(self._processes)):
            self._forget(index)


def _exit_status(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return signal.Signals(-code).name
    return f"status {code}"


if __name__ == "__main__":
    sys.exit(main(sys.argv))
