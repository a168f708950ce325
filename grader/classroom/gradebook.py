"""Class-wide CSV exports: the instructor's gradebook, plus Canvas and Moodle grade-import files.

All three are written from the same rows, one per student, in one pass, so a class of any size is
written without holding its reports in memory. A row's cells come from the reports on disk (see
grader/classroom/batch.py); a cell with no report carries a status instead of a score.

- `gradebook.csv`: student, one score column per exercise, total, max_total, status. The status column
  lists every exercise that did not grade cleanly ("ex03: timeout; ex05: missing"), empty otherwise.
- `canvas.csv`: Canvas's gradebook import shape: Student, ID, SIS User ID, SIS Login ID, Section, then one
  column per assignment, and a "Points Possible" row. Canvas matches a row by ID, then SIS User ID, then
  SIS Login ID. From a Canvas export we know the Canvas user id (ID); from a Gradescope export, the SID
  (SIS User ID); from plain folders only the folder name, which goes into both SIS columns. Assignment
  columns are matched by name (Canvas offers to create unknown ones).
- `moodle.csv`: Moodle's "Import grades from CSV": an identifier column and one column per grade item;
  the mapping of columns to grade items is chosen at import time. The identifier is `Username` (the
  folder name), or, for a Moodle export, `Identifier` = `Participant <id>` with `Full name`: the
  identifier of Moodle's grading worksheet, so the file goes back into the assignment it came from.

Every text cell goes through `csv_cell`: a cell a spreadsheet would read as a formula (OWASP's rule: a
leading `=`, `+`, `-`, `@`, tab or carriage return) is prefixed with `'`, so a folder named
`=HYPERLINK(...)` stays text.

An exercise a student did not submit, or that was not graded, is left blank in the LMS files: a blank
cell leaves the LMS grade untouched, while a crash or a timeout is a real graded zero.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Self, TextIO

from grader.model.report import Report, RunStatus

CANVAS_FIXED = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
MOODLE_ID = "Username"
MOODLE_WORKSHEET_ID = ("Identifier", "Full name")


class CellStatus(StrEnum):
    """A cell's status where no report gives one (a report's own is its RunStatus, report.py)."""

    NOT_GRADED = "not-graded"  # submitted, and no report of this grader says how its run ended
    MISSING = "missing"  # no file for this exercise
    REFUSED_LINK = "refused-link"  # the student's folder or file is a symbolic link: never followed
    RESERVED_NAME = "reserved-name"  # a folder named like the grader's own files


NOT_GRADED = CellStatus.NOT_GRADED


def status_of(report: Report) -> str | None:
    """A report's status column: its run status (docs/report.md's list), None when it ran to the end, whatever
    the score. A report without a status (a 1.0 grader's, which a batch regrades) is clean when it records no
    error, else `not-graded`: never a status guessed from the wording of its error."""
    if report.status is None:
        return None if report.error is None else NOT_GRADED
    return None if report.status is RunStatus.OK else report.status.value


@dataclass(frozen=True)
class Cell:
    """One student's result on one exercise, as the gradebook shows it."""

    score: float | None  # None: no report (missing, unreadable, not graded yet)
    max_score: float | None
    status: str | None  # None when graded cleanly, whatever the score


@dataclass(frozen=True)
class Row:
    student: str
    cells: dict[str, Cell]  # by exercise id
    identity: dict[str, Any] = field(default_factory=dict)  # from OUT/roster.json: name, canvas_id, ...


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(text: object) -> str:
    """A text cell no spreadsheet evaluates: a leading formula character gets a `'` in front (OWASP)."""
    value = str(text)
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def number(value: float | None) -> str:
    """A score as a spreadsheet reads it: 12, 12.5, never 12.0000001."""
    if value is None:
        return ""
    rounded = round(float(value), 4)
    return str(int(rounded)) if rounded == int(rounded) else f"{rounded:g}"


@dataclass(frozen=True)
class Context:
    """What every sheet of one batch shares: the exercises' columns, titles and points, and the export's kind."""

    exercise_ids: list[str]
    titles: dict[str, str]
    max_scores: dict[str, float]
    moodle_worksheet: bool = False


@dataclass(frozen=True)
class Line:
    """One student's row, computed once for every sheet: the score cells, the totals, the status column."""

    scores: list[str]
    total: str
    max_total: str
    status: str


@dataclass(frozen=True)
class Sheet:
    """One CSV file of the class: its name, its header rows, and a student's row. Registered with @sheet."""

    filename: str
    header: Callable[[Context], list[list[str]]]
    row: Callable[[Row, Line, Context], list[str]]


SHEETS: dict[str, Sheet] = {}  # filename -> sheet, in the order they are written


def sheet(filename: str, header: Callable[[Context], list[list[str]]]) -> Callable[[Any], Any]:
    """Register a gradebook writer: `header` gives its first rows, the decorated function a student's row."""
    def register(row: Callable[[Row, Line, Context], list[str]]) -> Callable[[Row, Line, Context], list[str]]:
        SHEETS[filename] = Sheet(filename, header, row)
        return row
    return register


@sheet("gradebook.csv", lambda c: [["student", *c.exercise_ids, "total", "max_total", "status"]])
def _gradebook_row(row: Row, line: Line, context: Context) -> list[str]:
    return [csv_cell(row.student), *line.scores, line.total, line.max_total, csv_cell(line.status)]


def _canvas_header(context: Context) -> list[list[str]]:
    columns = [csv_cell(canvas_column(e, context.titles.get(e, ""))) for e in context.exercise_ids]
    return [[*CANVAS_FIXED, *columns],
            ["Points Possible", "", "", "", "", *(number(context.max_scores.get(e)) for e in context.exercise_ids)]]


@sheet("canvas.csv", _canvas_header)
def _canvas_row(row: Row, line: Line, context: Context) -> list[str]:
    who = row.identity
    name = str(who.get("name") or row.student)
    if who.get("canvas_id"):
        ids = [str(who["canvas_id"]), "", ""]  # Canvas matches on its own user id first
    else:
        sis = str(who.get("sis_id") or row.student)
        ids = ["", sis, sis]
    return [csv_cell(name), *(csv_cell(i) for i in ids), "", *line.scores]


@sheet("moodle.csv", lambda c: [[*(MOODLE_WORKSHEET_ID if c.moodle_worksheet else (MOODLE_ID,)), *c.exercise_ids]])
def _moodle_row(row: Row, line: Line, context: Context) -> list[str]:
    if context.moodle_worksheet:
        who = row.identity
        participant = who.get("moodle_participant")
        name = str(who.get("name") or row.student)
        first = [f"Participant {participant}" if participant else csv_cell(row.student), csv_cell(name)]
    else:
        first = [csv_cell(row.student)]
    return [*first, *line.scores]


class Writers:
    """Every registered sheet (SHEETS), open together; `add` writes one student's row to each of them."""

    def __init__(self, out: Path, exercise_ids: list[str], titles: dict[str, str],
                 max_scores: dict[str, float], moodle_worksheet: bool = False):
        self.context = Context(exercise_ids, titles, max_scores, moodle_worksheet)
        self._files: list[tuple[TextIO, Path, Path]] = []  # (handle, temporary, final)
        self._sheets = [(s, self._open(out / s.filename)) for s in SHEETS.values()]
        for each, writer in self._sheets:
            writer.writerows(each.header(self.context))

    def _open(self, path: Path) -> Any:
        # Written beside the final name and renamed at the end: a reader never sees half a gradebook.
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        handle = temporary.open("w", newline="", encoding="utf-8")
        self._files.append((handle, temporary, path))
        return csv.writer(handle)

    def add(self, row: Row) -> None:
        ids, max_scores = self.context.exercise_ids, self.context.max_scores
        cells = [row.cells.get(e, Cell(None, None, CellStatus.MISSING)) for e in ids]
        total = sum(c.score for c in cells if c.score is not None)
        max_total = sum(max_scores.get(e, 0.0) for e in ids)
        status = "; ".join(f"{e}: {c.status}" for e, c in zip(ids, cells, strict=True) if c.status)
        line = Line([number(c.score) for c in cells], number(total), number(max_total), status)
        for each, writer in self._sheets:
            writer.writerow(each.row(row, line, self.context))

    def close(self, keep: bool = True) -> None:
        for handle, temporary, final in self._files:
            handle.close()
            if keep:
                os.replace(temporary, final)
            else:
                temporary.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(keep=exc_type is None)


def canvas_column(exercise_id: str, title: str) -> str:
    return f"{exercise_id}: {title}" if title else exercise_id


def write_all(out: Path, exercise_ids: list[str], titles: dict[str, str], max_scores: dict[str, float],
              rows: Iterable[Row], moodle_worksheet: bool = False) -> list[Path]:
    """Write every registered sheet (gradebook.csv, canvas.csv, moodle.csv) under `out`; returns their paths."""
    with Writers(out, exercise_ids, titles, max_scores, moodle_worksheet) as writers:
        for row in rows:
            writers.add(row)
    return [out / name for name in SHEETS]
