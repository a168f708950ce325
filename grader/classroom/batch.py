"""Grading a whole class: discovery, warm parallel workers, resume, atomic reports, gradebook and summary.

The data flows one way, as in single mode:
DIR/<student>/<EX>.py|.ipynb → skip those whose report on disk is current (same file sha256, grader
version and references digest) → grade the rest as jobs of an executor (executor.LocalExecutor: N slots,
each owning its own pre-warmed `ZygoteClient`, or with --scheduler execution.cluster.DaskExecutor, the one
route to a Dask cluster that the service takes too; the worker only
runs probes and never sees reference data; this process compares, through `grading.grade(...,
worker=...)`, exactly as single mode does) → each report written atomically as soon
as it is ready → the gradebook and summary are rebuilt from the reports on disk, one student at a time.

Nothing is lost: a submission that crashes, hangs or attacks its worker gets a report (the worker is
restarted if it died); a file that cannot even be read gets a `.problem.json` beside where its report
would be, and a status in the gradebook. An interrupt stops the workers, kills what they were running
and keeps every finished report; the next run grades only what is left.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from grader import __version__
from grader.classroom import gradebook, layouts
from grader.classroom.summary import (  # moved to summary.py, still named here
    rebuild as rebuild,
    render_summary as render_summary,
)
from grader.classroom.tasks import (  # moved to tasks.py, still named here
    PROBLEM_SUFFIX as PROBLEM_SUFFIX,
    Task as Task,
    write_roster as write_roster,
)
from grader.course import exercises
from grader.course.submission import file_sha256
from grader.execution.executor import ExecutorGone, Job, JobOutcome, LocalExecutor
from grader.formats.files import (  # moved to files.py, still named here
    write_atomic as write_atomic,
)
from grader.grading import pipeline as grading
from grader.model import sanitize
from grader.model.report import RUN_STATUSES, RunStatus, grader_failed, to_json
from grader.sandbox.client import SandboxFailure
from grader.sandbox.protocol import Ready

LINK_MESSAGE = "a symbolic link, not a file: refused, never followed; submit the file itself."


class BatchError(ValueError):
    """The batch as a whole cannot run (no such directory, nothing to grade): a usage error."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM, delivered as an interrupt so that the batch stops the same way as on Ctrl-C."""


class DoneState(StrEnum):
    """What a run did with one task: a report written, or a `.problem.json` (no report at all)."""

    GRADED = "graded"
    PROBLEM = "problem"


@dataclass(frozen=True)
class Done:
    """What became of one task in this run: given to the progress callback, never kept."""

    task: Task
    state: DoneState
    score: float | None = None
    max_score: float | None = None
    status: str | None = None


def default_jobs() -> int:
    """The cores this process may use (a container's CPU set, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Options:
    jobs: int = field(default_factory=default_jobs)
    device: str = "auto"
    limits: grading.Limits = field(default_factory=grading.Limits)
    force: bool = False
    sandbox: str = "auto"  # the workers' tier: "namespaces" refuses to grade below it (--require-sandbox)
    scheduler: str | None = None  # a Dask scheduler's address: grade on its cluster (grader.distributed)
    layout: str = "auto"  # how DIR is laid out: grader/classroom/layouts.py


@dataclass(frozen=True)
class BatchResult:
    submissions: int  # files found (missing ones not counted)
    graded: int
    skipped: int  # unchanged since their report was written
    problems: int  # could not be graded at all this run (unreadable file, grader failure)
    interrupted_by: str | None  # "SIGINT" | "SIGTERM" when the batch was stopped before the end
    elapsed_s: float
    summary: dict[str, Any]
    files: list[Path]


# ---- discovery and resume

def discover(directory: Path, exercise_ids: Sequence[str] | None = None, out: Path | None = None,
             layout: str = "auto") -> list[Task]:
    """Every (student, exercise) pair: see `discover_class`."""
    return discover_class(directory, exercise_ids, out, layout)[0]


def discover_class(directory: Path, exercise_ids: Sequence[str] | None = None, out: Path | None = None,
                   layout: str = "auto") -> tuple[list[Task], layouts.ClassFolder]:
    """Every (student, exercise) pair, and what the class folder held besides (grader/classroom/layouts.py).

    Students are those the layout finds (OUT excluded, when it lies inside DIR); exercises are the ones
    asked for, or every exercise at least one student submitted. Ordered by exercise, so that a worker
    stays on one framework. A student refused (a link, a reserved name) gets no task: `rebuild` gives
    them a status instead.
    """
    try:
        found = layouts.read(Path(directory), exercise_ids, layout, out)
    except layouts.LayoutError as exc:
        raise BatchError(str(exc)) from None
    wanted = list(exercise_ids) if exercise_ids else [
        e for e in exercises.exercise_ids()
        if any(e in files for files in found.files.values()) or (found.refused and e in found.mentioned)]
    students = sorted(found.students)
    tasks = [Task(s, e, found.files.get(s, {}).get(e)) for e in wanted for s in students]
    return tasks, found


def is_current(task: Task, out: Path, references_digest: str, limits: dict[str, Any] | None = None) -> bool:
    """True when the report on disk was made from this very file, by this grader, with these references
    (and, when given, these limits: a longer --timeout must regrade what timed out)."""
    if task.path is None or task.path.is_symlink():
        return False
    try:
        data = json.loads(task.report_path(out).read_text("utf-8"))
        sha = file_sha256(task.path)
    except (OSError, ValueError):
        return False
    return (
        isinstance(data, dict)
        and data.get("status") in RUN_STATUSES  # a report that does not say how its run ended is regraded
        and data.get("grader_version") == __version__
        and data.get("references_sha256") == references_digest
        and isinstance(data.get("submission"), dict)
        and data["submission"].get("sha256") == sha
        and not grader_failed(data)  # the grader's fault: try again
        and (limits is None or (data.get("sandbox") or {}).get("limits") == limits)
    )


def unreadable(path: Path) -> str | None:
    """Why a submission path cannot be graded at all, before any worker is involved (None: it can).

    A link is refused, not followed: it could point at files the student must not see (the hidden
    references, say), and a syntax error's message would quote them back.
    """
    if path.is_symlink():
        return LINK_MESSAGE
    if not path.is_file():
        return "not a regular file."
    if not os.access(path, os.R_OK):
        return "the grader may not read it (permissions)."
    return None


def record_problem(out: Path, task: Task, status: str, message: str) -> Done:
    """A file that could not be graded at all: remembered beside its report's place, for the gradebook."""
    record = {"student": task.student, "exercise": task.exercise, "path": sanitize.name(str(task.path)),
              "status": status, "message": message, "grader_version": __version__}
    try:
        write_atomic(task.problem_path(out), json.dumps(record, indent=2))
        task.report_path(out).unlink(missing_ok=True)  # an older report no longer matches the file
    except OSError:
        pass  # OUT/<student> is not a folder we can write: the gradebook still says not-graded
    return Done(task, DoneState.PROBLEM, status=status)


