"""Grading past one machine, on a Dask distributed cluster (needs the `dask` extra).

Two halves, one module:

- **On each grading machine** (`dask worker ADDRESS --preload grader.distributed`): a worker plugin keeps
  this machine's pre-warmed, sandboxed zygotes (started by exec with `subprocess.Popen`, so a daemonic Dask
  worker process can start them), one per worker thread and framework. The task `run_job` runs one zygote
  job and returns the child's finished event undecoded (channel bytes in base64, exit status, signal, flags,
  output). A Dask task carries only the zygote's job (the submission's cells, the probe code, the inputs and
  the limits): never a reference, never a score.
- **In the trusted process** (`grade batch --scheduler`, `grade serve --scheduler`): one route, `DaskExecutor`,
  the executor interface whose slots hold `DaskWorker` handles. A `DaskWorker` has the public interface of
  `ZygoteClient` (info, run → Outcome, tier, alive, close, kill); its `run` sends the job to the cluster and
  decodes the event with the same parent-side decoder as local grading, so `grading.grade(..., worker=...)`
  works unchanged, and the references, the comparing and the scoring never leave this process.

Faults: a Dask worker that dies under a job has its task run again elsewhere by the scheduler, up to
`distributed.scheduler.allowed-failures` times; a job that ends every worker it touches then raises
`KilledWorker`, which becomes a graded failure (a report marked grader-failure), never a traceback. A
scheduler that cannot be reached raises `ExecutorGone`: the batch stops, keeps every report it wrote, and a
re-run resumes; the service's executor (`hold=True`) holds its jobs, reconnects every second, and runs them
again once a scheduler with workers answers at the same address.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import CancelledError
from contextlib import contextmanager, suppress
from typing import Any

from distributed import Client, KilledWorker, WorkerPlugin, get_worker

from grader import __version__
from grader.course import exercises
from grader.execution.executor import ExecutorGone, Job, JobOutcome, LocalExecutor
from grader.execution.streams import QuickStreams, quicker
from grader.model.job import Job as WireJob
from grader.sandbox import tiers
from grader.sandbox.client import START_TIMEOUT_S, Outcome, SandboxFailure, ZygoteClient, decode_event
from grader.sandbox.protocol import Ready
from grader.sandbox.tiers import Tier

log = logging.getLogger("grader.distributed")
PLUGIN_NAME = "dl-grader"
CONNECT_TIMEOUT_S = 10.0
WORKERS_TIMEOUT_S = 60.0  # how long a batch waits for the first worker to join


class ClusterRefused(ValueError):
    """The cluster cannot grade this batch as asked (no workers, another grader version, a weaker sandbox
    than --require-sandbox): a usage error, one line."""


# ---- on the grading machine (the Dask worker process: trusted, holds no reference)

class GradingPlugin(WorkerPlugin):
    """This machine's warm zygotes: one per worker thread for each framework, started when the worker starts."""

    name = PLUGIN_NAME

    def __init__(self, sandbox: str | None = None, prewarm: tuple[str, ...] = ("torch",)):
        self.sandbox = sandbox or os.environ.get("GRADE_WORKER_SANDBOX", "auto")
        self.prewarm = prewarm
        self._idle: dict[tuple[str, bool], list[ZygoteClient]] = {}
        self._all: list[ZygoteClient] = []
        self._lock = threading.Lock()
        self.nthreads = 1

    def setup(self, worker: Any = None) -> None:
        self.nthreads = max(1, int(getattr(worker, "nthreads", 1) or 1))
        for framework in self.prewarm:  # their torch imports start now, side by side
            for _ in range(self.nthreads):
                self._give_back(self._start(framework, False))

    def teardown(self, worker: Any = None) -> None:
        with self._lock:
            zygotes, self._all, self._idle = self._all, [], {}
        for zygote in zygotes:
            zygote.release()  # all at once: each exits on its own while the next is told
        for zygote in zygotes:
            zygote.close()

    def _start(self, framework: str, want_cuda: bool) -> ZygoteClient:
        # die_with_parent: a Dask worker may be SIGKILLed (or its nanny kill it) at any time, even while this
        # zygote still imports torch; it starts zygotes from its event loop and its task threads, which last
        # as long as the worker process.
        zygote = ZygoteClient(framework, want_cuda, sandbox=self.sandbox, die_with_parent=True)
        with self._lock:
            self._all.append(zygote)
        return zygote

    def _give_back(self, zygote: ZygoteClient) -> None:
        with self._lock:
            if zygote.alive and zygote in self._all:
                self._idle.setdefault((zygote.framework, zygote.want_cuda), []).append(zygote)
            elif zygote in self._all:
                self._all.remove(zygote)

    @contextmanager
    def zygote(self, framework: str, want_cuda: bool) -> Iterator[ZygoteClient]:
        """A warm zygote for this thread alone (ZygoteClient is not thread-safe), given back afterwards."""
        with self._lock:
            idle = self._idle.get((framework, want_cuda), [])
            while idle and not idle[-1].alive:
                self._all.remove(idle.pop())
            zygote = idle.pop() if idle else None
        if zygote is None:
            zygote = self._start(framework, want_cuda)
        try:
            yield zygote
        finally:
            self._give_back(zygote)


