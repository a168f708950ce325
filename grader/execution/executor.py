"""Where grading jobs run: one small interface (submit a job, get its outcome, close) and its implementations.

`LocalExecutor` is the local warm pool: N slots, each with its own pre-warmed `ZygoteClient` per framework (the
same workers `grade batch` uses). The process that holds an executor is the trusted parent: it compares and
scores through `grading.grade(..., worker=...)`, exactly as `grade EX FILE` does, so a job's report is the
one single mode would write. The zygotes only run probes; nothing here forks from a process that holds
references or results (each zygote is a fresh interpreter, started by exec).

A submission that kills or wedges its worker gets a report marked as a grader failure (`worker_failed`),
and the slot starts a fresh worker for the next job; whether to try again is the caller's decision: the
service counts attempts in its database, `grade batch` asks the executor for `retries` (one more attempt
on a fresh worker). `interrupt()` stops an executor now (a batch's Ctrl-C or SIGTERM): each worker is told
to kill its job's process tree and exit, and the jobs not finished come back `stopped`.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, Self

from grader.course import exercises
from grader.course.submission import SubmissionNotFound
from grader.grading import pipeline as grading
from grader.model.report import Report, grader_failed
from grader.sandbox.client import SandboxFailure, ZygoteClient
from grader.sandbox.tiers import Tier

STOP_GRACE_S = 3.0  # how long an interrupted worker gets to kill its job's process tree


class ExecutorGone(RuntimeError):
    """The place jobs run is gone as a whole (a Dask scheduler that cannot be reached): no job's fault,
    so no job gets a report for it; the caller stops and a re-run resumes."""


@dataclass(frozen=True)
class Job:
    """One submission file to grade for one exercise."""

    exercise: str
    path: Path
    device: str = "auto"
    limits: grading.Limits = field(default_factory=grading.Limits)


@dataclass(frozen=True)
class JobOutcome:
    """What became of a job: a report (with hints annotated), or why there is none."""

    report: Report | None
    worker_failed: bool  # the worker died or stopped answering under this job (its report says so)
    problem: str | None = None  # no report at all: the file could not be read, or the grader broke
    error: BaseException | None = None  # what ended the job without a report, for callers that tell kinds apart
    stopped: bool = False  # the executor was interrupted before the job finished: no result either way

    @property
    def unreadable(self) -> bool:
        """No report because the submission could not be read (gone, or not a file we may read)."""
        return isinstance(self.error, (SubmissionNotFound, OSError))

    @property
    def ok(self) -> bool:
        return self.report is not None and not self.worker_failed


class Executor(Protocol):
    """Runs grading jobs somewhere; `submit` never blocks on the grading itself."""

    def submit(self, job: Job) -> Future[JobOutcome]: ...

    def healthy(self) -> bool: ...

    @property
    def capacity(self) -> int: ...

    def close(self, wait: bool = True) -> None: ...


def worker_failed(report: Report) -> bool:
    """True when the report says the grader's worker broke under the job (not the submission's own fault)."""
    return grader_failed(report)


class _Slot:
    """One job slot: its own warm workers (one per framework), used by its own thread only."""

    def __init__(self, device: str, sandbox: str, factory: Any = ZygoteClient, retries: int = 0,
                 stop: threading.Event | None = None):
        self.device = device
        self.sandbox = sandbox
        self.factory = factory  # ZygoteClient, or a remote worker with its interface (grader.distributed)
        self.retries = retries  # more attempts on a fresh worker, for a job its worker broke under
        self.stop = stop or threading.Event()
        self.workers: dict[tuple[str, bool], ZygoteClient] = {}
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.warmed = threading.Event()  # prewarm() is over, however it went

    def worker(self, exercise_id: str) -> ZygoteClient:
        key = (exercises.framework_of(exercise_id), self.device != "cpu")
        with self.lock:
            if self.stop.is_set():
                raise SandboxFailure("the executor is stopping")
            current = self.workers.get(key)
            if current is None or not current.alive:
                if current is not None:
                    current.close()
                current = self.workers[key] = self.factory(*key, sandbox=self.sandbox)
            return current

    def prewarm(self, exercise_id: str) -> None:
        try:
            self.worker(exercise_id).info()
            self.ready.set()
        except (SandboxFailure, ExecutorGone, ValueError, OSError):
            pass
        finally:
            self.warmed.set()

    def alive(self) -> bool:
        with self.lock:
            return any(w.alive for w in self.workers.values())

    def run(self, job: Job) -> JobOutcome:
        for attempt in range(self.retries + 1):
            outcome = self._attempt(job)
            if self.stop.is_set() and (outcome.worker_failed or outcome.report is None):
                return replace(outcome, stopped=True)  # its worker was stopped under it: not a result
            if not outcome.worker_failed or attempt == self.retries:
                return outcome
        raise AssertionError("unreachable")

    def _attempt(self, job: Job) -> JobOutcome:
        worker = None
        try:
            worker = self.worker(job.exercise)
            report = grading.grade(job.exercise, job.path, device=job.device, limits=job.limits, worker=worker)
        except SandboxFailure as exc:
            if worker is not None:
                worker.kill()  # a fresh one for the next job
            return JobOutcome(None, True, f"the grading worker failed: {exc}", exc)
        except ExecutorGone as exc:  # not the submission's fault: counted like a worker that broke
            return JobOutcome(None, True, str(exc), exc)
        except grading.DeviceUnavailable as exc:
            return JobOutcome(None, False, str(exc), exc)
        except Exception as exc:  # noqa: BLE001 - one job must never stop the slot
            return JobOutcome(None, False, f"{type(exc).__name__}: {exc}", exc)
        failed = worker_failed(report)
        if failed:
            worker.kill()  # a fresh one for the next job
        else:
            self.ready.set()
        return JobOutcome(report, failed)

    def kill(self) -> None:
        with self.lock:
            workers = list(self.workers.values())
        for worker in workers:
            worker.kill()

    def terminate(self) -> None:
        """From another thread: ask each worker to kill its job's process tree and exit (a cluster's handle:
        stop waiting; its machine ends the job at its timeout)."""
        with self.lock:
            workers = list(self.workers.values())
        for worker in workers:
            if not isinstance(worker, ZygoteClient):
                worker.kill()
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.process.pid, signal.SIGTERM)

    def release(self) -> None:
        """No more jobs: each worker exits on its own (close() still waits for it)."""
        with self.lock:
            workers = list(self.workers.values())
        for worker in workers:
            worker.release()

    def close(self) -> None:
        with self.lock:
            workers = list(self.workers.values())
            self.workers.clear()
        for worker in workers:
            if self.stop.is_set() and isinstance(worker, ZygoteClient):
                try:  # told to stop: the worker is killing its job's tree
                    worker.process.wait(timeout=STOP_GRACE_S)
                except Exception:  # noqa: BLE001 - still there: no more grace
                    worker.kill()
            worker.close()


_STOP = object()


class LocalExecutor:
    """The local warm pool: `jobs` slots, each a thread with its own zygotes, fed from one queue."""

    def __init__(self, jobs: int = 1, *, device: str = "auto", sandbox: str = "auto",
                 prewarm: str | None = None, factory: Any = ZygoteClient, retries: int = 0):
        """`prewarm`: an exercise whose worker every slot starts at once; `retries`: more attempts, each on a
        fresh worker, for a job whose worker broke under it (the service decides that itself: 0)."""
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._slots = [_Slot(device, sandbox, factory, retries, self._stop) for _ in range(max(1, jobs))]
        self._closed = False
        self._prewarm = prewarm
        self._threads = [threading.Thread(target=self._serve, args=(slot, prewarm), daemon=True,
                                          name=f"grader-slot-{i}") for i, slot in enumerate(self._slots)]
        for thread in self._threads:
            thread.start()

    @property
    def capacity(self) -> int:
        return len(self._slots)

    def submit(self, job: Job) -> Future[JobOutcome]:
        if self._closed:
            raise RuntimeError("the executor is closed")
        future: Future[JobOutcome] = Future()
        self._queue.put((job, future))
        return future

    def healthy(self) -> bool:
        """At least one slot has a worker that started and is alive."""
        return any(slot.ready.is_set() and slot.alive() for slot in self._slots)

    def ready(self, timeout: float | None = None) -> bool:
        """Wait until one slot's worker is warm (the first torch import is the slow part)."""
        return any(slot.ready.wait(timeout) for slot in self._slots)

    def worker_info(self, exercise_id: str) -> dict[str, Any]:
        """What a worker for the exercise found where it runs (torch, cuda): the first slot's. Call it before
        submitting jobs (a worker answers one thread at a time): it waits for the slot's prewarm."""
        slot = self._slots[0]
        if self._prewarm:
            slot.warmed.wait()
        return slot.worker(exercise_id).info()

    def interrupt(self) -> None:
        """Stop now, from any thread: running jobs' workers kill their process trees and exit; every job not
        finished comes back `stopped`. close() still follows."""
        self._stop.set()
        for slot in self._slots:
            slot.terminate()

    def _serve(self, slot: _Slot, prewarm: str | None) -> None:
        if prewarm:
            slot.prewarm(prewarm)
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            job, future = item
            if not future.set_running_or_notify_cancel():
                continue
            if self._stop.is_set():
                future.set_result(JobOutcome(None, False, "the executor was stopped", stopped=True))
                continue
            try:
                outcome = self._run(slot, job)
            except Exception as exc:  # noqa: BLE001 - the slot's own failure ends this job, never the slot
                outcome = JobOutcome(None, False, f"{type(exc).__name__}: {exc}", exc)
            future.set_result(outcome)

    def _run(self, slot: _Slot, job: Job) -> JobOutcome:
        """One job on one slot, in the slot's thread (an executor that holds jobs through outages overrides it)."""
        return slot.run(job)

    def close(self, wait: bool = True) -> None:
        """Stop the slots. `wait=False` kills the jobs still running (their futures get failed outcomes)."""
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._queue.put(_STOP)
        if not wait:
            for slot in self._slots:
                slot.kill()
        for thread in self._threads:
            thread.join(timeout=STOP_GRACE_S + 5 if self._stop.is_set() else grading.DEFAULT_TIMEOUT_S + 30)
        for slot in self._slots:  # all at once: a worker takes a while to exit (torch's teardown)
            slot.release()
        for slot in self._slots:
            slot.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def grade_all(executor: Executor, jobs: list[Job]) -> list[JobOutcome]:
    """Grade several jobs on an executor and return their outcomes in order (a thin helper for callers)."""
    futures = [executor.submit(job) for job in jobs]
    return [f.result() for f in futures]


def unrun_report(exercise_id: str, submission_path: Path, problem: str, limits: grading.Limits | None = None,
                 tier: str = Tier.FAILED) -> Report:
    """A valid report for a submission that could not be graded at all (every check scores 0 with `problem`)."""
    return grading.report_without_run(exercise_id, submission_path, problem, limits or grading.Limits(), tier)