# ---- grading on the executor's warm workers

def finish(out: Path, task: Task, outcome: JobOutcome) -> Done | None:
    """Write what became of one task: its report, or its problem. None when the batch was stopped under it."""
    if outcome.stopped:
        return None
    report = outcome.report
    if report is None:
        if outcome.unreadable:
            return record_problem(out, task, RunStatus.UNREADABLE, str(outcome.error))
        why = str(outcome.error) if isinstance(outcome.error, SandboxFailure) else outcome.problem
        return record_problem(out, task, RunStatus.GRADER_FAILURE, why or "the grader failed")
    try:
        write_atomic(task.report_path(out), to_json(report))
        task.problem_path(out).unlink(missing_ok=True)
    except Exception as exc:  # noqa: BLE001 - a report that cannot be written must not end the batch
        return record_problem(out, task, RunStatus.GRADER_FAILURE, f"the report could not be written: {exc}")
    return Done(task, DoneState.GRADED, report.score, report.max_score, gradebook.status_of(report))


def run(directory: Path, out: Path, exercise_ids: Sequence[str] | None = None, options: Options | None = None,
        on_start: Callable[[int, int], None] | None = None,
        on_done: Callable[[Done], None] | None = None) -> BatchResult:
    """Grade DIR into OUT. `on_start(to_grade, skipped)` then `on_done(done)` for each graded file.

    Raises BatchError for usage errors and grading.DeviceUnavailable when --device cuda has no CUDA; with
    a scheduler, ExecutorGone when it cannot be reached (after writing the gradebook of what was graded)
    and grader.distributed.ClusterRefused when its workers cannot grade as asked.
    A KeyboardInterrupt (or `Interrupted`) stops the batch; the result says so, and every report
    finished before it is kept.
    """
    started = time.monotonic()
    options = options or Options()
    out = Path(out)
    tasks, found = discover_class(Path(directory), exercise_ids, out, options.layout)
    if not tasks and not found.refused:
        listed = "; ".join(f"{s.path}: {s.reason}" for s in found.skipped[:3])
        raise BatchError(f"no submissions found in {directory} (read as the {found.layout!r} layout: "
                         "DIR/<student>/<EX>.py, or a Canvas, Moodle or Gradescope export, see --layout)"
                         + (f"; {listed}" if listed else ""))
    out.mkdir(parents=True, exist_ok=True)
    write_roster(out, found)
    digests = {e: exercises.load(e).references_digest() for e in dict.fromkeys(t.exercise for t in tasks)}
    present = [t for t in tasks if t.path is not None]
    todo = [t for t in present if options.force or not is_current(t, out, digests[t.exercise], options.limits.as_job())]
    if on_start:
        on_start(len(todo), len(present) - len(todo))
    graded = problems = 0
    gradable = []
    this_run: dict[tuple[str, str], str] = {}  # problems of this run: the status even where OUT is unwritable
    for task in todo:
        why = unreadable(task.path)
        if why is None:
            gradable.append(task)
            continue
        problems += 1
        done = record_problem(out, task, gradebook.CellStatus.REFUSED_LINK if task.path.is_symlink()
                              else RunStatus.UNREADABLE, why)
        this_run[(task.student, task.exercise)] = str(done.status)
        if on_done:
            on_done(done)
    interrupted_by = None
    lost: ExecutorGone | None = None
    stream = _grade_all(gradable, out, options)
    try:
        for done in stream:
            graded += done.state is DoneState.GRADED
            problems += done.state is DoneState.PROBLEM
            if done.state is DoneState.PROBLEM:
                this_run[(done.task.student, done.task.exercise)] = str(done.status)
            if on_done:
                on_done(done)
    except Interrupted:
        interrupted_by = "SIGTERM"
    except KeyboardInterrupt:
        interrupted_by = "SIGINT"
    except ExecutorGone as exc:
        lost, interrupted_by = exc, "scheduler-gone"
    finally:
        stream.close()  # stops the slots and kills what they run, whatever ended the loop
    elapsed = time.monotonic() - started
    files, summary = rebuild(out, tasks, found.refused, this_run)
    summary["layout"] = found.layout
    summary["skipped_files"] = [{"path": k.path, "student": k.student, "reason": k.reason} for k in found.skipped]
    summary["input_problems"] = [{"path": k.path, "student": k.student, "reason": k.reason} for k in found.problems]
    summary["last_run"] = {"submissions": len(present), "graded": graded, "skipped": len(present) - len(todo),
                           "problems": problems, "interrupted": interrupted_by, "elapsed_s": round(elapsed, 3),
                           "jobs": options.jobs}
    summary_path = out / "summary.json"
    write_atomic(summary_path, json.dumps(summary, indent=2))
    if lost is not None:
        raise lost
    return BatchResult(len(present), graded, len(present) - len(todo), problems, interrupted_by, elapsed, summary,
                       [*files, summary_path])


