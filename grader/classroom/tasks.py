"""What a batch grades and keeps: one task per (student, exercise), where its report and problem go, the roster."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.classroom import layouts
from grader.formats.files import (  # moved to files.py, still named here
    write_atomic as write_atomic,
)
from grader.model import sanitize

PROBLEM_SUFFIX = ".problem.json"


ROSTER = "roster.json"


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
