"""Hints: the next one for an exercise (remembering where the student is), and which hint fits a diagnosis."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

from grader import exercises
from grader.report import Report


def state_file() -> Path:
    """Where hint progress is kept: $GRADER_STATE, else ./.grade-hints.json next to the student's work."""
    return Path(os.environ.get("GRADER_STATE", ".grade-hints.json"))


def _load_state() -> dict[str, int]:
    try:
        data = json.loads(state_file().read_text("utf-8"))
        return {k: int(v) for k, v in data.items()} if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def next_hint_text(exercise_id: str, show_all: bool = False, reset: bool = False) -> str:
    hints = exercises.load(exercise_id).hints()
    if not hints:
        return f"No hints for {exercise_id}."
    if show_all:
        return "\n\n".join(f"Hint {i}/{len(hints)}:\n{text}" for i, text in enumerate(hints, 1))
    state = _load_state()
    shown = 0 if reset else state.get(exercise_id, 0)
    index = min(shown, len(hints) - 1)
    state[exercise_id] = index + 1
    try:
        state_file().write_text(json.dumps(state, indent=1), "utf-8")
    except OSError:
        pass
    more = "" if index + 1 < len(hints) else " (that was the last one; `--all` shows them all)"
    return f"Hint {index + 1}/{len(hints)}{more}:\n{hints[index]}"


def hint_for(exercise_id: str, diagnosis: str) -> int | None:
    """The 1-based index of the first hint that names the diagnosis code or its key words."""
    keywords = {diagnosis, diagnosis.replace("-", " ")}
    for index, text in enumerate(exercises.load(exercise_id).hints(), 1):
        lowered = text.lower()
        if any(k in lowered for k in keywords):
            return index
    return None


def annotate(report: Report) -> Report:
    checks = tuple(
        replace(c, hint=hint_for(report.exercise, c.diagnosis)) if c.diagnosis and c.hint is None else c
        for c in report.checks
    )
    return report.with_checks(checks)