def _grade_all(todo: list[Task], out: Path, options: Options) -> Iterator[Done]:
    """Yield each Done as it arrives; on interrupt, stop the executor and kill what it was running."""
    if not todo:
        return
    executor = _executor(todo, options)
    try:  # every slot's torch import has started, side by side
        if options.device == "cuda":
            _require_cuda(executor, todo[0].exercise)
        finished: queue.SimpleQueue = queue.SimpleQueue()
        for task in todo:
            future = executor.submit(Job(task.exercise, task.path, options.device, options.limits))
            future.add_done_callback(lambda f, task=task: finished.put((task, f.result())))
        for _ in todo:
            task, outcome = _next(finished)
            if isinstance(outcome.error, ExecutorGone):
                raise outcome.error  # the cluster is gone: no submission's fault, the batch stops
            done = finish(out, task, outcome)
            if done is not None:
                yield done
    except BaseException:
        executor.interrupt()
        raise
    finally:
        executor.close()


def _executor(todo: list[Task], options: Options) -> LocalExecutor:
    """The local warm pool, or with --scheduler the one Dask route (which refuses a cluster that cannot grade
    these exercises now). Locally a worker that died (before the job, or under it) is replaced and the job
    tried once more; a submission that kills its worker every time keeps the second report, marked
    grader-failure. A cluster retries on other machines itself (up to its allowed-failures): one attempt."""
    if options.scheduler:
        from grader.execution.cluster import DaskExecutor

        return DaskExecutor(options.scheduler, options.jobs or None, device=options.device, sandbox=options.sandbox,
                            prewarm=todo[0].exercise, checks=[t.exercise for t in todo], most_slots=len(todo),
                            hold=False)
    return LocalExecutor(max(1, min(options.jobs, len(todo))), device=options.device, sandbox=options.sandbox,
                         prewarm=todo[0].exercise, retries=1)


def _next(finished: queue.SimpleQueue) -> tuple[Task, JobOutcome]:
    """The next finished job, waiting in short steps so that the main thread takes Ctrl-C promptly."""
    while True:
        try:
            return finished.get(timeout=0.2)
        except queue.Empty:
            continue


def _require_cuda(executor: LocalExecutor, exercise_id: str) -> None:
    if not Ready.from_wire(executor.worker_info(exercise_id)).cuda:
        raise grading.DeviceUnavailable("--device cuda was asked for, but CUDA is not available on this machine.")


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises `Interrupted` in the main thread, so it stops a batch like Ctrl-C."""

    def handler(signum: int, frame: Any) -> None:
        raise Interrupted()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ---- gradebook and summary, rebuilt from the reports on disk


