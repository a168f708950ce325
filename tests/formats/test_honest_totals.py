"""Honest totals (issue 25): where the hidden checks did not run (the student wheel ships no hidden/), every
view says the visible checks' total and how many points the hidden checks graded at submission hold."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from grader.course import exercises
from grader.formats import gradescope, html, human, prairielearn
from grader.model.report import CheckResult, Report, RunStatus, Status, Submission, to_dict, totals, validation_errors

ROOT = Path(__file__).resolve().parents[2]
PENDING = "visible checks: 12/12; 4 more points are hidden checks graded at submission"


@pytest.mark.parametrize("exercise_id", exercises.exercise_ids())
def test_the_declared_hidden_points_are_the_hidden_checks_points(exercise_id):
    folder = exercises.course_root() / exercise_id
    hidden = tomllib.loads((folder / "hidden" / "spec.toml").read_text("utf-8"))
    declared = tomllib.loads((folder / "spec.toml").read_text("utf-8")).get("hidden_points")
    assert declared == sum(c["points"] for c in hidden["checks"])
    assert exercises.load(exercise_id).hidden_points == declared


def report(pending: float) -> Report:
    check = CheckResult(name="forward", status=Status.PASSED, score=12.0, max_score=12.0, symptom="ok",
                        visibility="visible")
    return Report(exercise="ex03", title="t", submission=Submission("ex03.py", "0" * 64, "py", 1), checks=(check,),
                  devices=("cpu",), grader_version="0", versions={"python": "3", "numpy": "2", "torch": "2"},
                  sandbox={"tier": "process"}, hidden_pending=pending, status=RunStatus.OK)


def test_every_view_says_the_hidden_points_remain():
    pending = report(4.0)
    assert totals(pending) == PENDING
    text = human.render(pending)
    assert PENDING in text and "Well done" not in text
    page = html.render(pending)
    assert PENDING in page and "all visible checks passed</span>" in page and ">full marks</span>" not in page
    assert PENDING in json.dumps(gradescope.results(pending))
    assert PENDING in json.dumps(prairielearn.results(pending))
    assert totals(report(0.0)) == "12/12" and "Well done" in human.render(report(0.0))


@pytest.mark.slow
def test_a_run_without_the_hidden_checks_says_so_on_a_correct_submission(grade_file):
    """As the student wheel grades (no hidden/ there: the same checks run), the totals say what remains."""
    graded = grade_file("ex03", ROOT / "solutions" / "ex03.py", include_hidden=False)
    assert graded.full_marks and graded.hidden_pending == 4
    text = human.render(graded)
    assert PENDING in text and "Well done" not in text
    assert to_dict(graded)["hidden_pending"] == 4 and not validation_errors(to_dict(graded))
    assert grade_file("ex03", ROOT / "solutions" / "ex03.py").hidden_pending == 0