def _plugin() -> GradingPlugin:
    """The worker's plugin; a worker started without the preload gets one now (cold: its first job waits)."""
    worker = get_worker()
    with _PLUGIN_LOCK:
        plugin = worker.plugins.get(PLUGIN_NAME)
        if plugin is None:
            plugin = GradingPlugin(prewarm=())
            plugin.setup(worker)
            worker.plugins[PLUGIN_NAME] = plugin  # torn down with the worker
    return plugin


_PLUGIN_LOCK = threading.Lock()


async def dask_setup(server: Any) -> None:
    """`dask worker ADDRESS --preload grader.distributed`: warm zygotes on this machine from the start.
    GRADE_WORKER_SANDBOX (auto | namespaces | userns | process | none) picks their tier.
    `dask scheduler --preload grader.distributed` (optional) shortens the scheduler's streams to its workers."""
    from distributed import Scheduler

    if isinstance(server, Scheduler):
        server.add_plugin(QuickStreams(), name=f"{PLUGIN_NAME}-streams")
        return
    quicker(getattr(server, "batched_stream", None))
    await server.plugin_add(GradingPlugin(), name=PLUGIN_NAME)


def _tier(info: dict[str, Any]) -> str:
    return Ready.from_wire(info).tier


def describe(framework: str, want_cuda: bool) -> dict[str, Any]:
    """(a task) What this grading machine offers: its grader version, its zygote's info and sandbox tier."""
    with _plugin().zygote(framework, want_cuda) as zygote:
        try:
            info = zygote.info()
        except SandboxFailure as exc:  # it cannot start here (or not at the tier this worker insists on)
            zygote.kill()
            return {"address": get_worker().address, "grader_version": __version__, "info": {},
                    "tier": Tier.UNAVAILABLE.value, "problem": str(exc)}
    return {"address": get_worker().address, "grader_version": __version__, "info": info, "tier": _tier(info)}


def run_job(framework: str, want_cuda: bool, job: dict[str, Any], require_tier: str | None = None,
            grader_version: str | None = None) -> dict[str, Any]:
    """(a task) Run one zygote job (its wire form, model.job.Job) here and return {"event": the raw finished
    event, "tier": ...}, or {"failure": why} when this machine's worker broke twice (or cannot grade at the tier
    asked for)."""
    if grader_version and grader_version != __version__:
        return {"failure": f"this grading machine runs grader {__version__}, the batch {grader_version}"}
    try:
        typed = WireJob.from_wire(job)
    except ValueError as exc:
        return {"failure": f"this grading machine could not read the job ({exc})"}
    why = "the grading worker failed"
    for _ in (1, 2):  # a zygote that died under the job is replaced and the job tried once more, as locally
        with _plugin().zygote(framework, want_cuda) as zygote:
            try:
                info = zygote.info()
                if require_tier and _tier(info) != require_tier:
                    zygote.kill()
                    return {"failure": f"this grading machine reaches the {_tier(info)!r} sandbox tier, "
                                       f"not {require_tier!r}"}
                return {"event": zygote.run_raw(typed), "tier": _tier(info), "worker": get_worker().address}
            except SandboxFailure as exc:
                zygote.kill()
                why = str(exc)
    return {"failure": why}


