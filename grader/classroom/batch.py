"""Grading a whole class: discovery, warm parallel workers, resume, atomic reports, gradebook and summary.

The data flows one way, as in single mode:
DIR/<student>/<EX>.py|.ipynb → skip those whose report on disk is current (same file sha256, grader
version and references digest) → grade the rest as jobs of an executor (executor.LocalExecutor: N slots,
each owning its own pre-warmed `ZygoteClient`, or a cluster's workers through the same slots; the worker only
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
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader import __version__
from grader.classroom import gradebook, layouts
from grader.course import exercises
from grader.course.submission import file_sha256
from grader.execution.executor import ExecutorGone, Job, JobOutcome, LocalExecutor
from grader.grading import pipeline as grading
from grader.model import sanitize
from grader.model.report import RUN_STATUSES, Report, Status, from_dict, to_json
from grader.sandbox.client import SandboxFailure, ZygoteClient
from grader.sandbox.protocol import Ready
from grader.sandbox.tiers import Tier

PROBLEM_SUFFIX = ".problem.json"
ROSTER = "roster.json"
LINK_MESSAGE = "a symbolic link, not a file: refused, never followed; submit the file itself."
TOP_COUNT = 5  # how many failed checks and diagnoses the summary lists
SKIPPED_SHOWN = 40  # entries of the class folder not graded, listed in the printed summary (all in summary.json)


class BatchError(ValueError):
    """The batch as a whole cannot run (no such directory, nothing to grade): a usage error."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM, delivered as an interrupt so that the batch stops the same way as on Ctrl-C."""


@dataclass(frozen=True)
class Task:
    """One student's file for one exercise (path None: the student has no file for it)."""

    student: str
    exercise: str
    path: Path | None

    def report_path(self, out: Path) -> Path:
        return out / self.student / f"{self.exercise}.json"

    def problem_path(self, out: Path) -> Path:
        return out / self.student / f"{self.exercise}{PROBLEM_SUFFIX}"


@dataclass(frozen=True)
class Done:
    """What became of one task in this run: given to the progress callback, never kept."""

    task: Task
    state: str  # "graded" | "problem"
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
        and (data.get("sandbox") or {}).get("tier") != Tier.FAILED  # the grader's fault: try again
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
    return Done(task, "problem", status=status)


