"""Where grading jobs run: one small interface (submit a job, get its outcome, close) and its implementations.

`LocalExecutor` is the local warm pool: N slots, each with its own pre-warmed `Zygote` per framework (the
same workers `grade batch` uses). The process that holds an executor is the trusted parent: it compares and
scores through `grading.grade(..., worker=...)`, exactly as `grade EX FILE` does, so a job's report is the
one single mode would write. The zygotes only run probes; nothing here forks from a process that holds
references or results (each zygote is a fresh interpreter, started by exec).

A submission that kills or wedges its worker gets a report marked as a grader failure (`worker_failed`),
and the slot starts a fresh worker for the next job; whether to try again is the caller's decision (the
service counts attempts in its database).
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Self

from grader import exercises, grading
from grader.report import Report
from grader.sandbox.runner import SandboxFailure, Zygote


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
    return report.sandbox.get("tier") == "failed" or getattr(report, "status", None) == "grader-failure"


class _Slot:
    """One job slot: its own warm workers (one per framework), used by its own thread only."""

    def __init__(self, device: str, sandbox: str, factory: Any = Zygote):
        self.device = device
        self.sandbox = sandbox
        self.factory = factory  # Zygote, or a remote worker with its interface (grader.distributed)
        self.workers: dict[tuple[str, bool], Zygote] = {}
        self.lock = threading.Lock()
        self.ready = threading.Event()

    def worker(self, exercise_id: str) -> Zygote:
        key = (exercises.framework_of(exercise_id), self.device != "cpu")
        with self.lock:
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

    def alive(self) -> bool:
        with self.lock:
            return any(w.alive for w in self.workers.values())

    def run(self, job: Job) -> JobOutcome:
        try:
            worker = self.worker(job.exercise)
            report = grading.grade(job.exercise, job.path, device=job.device, limits=job.limits, worker=worker)
        except SandboxFailure as exc:
            return JobOutcome(None, True, f"the grading worker failed: {exc}")
        except ExecutorGone as exc:  # not the submission's fault: counted like a worker that broke
            return JobOutcome(None, True, str(exc))
        except grading.DeviceUnavailable as exc:
            return JobOutcome(None, False, str(exc))
        except Exception as exc:  # noqa: BLE001 - one job must never stop the slot
            return JobOutcome(None, False, f"{type(exc).__name__}: {exc}")
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

    def close(self) -> None:
        with self.lock:
            workers = list(self.workers.values())
            self.workers.clear()
        for worker in workers:
            worker.release()  # all at once: each exits on its own while the next is told
        for worker in workers:
            worker.close()


_STOP = object()


class LocalExecutor:
    """The local warm pool: `jobs` slots, each a thread with its own zygotes, fed from one queue."""

    def __init__(self, jobs: int = 1, *, device: str = "auto", sandbox: str = "auto",
                 prewarm: str | None = None, factory: Any = Zygote):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._slots = [_Slot(device, sandbox, factory) for _ in range(max(1, jobs))]
        self._closed = False
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
        for slot in self._slots:
            if slot.ready.wait(timeout):
                return True
        return False

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
            future.set_result(slot.run(job))

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
            thread.join(timeout=grading.DEFAULT_TIMEOUT_S + 30)
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
                 tier: str = "failed") -> Report:
    """A valid report for a submission that could not be graded at all (every check scores 0 with `problem`)."""
    return grading.report_without_run(exercise_id, submission_path, problem, limits or grading.Limits(), tier)