def echo(job: dict[str, Any]) -> int:
    """(a task) A job's size, nothing run: the cluster's own per-task cost, as benchmarks/dask_overhead.py
    measures it (a function of this module, so it travels by name like run_job, not pickled by value)."""
    return len(json.dumps(job))


# ---- in the trusted process (batch or service): a client of the scheduler

class DaskPool:
    """One connection to a Dask scheduler, shared by every `DaskWorker` of a batch or service."""

    def __init__(self, address: str, *, sandbox: str = "auto", security: Any = None,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S, workers_timeout_s: float = WORKERS_TIMEOUT_S):
        self.address = address
        required = tiers.insisted(sandbox)
        self.require_tier = str(required.name) if required is not None else None
        self.workers_timeout_s = workers_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._info: dict[tuple[str, bool], dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._connecting = threading.Lock()
        if address.startswith("tls://"):
            from distributed.security import Security

            security = security or Security()  # from the dask config: DASK_DISTRIBUTED__COMM__TLS__...
            if security.get_connection_args("client").get("ssl_context") is None:
                raise ClusterRefused(f"{address} needs this grader's TLS certificate: set "
                                     "DASK_DISTRIBUTED__COMM__TLS__CA_FILE, DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT "
                                     "and DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY")
        self.security = security
        self.client = self._connect()

    def _connect(self) -> Client:
        try:
            client = Client(self.address, timeout=self.connect_timeout_s, security=self.security,
                            set_as_default=False)
        except Exception as exc:  # noqa: BLE001 - OSError, TimeoutError, a bad address: one line either way
            raise ExecutorGone(f"cannot reach the Dask scheduler at {self.address}: {_one_line(exc)}") from None
        quicker(client.scheduler_comm)
        return client

    def alive(self) -> bool:
        return self.client.status == "running"

    def reconnect(self) -> bool:
        """A new client in place of one whose scheduler went away (Dask's own gives up after its connect
        timeout, and a restarted scheduler has new workers to check). True once connected."""
        with self._connecting:
            if self.alive():
                return True
            old = self.client
            with suppress(Exception):
                old.close(timeout=2)
            try:
                client = self._connect()
            except ExecutorGone:
                return False
            with self._lock:
                self._info.clear()
                self.client = client
            return True

    def nthreads(self) -> dict[str, int]:
        try:
            return dict(self.client.nthreads())
        except Exception as exc:  # noqa: BLE001
            raise ExecutorGone(f"lost the Dask scheduler at {self.address}: {_one_line(exc)}") from None

    def slots(self) -> int:
        """How many jobs to keep in flight: every worker thread busy, plus one waiting on each worker."""
        threads = self.nthreads()
        return max(1, sum(threads.values()) + len(threads))

    def check(self, framework: str, want_cuda: bool = False) -> dict[str, Any]:
        """Ask every worker now in the cluster what it offers; refuse the cluster if any cannot grade as
        asked. Returns the cluster's info as one zygote's: its weakest tier, and cuda only if all have it."""
        with self._lock:
            if (framework, want_cuda) in self._info:
                return self._info[(framework, want_cuda)]
            try:
                self.client.wait_for_workers(1, timeout=self.workers_timeout_s)
            except TimeoutError:
                raise ClusterRefused(f"the Dask scheduler at {self.address} has no workers; start one with "
                                     f"`dask worker {self.address} --preload grader.distributed`") from None
            except Exception as exc:  # noqa: BLE001
                raise ExecutorGone(f"lost the Dask scheduler at {self.address}: {_one_line(exc)}") from None
            answers = [self._result(self.client.submit(
                describe, framework, want_cuda, workers=[address], allow_other_workers=False, pure=False,
                key=f"grader-describe-{uuid.uuid4().hex}"), START_TIMEOUT_S + 30) for address in self.nthreads()]
            for answer in answers:
                if answer["grader_version"] != __version__:
                    raise ClusterRefused(f"the Dask worker {answer['address']} runs grader "
                                         f"{answer['grader_version']}, this one {__version__}; install the same "
                                         "version on every machine")
                if answer.get("problem"):
                    raise ClusterRefused(f"the Dask worker {answer['address']} cannot grade: {answer['problem']}")
                if self.require_tier and answer["tier"] != self.require_tier:
                    raise ClusterRefused(f"--require-sandbox: the Dask worker {answer['address']} reaches only the "
                                         f"{answer['tier']!r} sandbox tier, not {self.require_tier!r}")
            weakest = min(answers, key=lambda a: tiers.rank(a["tier"]))
            info = {**weakest["info"], "cuda": all(a["info"].get("cuda") for a in answers),
                    "workers": {a["address"]: a["tier"] for a in answers}}
            self._info[(framework, want_cuda)] = info
            return info

    def _result(self, future: Any, timeout: float | None = None) -> Any:
        try:
            return future.result(timeout=timeout)
        except (CancelledError, OSError, TimeoutError) as exc:
            raise ExecutorGone(f"lost the Dask scheduler at {self.address}: {_one_line(exc)}") from None

    def worker(self, framework: str, want_cuda: bool = False, sandbox: str = "auto") -> DaskWorker:
        """A `ZygoteClient`-like handle (the factory DaskExecutor's slots call)."""
        return DaskWorker(self, framework, want_cuda)

    def close(self) -> None:
        with suppress(Exception):  # the scheduler may be gone already
            self.client.close(timeout=5)


class DaskWorker:
    """The cluster, seen through ZygoteClient's public interface: one job at a time per handle."""

    def __init__(self, pool: DaskPool, framework: str, want_cuda: bool = False):
        self.pool = pool
        self.framework = framework
        self.want_cuda = want_cuda
        self._closed = False
        self._future: Any = None
        self._tier: str | None = None
        self.lost = False  # it raised ExecutorGone: the scheduler went away under it

    def info(self) -> dict[str, Any]:
        try:
            return self.pool.check(self.framework, self.want_cuda)
        except ExecutorGone:
            self.lost = True
            raise

    @property
    def tier(self) -> str:
        return self._tier or _tier(self.info())

    @property
    def alive(self) -> bool:
        return not self._closed and self.pool.alive()

    def run(self, job: WireJob) -> Outcome:
        return decode_event(self.run_raw(job))

    def run_raw(self, job: WireJob) -> dict[str, Any]:
        if self._closed:
            raise SandboxFailure("the grading worker was stopped")
        self.info()
        client = self.pool.client
        if client.status != "running":  # reconnecting: a task sent now would wait in its buffer
            self.lost = True
            raise ExecutorGone(f"lost the Dask scheduler at {self.pool.address}: not connected")
        quicker(client.scheduler_comm)  # a new stream after each of Dask's own reconnections
        try:
            future = client.submit(run_job, self.framework, self.want_cuda, job.to_wire(), self.pool.require_tier,
                                             __version__, pure=False,
                                             key=f"grade-{job.exercise or 'job'}-{uuid.uuid4().hex}")
        except Exception as exc:  # noqa: BLE001 - a client whose scheduler went away
            self.lost = True
            raise ExecutorGone(f"lost the Dask scheduler at {self.pool.address}: {_one_line(exc)}") from None
        self._future = future
        try:
            answer = _wait(future, client)
        except KilledWorker:
            raise SandboxFailure("this submission ended every grading machine it ran on; it was not tried "
                                 "again") from None
        except (CancelledError, OSError, TimeoutError) as exc:
            if self._closed:
                raise SandboxFailure("the grading worker was stopped") from None
            self.lost = True
            raise ExecutorGone(f"lost the Dask scheduler at {self.pool.address}: {_one_line(exc)}") from None
        except Exception as exc:  # noqa: BLE001 - the task itself broke on its machine
            raise SandboxFailure(f"the grading machine failed: {type(exc).__name__}: {_one_line(exc)}") from None
        finally:
            self._future = None
        if not isinstance(answer, dict) or not isinstance(answer.get("event", answer.get("failure")), dict | str):
            raise SandboxFailure("the grading machine answered something other than an event")
        if "failure" in answer:
            raise SandboxFailure(str(answer["failure"]))
        self._tier = str(answer.get("tier")) if answer.get("tier") else None
        return answer["event"]

    def release(self) -> None:
        """No more jobs (as ZygoteClient.release): nothing is held on the cluster between jobs."""

    def kill(self) -> None:
        """Stop waiting for the job in flight (its machine still ends it at its own timeout)."""
        self._closed = True
        future = self._future
        if future is not None:
            with suppress(Exception):  # the scheduler may be gone already
                future.cancel()

    def close(self) -> None:
        self.kill()


class DaskExecutor(LocalExecutor):
    """The one route to a Dask cluster, for `grade batch --scheduler` and `grade serve --scheduler` alike: the
    executor interface (submit a `Job`, get its `JobOutcome` with the report) over slots whose workers are
    `DaskWorker` handles, so the report is made here exactly as the local pool makes it.

    At start it refuses a cluster that cannot grade the exercises named (`prewarm` and `checks`: no workers,
    another grader version, a weaker sandbox than asked), and keeps `jobs` slots busy (default: every worker
    thread plus one waiting on each worker; at most `most_slots`). A job is tried once: the cluster itself
    runs a task again elsewhere when its machine dies.

    A scheduler that goes away is no submission's fault. With `hold=False` (a batch) the job's outcome
    carries `ExecutorGone` and the caller stops. With `hold=True` (the service) no job's outcome says it: a slot
    whose job lost the scheduler holds the job and runs it again once a scheduler with workers answers at the
    same address (a thread reconnects every `retry_s`; Dask workers exit with their scheduler, so whatever
    restarts the scheduler restarts them too). Meanwhile `healthy()` is False (the service's /healthz answers
    503), the service's heartbeat keeps the held jobs' leases, and the rest of its queue stays queued. Closing
    the executor ends the wait: the held jobs' outcomes are failures that a closing service has already handed
    back to its queue."""

    def __init__(self, address: str, jobs: int | None = None, *, device: str = "auto", sandbox: str = "auto",
                 prewarm: str | None = None, checks: Iterable[str] = (), most_slots: int | None = None,
                 hold: bool = True, security: Any = None, retry_s: float = 1.0):
        self.pool = DaskPool(address, sandbox=sandbox, security=security)
        try:
            for exercise_id in dict.fromkeys([*([prewarm] if prewarm else []), *checks]):  # refuse a bad cluster now
                self.pool.check(exercises.framework_of(exercise_id), device != "cpu")
            slots = jobs or self.pool.slots()
        except BaseException:
            self.pool.close()
            raise
        self._closing = threading.Event()
        self._hold = hold
        self._retry_s = retry_s
        super().__init__(max(1, min(slots, most_slots or slots)), device=device, sandbox=sandbox, prewarm=prewarm,
                         factory=self.pool.worker)
        self._reconnector = threading.Thread(target=self._reconnect_loop, daemon=True, name="grader-dask-reconnect")
        if hold:
            self._reconnector.start()

    def _run(self, slot: Any, job: Job) -> JobOutcome:
        while True:
            outcome = slot.run(job)
            if not self._hold:
                return outcome
            with slot.lock:
                handles = list(slot.workers.values())
            if not any(getattr(h, "lost", False) for h in handles) or self._closing.is_set():
                return outcome
            slot.close()  # fresh handles once the scheduler is back
            what = f"{job.path.parent.name}/{job.path.name}"
            log.warning("lost the Dask scheduler at %s; holding %s until a scheduler with workers answers there",
                        self.pool.address, what)
            while not self.healthy():
                if self._closing.wait(self._retry_s):
                    return outcome
            log.warning("the Dask scheduler at %s answers again; grading %s", self.pool.address, what)

    def _reconnect_loop(self) -> None:
        while not self._closing.wait(self._retry_s):
            if not self.pool.alive() and self.pool.reconnect():
                log.warning("reconnected to the Dask scheduler at %s", self.pool.address)

    def healthy(self) -> bool:
        try:
            return self.pool.alive() and bool(self.pool.nthreads())
        except ExecutorGone:
            return False

    def close(self, wait: bool = True) -> None:
        self._closing.set()
        super().close(wait)
        self.pool.close()


def _wait(future: Any, client: Client) -> Any:
    """The future's result; CancelledError if its client closes first (it may never say so otherwise)."""
    while True:
        try:
            return future.result(timeout=1.0)
        except TimeoutError:
            if client.status in ("closing", "closed"):
                raise CancelledError(f"the client is {client.status}") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]
