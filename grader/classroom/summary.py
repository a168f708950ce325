"""A batch's outcome for people: the gradebook rows, the class summary (scores, failed checks, diagnoses), its text.

Rebuilt from the reports on disk after every batch (and on resume), so the CSVs and summary.json always describe
every report in the output folder, whichever run wrote it."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from grader import __version__
from grader.classroom import gradebook, layouts
from grader.classroom.tasks import (  # moved to tasks.py, still named here
    PROBLEM_SUFFIX as PROBLEM_SUFFIX,
    Task as Task,
    read_roster as read_roster,
)
from grader.course import exercises
from grader.model import sanitize
from grader.model.report import Report, Status, from_dict

TOP_COUNT = 5  # how many failed checks and diagnoses the summary lists


SKIPPED_SHOWN = 40  # entries of the class folder not graded, listed in the printed summary (all in summary.json)


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
        status = problem_now or (gradebook.CellStatus.NOT_GRADED if submitted else gradebook.CellStatus.MISSING)
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
