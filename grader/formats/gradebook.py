"""Class-wide CSV exports: the instructor's gradebook, plus Canvas and Moodle grade-import files.

All three are written from the same rows, one per student, in one pass, so a class of any size is
written without holding its reports in memory. A row's cells come from the reports on disk (see
grader/batch.py); a cell with no report carries a status instead of a score.

- `gradebook.csv`: student, one score column per exercise, total, max_total, status. The status column
  lists every exercise that did not grade cleanly ("ex03: timeout; ex05: missing"), empty otherwise.
- `canvas.csv`: Canvas's gradebook import shape: Student, ID, SIS User ID, SIS Login ID, Section, then one
  column per assignment, and a "Points Possible" row. Canvas matches a row by ID, then SIS User ID, then
  SIS Login ID; we know the student only by their folder name, so it goes into both SIS columns and ID
  stays blank. Assignment columns are matched by name (Canvas offers to create unknown ones).
- `moodle.csv`: Moodle's "Import grades from CSV": an identifier column (Username) and one column per
  grade item; the mapping of columns to grade items is chosen at import time.

An exercise a student did not submit, or that was not graded, is left blank in the LMS files: a blank
cell leaves the LMS grade untouched, while a crash or a timeout is a real graded zero.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Self, TextIO

CANVAS_FIXED = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
MOODLE_ID = "Username"


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


def number(value: float | None) -> str:
    """A score as a spreadsheet reads it: 12, 12.5, never 12.0000001."""
    if value is None:
        return ""
    rounded = round(float(value), 4)
    return str(int(rounded)) if rounded == int(rounded) else f"{rounded:g}"


class Writers:
    """The three CSV files, open together; `add` writes one student's row to each of them."""

    def __init__(self, out: Path, exercise_ids: list[str], titles: dict[str, str],
                 max_scores: dict[str, float]):
        self.exercise_ids = exercise_ids
        self.max_scores = max_scores
        self._files: list[tuple[TextIO, Path, Path]] = []  # (handle, temporary, final)
        self.gradebook = self._open(out / "gradebook.csv")
        self.gradebook.writerow(["student", *exercise_ids, "total", "max_total", "status"])
        self.canvas = self._open(out / "canvas.csv")
        columns = [canvas_column(e, titles.get(e, "")) for e in exercise_ids]
        self.canvas.writerow([*CANVAS_FIXED, *columns])
        self.canvas.writerow(["Points Possible", "", "", "", "",
                              *(number(max_scores.get(e)) for e in exercise_ids)])
        self.moodle = self._open(out / "moodle.csv")
        self.moodle.writerow([MOODLE_ID, *exercise_ids])

    def _open(self, path: Path) -> csv.writer:  # type: ignore[valid-type]
        # Written beside the final name and renamed at the end: a reader never sees half a gradebook.
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        handle = temporary.open("w", newline="", encoding="utf-8")
        self._files.append((handle, temporary, path))
        return csv.writer(handle)

    def add(self, row: Row) -> None:
        cells = [row.cells.get(e, Cell(None, None, "missing")) for e in self.exercise_ids]
        total = sum(c.score for c in cells if c.score is not None)
        max_total = sum(self.max_scores.get(e, 0.0) for e in self.exercise_ids)
        status = "; ".join(f"{e}: {c.status}" for e, c in zip(self.exercise_ids, cells, strict=True) if c.status)
        self.gradebook.writerow([row.student, *(number(c.score) for c in cells), number(total),
                                 number(max_total), status])
        self.canvas.writerow([row.student, "", row.student, row.student, "",
                              *(number(c.score) for c in cells)])
        self.moodle.writerow([row.student, *(number(c.score) for c in cells)])

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
              rows: Iterable[Row]) -> list[Path]:
    """Write gradebook.csv, canvas.csv and moodle.csv under `out`; returns their paths."""
    with Writers(out, exercise_ids, titles, max_scores) as writers:
        for row in rows:
            writers.add(row)
    return [out / "gradebook.csv", out / "canvas.csv", out / "moodle.csv"]
