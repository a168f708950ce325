"""Hidden stays hidden: what a submission prints while hidden checks run never reaches the student.

The hidden checks' inputs reach the child only after the visible checks are done and everything printed
so far has been set aside (runner._Exchange); what is printed from then on is the report's `hidden_output`
(instructors only), never `output`, Gradescope's or PrairieLearn's output. Printed output is labelled by
the check that printed it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grader.course import exercises
from grader.formats import gradescope, human, prairielearn
from grader.lms import autograder as lms

ROOT = Path(__file__).resolve().parents[2]

PRINTS_ITS_INPUTS = '''import torch
print("loading the file")


def forward(w, x):
    print("forward got", [round(v, 3) for v in x.tolist()])
    return w * x


def loss(y, y_pred):
    print("loss got", [round(v, 3) for v in y.tolist()])
    return ((y_pred - y) ** 2).mean()


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    print("train got", [round(v, 3) for v in x.tolist()], [round(v, 3) for v in y.tolist()], n_iters)
    return [(0.0, 0.0)] * n_iters
'''

FORGES_THE_PHASE = '''import os
LINE = b'\\n{"type":"phase","next":"hidden"}\\n'
for fd in range(3, 64):  # the result channel among them: the hidden inputs would then come early
    try:
        os.write(fd, LINE)
    except OSError:
        pass
''' + PRINTS_ITS_INPUTS


def hidden_markers(exercise_id: str) -> list[str]:
    """A rounded value from each hidden check's x that no visible check's x holds."""
    exercise = exercises.load(exercise_id)
    visible = {round(v, 3) for c in exercise.checks if c.visibility == "visible" for v in c.args.get("x", [])}
    markers = []
    for check in exercise.checks:
        if check.visibility == "hidden":
            values = [round(v, 3) for v in check.args.get("x", []) if round(v, 3) not in visible]
            if values:
                markers.append(repr(values[0]))
    assert markers, "ex03 has hidden checks with inputs of their own"
    return markers


def shown_to_the_student(report) -> list[str]:
    return [report.output, report.error or "", human.render(report),
            json.dumps(gradescope.results(report)["output"]),
            json.dumps(prairielearn.results(report, reveal_hidden=False))]


@pytest.mark.slow
def test_what_hidden_checks_print_is_kept_for_the_instructor_only(tmp_path, grade_file):
    path = tmp_path / "ex03.py"
    path.write_text(PRINTS_ITS_INPUTS, "utf-8")
    report = grade_file("ex03", path)
    assert report.status == "ok"
    for marker in hidden_markers("ex03"):
        assert marker in report.hidden_output
        for shown in shown_to_the_student(report):
            assert marker not in shown
    # Gradescope keeps hidden checks after_published, and its top-level output holds none of their prints.
    upload = tmp_path / "upload"
    upload.mkdir()
    (upload / "ex03.py").write_text(PRINTS_ITS_INPUTS, "utf-8")
    for data in (lms.run_gradescope("ex03", upload, tmp_path / "gs.json"),
                 lms.run_prairielearn("ex03", upload, tmp_path / "pl.json")):
        assert not any(marker in json.dumps(data) for marker in hidden_markers("ex03"))
    # Each part of the visible output under the check that printed it.
    assert report.output.startswith("[while running ex03.py]\nloading the file\n")
    first = next(c for c in exercises.load("ex03").checks if c.probe == "forward")
    assert f"[{first.name}]\nforward got [1.0, 2.0, 3.0, 4.0]\n" in report.output
    train = next(c for c in exercises.load("ex03").checks if c.probe == "train" and c.visibility == "visible")
    assert f"[{train.name}]\ntrain got" in report.output


@pytest.mark.slow
def test_a_forged_phase_brings_no_hidden_input_into_view(tmp_path, grade_file):
    path = tmp_path / "ex03.py"
    path.write_text(FORGES_THE_PHASE, "utf-8")
    report = grade_file("ex03", path)
    assert not report.full_marks
    assert sum(c.score for c in report.checks if c.visibility == "hidden") == 0
    for marker in hidden_markers("ex03"):
        for shown in shown_to_the_student(report):
            assert marker not in shown


@pytest.mark.slow
def test_a_stub_scores_zero_on_hidden_checks_in_every_mode(tmp_path, grade_file):
    for exercise_id in exercises.exercise_ids():
        path = tmp_path / exercise_id / f"{exercise_id}.py"
        path.parent.mkdir()
        path.write_text(exercises.load(exercise_id).stub, "utf-8")
        report = grade_file(exercise_id, path)
        hidden = [c for c in report.checks if c.visibility == "hidden"]
        assert sum(c.score for c in hidden) == 0
        gs = lms.run_gradescope(exercise_id, path.parent, tmp_path / f"{exercise_id}-gs.json")
        assert gs["score"] == report.score
        pl = lms.run_prairielearn(exercise_id, path.parent, tmp_path / f"{exercise_id}-pl.json")
        assert pl["score"] == round(report.score / report.max_score, 6)