def write_atomic(path: Path, text: str) -> None:
    """Write beside the target and rename over it: a reader (or a resumed batch) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        temporary.write_text(text, "utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


# ---- grading on the executor's warm workers

def finish(out: Path, task: Task, outcome: JobOutcome) -> Done | None:
    """Write what became of one task: its report, or its problem. None when the batch was stopped under it."""
    if outcome.stopped:
        return None
    report = outcome.report
    if report is None:
        if outcome.unreadable:
            return record_problem(out, task, "unreadable", str(outcome.error))
        why = str(outcome.error) if isinstance(outcome.error, SandboxFailure) else outcome.problem
        return record_problem(out, task, "grader-failure", why or "the grader failed")
    try:
        write_atomic(task.report_path(out), to_json(report))
        task.problem_path(out).unlink(missing_ok=True)
    except Exception as exc:  # noqa: BLE001 - a report that cannot be written must not end the batch
        return record_problem(out, task, "grader-failure", f"the report could not be written: {exc}")
    return Done(task, "graded", report.score, report.max_score, gradebook.status_of(report))


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
        done = record_problem(out, task, "refused-link" if task.path.is_symlink() else "unreadable", why)
        this_run[(task.student, task.exercise)] = str(done.status)
        if on_done:
            on_done(done)
    interrupted_by = None
    lost: ExecutorGone | None = None
    stream = _grade_all(gradable, out, options)
    try:
        for done in stream:
            graded += done.state == "graded"
            problems += done.state == "problem"
            if done.state == "problem":
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


def write_roster(out: Path, found: layouts.ClassFolder) -> None:
    """OUT/roster.json: who each student folder is in the LMS (name, ids), for the LMS import files.

    Merged with the roster on disk, so separate `--exercise` runs into one OUT keep everyone."""
    try:
        previous = json.loads((out / ROSTER).read_text("utf-8"))
        students = previous.get("students", {}) if isinstance(previous, dict) else {}
        students = students if isinstance(students, dict) else {}
    except (OSError, ValueError):
        students = {}
    students.update({key: student.as_dict() for key, student in found.students.items()})
    write_atomic(out / ROSTER, json.dumps({"layout": found.layout, "students": students}, indent=2))


def read_roster(out: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads((Path(out) / ROSTER).read_text("utf-8"))
        students = data.get("students", {})
    except (OSError, ValueError, AttributeError):
        return {}
    if not isinstance(students, dict):
        return {}
    # An older grader's roster may hold names that are no safe key, or text no CSV can encode.
    return {k: sanitize.deep(v) for k, v in students.items()
            if isinstance(k, str) and layouts.is_safe_key(k) and isinstance(v, dict)}


def _grade_all(todo: list[Task], out: Path, options: Options) -> Iterator[Done]:
    """Yield each Done as it arrives; on interrupt, stop the executor and kill what it was running."""
    if not todo:
        return
    factory: Any = ZygoteClient
    pool = None
    if options.scheduler:
        from grader.execution.cluster import DaskPool

        pool = DaskPool(options.scheduler, sandbox=options.sandbox)
        factory = pool.worker
    try:
        yield from _grade_on(todo, out, options, factory, pool)
    finally:
        if pool is not None:
            pool.close()


def _grade_on(todo: list[Task], out: Path, options: Options, factory: Any, pool: Any) -> Iterator[Done]:
    jobs = options.jobs
    if pool is not None:
        for exercise_id in dict.fromkeys(t.exercise for t in todo):  # refuse a cluster that cannot grade now
            pool.check(exercises.framework_of(exercise_id), options.device != "cpu")
        jobs = jobs or pool.slots()
    # A worker that died (before the job, or under it) is replaced and the job tried once more; a submission
    # that kills its worker every time keeps the second report, marked grader-failure. A cluster retries on
    # other machines itself (up to its allowed-failures): one attempt here.
    executor = LocalExecutor(max(1, min(jobs, len(todo))), device=options.device, sandbox=options.sandbox,
                             prewarm=todo[0].exercise, factory=factory, retries=1 if factory is ZygoteClient else 0)
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

class Summary:
    """What the class got wrong, accumulated one report at a time (counters only: flat in class size)."""

    def __init__(self) -> None:
        self.scores: dict[str, Counter[float]] = {}
        self.max_scores: dict[str, float] = {}
        self.failed_checks: Counter[tuple[str, str]] = Counter()
        self.diagnoses: Counter[tuple[str, str]] = Counter()
        self.statuses: Counter[str] = Counter()
        self.not_run: Counter[tuple[str, str]] = Counter()
        self.check_errors: Counter[tuple[str, str]] = Counter()
        self.students = 0

    def add_report(self, exercise_id: str, report: Report) -> None:
        self.scores.setdefault(exercise_id, Counter())[float(report.score)] += 1
        self.max_scores[exercise_id] = float(report.max_score)
        status = gradebook.status_of(report)
        if status is not None:
            # A run that crashed, hung or never started failed no check on its merits: counted apart.
            self.not_run[(exercise_id, status)] += 1
            return
        diagnosed = set()  # a mistake counts once per student, however many checks it broke
        for check in report.checks:
            if check.status is Status.FAILED:
                self.failed_checks[(exercise_id, check.name)] += 1
            elif check.status in (Status.ERROR, Status.TIMEOUT):
                self.check_errors[(exercise_id, check.name)] += 1
            if check.diagnosis:
                diagnosed.add(check.diagnosis)
        for code in diagnosed:
            self.diagnoses[(exercise_id, code)] += 1

    def add_status(self, status: str | None) -> None:
        if status:
            self.statuses[status] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "grader_version": __version__,
            "students": self.students,
            "exercises": {e: _distribution(c, self.max_scores.get(e, 0.0)) for e, c in sorted(self.scores.items())},
            "failed_checks": [{"exercise": e, "check": n, "count": k}
                              for (e, n), k in self.failed_checks.most_common()],
            "diagnoses": [{"exercise": e, "diagnosis": d, "count": k} for (e, d), k in self.diagnoses.most_common()],
            "statuses": dict(self.statuses.most_common()),
            "not_run": [{"exercise": e, "status": s, "count": k} for (e, s), k in self.not_run.most_common()],
            "check_errors": [{"exercise": e, "check": n, "count": k}
                             for (e, n), k in self.check_errors.most_common()],
        }


def _distribution(scores: Counter[float], max_score: float) -> dict[str, Any]:
    values = sorted(scores.elements())  # a few thousand floats at most; bounded by the class size
    bands = Counter()
    for value in values:
        share = value / max_score if max_score else 0.0
        bands["0" if value == 0 else "100%" if share >= 1 else "50-99%" if share >= 0.5 else "1-49%"] += 1
    return {
        "graded": len(values),
        "max_score": max_score,
        "mean": round(statistics.fmean(values), 3) if values else None,
        "median": statistics.median(values) if values else None,
        "full_marks": bands["100%"],
        "bands": {band: bands[band] for band in ("0", "1-49%", "50-99%", "100%")},
        "scores": {gradebook.number(v): k for v, k in sorted(scores.items())},
    }


def rebuild(out: Path, tasks: Sequence[Task] = (), refused: dict[str, str] | None = None,
            problems: dict[tuple[str, str], str] | None = None) -> tuple[list[Path], dict[str, Any]]:
    """Write the gradebook (and LMS CSVs) from the reports under OUT; returns the files and the summary.

    Students are the union of this run's folders and OUT's; exercises, those of this run's tasks and of
    any report on disk (so separate `--exercise` runs into one OUT add up). A refused student (their
    folder a link, their name one of OUT's own files) has a row with that status in every column.
    """
    refused = dict(refused or {})
    submitted = {(t.student, t.exercise) for t in tasks if t.path is not None}
    students = {t.student for t in tasks} | set(refused)
    exercise_ids = {t.exercise for t in tasks}
    known = set(exercises.exercise_ids())
    roster = read_roster(out)
    for folder in out.iterdir():
        # A folder whose name is not a safe key (left by an older grader, or put there) is no student's.
        if folder.is_dir() and not folder.is_symlink() and layouts.is_safe_key(folder.name):
            students.add(folder.name)
            exercise_ids |= {p.name.split(".")[0] for p in folder.glob("ex*.json")} & known
    ordered = sorted(exercise_ids)
    loaded = [exercises.load(e) for e in ordered]
    titles = {e.id: e.title for e in loaded}
    max_scores = {e.id: float(sum(c.points for c in e.checks)) for e in loaded}
    summary = Summary()

    def rows() -> Iterator[gradebook.Row]:
        for student in sorted(students):
            summary.students += 1
            if student in refused:
                cells = {e: gradebook.Cell(None, None, refused[student]) for e in ordered}
                summary.add_status(refused[student])
            else:
                cells = {e: _cell(out, student, e, (student, e) in submitted, summary,
                                  (problems or {}).get((student, e)))
                         for e in ordered}
            yield gradebook.Row(student, cells, roster.get(student, {}))

    moodle = any(who.get("moodle_participant") for who in roster.values())
    files = gradebook.write_all(out, ordered, titles, max_scores, rows(), moodle_worksheet=moodle)
    return files, summary.as_dict()


def read_report(path: Path) -> Report | None:
    """The report at `path` through the result model (report.from_dict); None when there is none, or it
    cannot be read as one."""
    try:
        return from_dict(json.loads(path.read_text("utf-8")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _cell(out: Path, student: str, exercise_id: str, submitted: bool, summary: Summary,
          problem_now: str | None = None) -> gradebook.Cell:
    folder = out / student
    report = read_report(folder / f"{exercise_id}.json")
    if report is not None:
        summary.add_report(exercise_id, report)
        status = gradebook.status_of(report)
        summary.add_status(status)
        return gradebook.Cell(report.score, report.max_score, status)
    try:
        status = str(json.loads((folder / f"{exercise_id}{PROBLEM_SUFFIX}").read_text("utf-8"))["status"])
    except (OSError, ValueError, KeyError, TypeError):
        status = problem_now or ("not-graded" if submitted else "missing")
    summary.add_status(status)
    return gradebook.Cell(None, None, status)


def render_summary(summary: dict[str, Any]) -> str:
    """The short text the instructor reads after a batch, safe on a terminal (sanitize.text; names in it are
    already one printable line each, sanitize.name)."""
    run = summary.get("last_run", {})
    lines = []
    if run:
        rate = run["graded"] / run["elapsed_s"] if run["elapsed_s"] else 0.0
        state = f"INTERRUPTED ({run['interrupted']}), finished reports kept: " if run["interrupted"] else ""
        lines.append(f"{state}{run['submissions']} submissions from {summary['students']} students: "
                     f"{run['graded']} graded, {run['skipped']} unchanged (skipped), {run['problems']} unreadable "
                     f"in {run['elapsed_s']:.1f} s ({rate:.1f}/s).")
    for exercise_id, dist in summary["exercises"].items():
        bands = "  ".join(f"{band}: {count}" for band, count in dist["bands"].items())
        lines.append(f"{exercise_id}: {dist['graded']} reports, mean {dist['mean']:g}/{dist['max_score']:g}, "
                     f"median {dist['median']:g}   {bands}")
    if summary["failed_checks"]:
        lines.append("Checks failed most (students):")
        lines += [f"  {f['count']:4d}  {f['exercise']}  {f['check']}" for f in summary["failed_checks"][:TOP_COUNT]]
    if summary["diagnoses"]:
        lines.append("Most frequent diagnoses (students):")
        lines += [f"  {d['count']:4d}  {d['exercise']}  {d['diagnosis']}" for d in summary["diagnoses"][:TOP_COUNT]]
    if summary.get("not_run"):
        lines.append("Runs that did not finish (their checks are not counted above):")
        lines += [f"  {n['count']:4d}  {n['exercise']}  {n['status']}" for n in summary["not_run"][:TOP_COUNT]]
    if summary["statuses"]:
        statuses = ", ".join(f"{status} ×{count}" for status, count in summary["statuses"].items())
        lines.append(f"Not graded cleanly: {statuses} (see the status column of gradebook.csv).")
    skipped = summary.get("skipped_files") or []
    if skipped:
        lines.append(f"Not graded ({len(skipped)} entries of the class folder, all in summary.json):")
        lines += [f"  {sanitize.name(s['path'])}: {sanitize.name(s['reason'])}" for s in skipped[:SKIPPED_SHOWN]]
        if len(skipped) > SKIPPED_SHOWN:
            lines.append(f"  ... and {len(skipped) - SKIPPED_SHOWN} more (summary.json, skipped_files)")
    problems = summary.get("input_problems") or []
    if problems:
        lines.append(f"Names and metadata not usable as they are ({len(problems)}, all in summary.json):")
        lines += [f"  {sanitize.name(p['path'])}: {sanitize.name(p['reason'])}" for p in problems[:SKIPPED_SHOWN]]
        if len(problems) > SKIPPED_SHOWN:
            lines.append(f"  ... and {len(problems) - SKIPPED_SHOWN} more (summary.json, input_problems)")
    return sanitize.text("\n".join(lines) + "\n")
