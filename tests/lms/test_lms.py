"""LMS formats against their published shapes: Gradescope and PrairieLearn results.json (and their
autograder entry points, run in temporary copies of the containers' layouts), Canvas and Moodle CSVs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from grader.classroom import gradebook
from grader.cli.main import main
from grader.formats import gradescope, prairielearn
from grader.lms import autograder as lms, validate

ROOT = Path(__file__).resolve().parents[2]
SOLUTION = ROOT / "solutions" / "ex03.py"

# Gradescope, "Autograder Specifications" → "Output format" (results.json): every key it documents, and nothing
# else, so a typo in ours fails here. PrairieLearn, "External grading" → "Grading results": score is a fraction;
# gradable false means the submission is not counted. Both ship with the package (`grade validate` reads them).
GRADESCOPE_SCHEMA = validate.lms_schema("gradescope")
PRAIRIELEARN_SCHEMA = validate.lms_schema("prairielearn")


def valid(data: dict, schema: dict) -> dict:
    jsonschema.Draft202012Validator(schema).validate(data)
    return data


def buggy(tmp_path: Path) -> Path:
    path = tmp_path / "ex03.py"
    path.write_text(SOLUTION.read_text("utf-8").replace("w.grad.zero_()", "pass"), "utf-8")
    return path


# ---- Gradescope

@pytest.mark.slow
def test_gradescope_results_of_a_buggy_submission(grade_file, tmp_path):
    report = grade_file("ex03", buggy(tmp_path))
    data = valid(gradescope.results(report), GRADESCOPE_SCHEMA)
    assert data["score"] == report.score < report.max_score
    assert sum(t["score"] for t in data["tests"]) == pytest.approx(data["score"])
    by_name = {t["name"]: t for t in data["tests"]}
    for check in report.checks:
        test = by_name[check.name]
        assert test["visibility"] == ("after_published" if check.visibility == "hidden" else "visible")
        assert test["status"] == ("passed" if check.passed else "failed")
        assert test["max_score"] == check.max_score
        if not check.passed:
            assert check.message in test["output"]
    assert any(t["visibility"] == "after_published" for t in data["tests"])
    json.dumps(data)  # plain JSON all the way down


@pytest.mark.slow
def test_run_autograder_in_gradescopes_layout(tmp_path):
    submission = tmp_path / "autograder" / "submission"
    (submission / "nested").mkdir(parents=True)
    (submission / "nested" / "ex03.py").write_text(SOLUTION.read_text("utf-8"), "utf-8")
    results = tmp_path / "autograder" / "results" / "results.json"
    outcome = CliRunner().invoke(main, ["gradescope", "--submission", str(submission), "--results", str(results)])
    assert outcome.exit_code == 0, outcome.output
    data = valid(json.loads(results.read_text("utf-8")), GRADESCOPE_SCHEMA)
    assert data["score"] == 16 and all(t["status"] == "passed" for t in data["tests"])
    assert data["extra_data"]["exercise"] == "ex03"


def test_run_autograder_without_a_submission_still_writes_results(tmp_path):
    submission = tmp_path / "submission"
    submission.mkdir()
    (submission / "notes.txt").write_text("hello", "utf-8")
    results = tmp_path / "results" / "results.json"
    data = lms.run_gradescope("ex03", submission, results)
    assert valid(json.loads(results.read_text("utf-8")), GRADESCOPE_SCHEMA) == data
    assert data["score"] == 0 and "ex03.py" in data["output"]


def test_find_submission_prefers_the_shallowest_py(tmp_path):
    (tmp_path / "deep").mkdir()
    (tmp_path / "deep" / "ex03.py").write_text("x = 1\n", "utf-8")
    (tmp_path / "ex03.ipynb").write_text("{}", "utf-8")
    assert lms.find_submission(tmp_path) == ("ex03", tmp_path / "ex03.ipynb")
    (tmp_path / "ex03.py").write_text("x = 1\n", "utf-8")
    assert lms.find_submission(tmp_path) == ("ex03", tmp_path / "ex03.py")
    (tmp_path / "ex01.py").write_text("x = 1\n", "utf-8")
    with pytest.raises(lms.NoSubmission, match="several exercises"):
        lms.find_submission(tmp_path)
    assert lms.find_submission(tmp_path, "ex01") == ("ex01", tmp_path / "ex01.py")


def test_find_submission_ignores_links(tmp_path):
    (tmp_path / "ex03.py").symlink_to(SOLUTION)
    with pytest.raises(lms.NoSubmission):
        lms.find_submission(tmp_path)


# ---- PrairieLearn

@pytest.mark.slow
def test_prairielearn_results_of_a_buggy_submission(grade_file, tmp_path):
    report = grade_file("ex03", buggy(tmp_path))
    data = valid(prairielearn.results(report), PRAIRIELEARN_SCHEMA)
    assert data["gradable"] is True
    assert data["score"] == pytest.approx(report.score / report.max_score)
    assert [t["points"] for t in data["tests"]] == [c.score for c in report.checks]
    assert [t["max_points"] for t in data["tests"]] == [c.max_score for c in report.checks]
    hidden = [(c, t) for c, t in zip(report.checks, data["tests"], strict=True) if c.visibility == "hidden"]
    assert hidden
    for check, test in hidden:
        assert check.message not in test["message"] or check.passed  # hidden details stay hidden
    revealed = prairielearn.results(report, reveal_hidden=True)
    assert [t["message"].split("\n")[0] for t in revealed["tests"]] == [c.message for c in report.checks]


@pytest.mark.slow
def test_prairielearn_entry_point_in_its_layout(tmp_path):
    student = tmp_path / "grade" / "student"
    student.mkdir(parents=True)
    (student / "ex03.py").write_text(SOLUTION.read_text("utf-8"), "utf-8")
    results = tmp_path / "grade" / "results" / "results.json"
    outcome = CliRunner().invoke(main, ["prairielearn", "ex03", "--submission", str(student),
                                        "--results", str(results)])
    assert outcome.exit_code == 0, outcome.output
    data = valid(json.loads(results.read_text("utf-8")), PRAIRIELEARN_SCHEMA)
    assert data["score"] == 1.0 and data["gradable"]


def test_prairielearn_missing_file_is_not_gradable(tmp_path):
    data = valid(lms.run_prairielearn("ex03", tmp_path, tmp_path / "results.json"), PRAIRIELEARN_SCHEMA)
    assert data["gradable"] is False and data["score"] == 0


# ---- CSV for Canvas and Moodle

def _rows() -> list[gradebook.Row]:
    return [
        gradebook.Row("ana", {"ex01": gradebook.Cell(10.0, 10.0, None), "ex03": gradebook.Cell(12.5, 15.0, None)}),
        gradebook.Row("ben", {"ex01": gradebook.Cell(0.0, 10.0, "timeout")}),  # ex03 missing
    ]


def _read(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_canvas_csv_has_canvas_import_columns_and_points_possible(tmp_path):
    gradebook.write_all(tmp_path, ["ex01", "ex03"], {"ex01": "By hand", "ex03": "Autograd"},
                        {"ex01": 10.0, "ex03": 15.0}, _rows())
    rows = _read(tmp_path / "canvas.csv")
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "ex01: By hand", "ex03: Autograd"]
    assert rows[1][0] == "Points Possible" and rows[1][5:] == ["10", "15"]
    assert rows[2] == ["ana", "", "ana", "ana", "", "10", "12.5"]
    assert rows[3] == ["ben", "", "ben", "ben", "", "0", ""]  # a missing submission leaves the grade alone
    assert all(len(row) == len(rows[0]) for row in rows)


def test_moodle_csv_has_an_identifier_and_one_column_per_grade_item(tmp_path):
    gradebook.write_all(tmp_path, ["ex01", "ex03"], {}, {"ex01": 10.0, "ex03": 15.0}, _rows())
    assert _read(tmp_path / "moodle.csv") == [["Username", "ex01", "ex03"], ["ana", "10", "12.5"], ["ben", "0", ""]]


def test_gradebook_csv_totals_and_statuses(tmp_path):
    gradebook.write_all(tmp_path, ["ex01", "ex03"], {}, {"ex01": 10.0, "ex03": 15.0}, _rows())
    with (tmp_path / "gradebook.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0] == {"student": "ana", "ex01": "10", "ex03": "12.5", "total": "22.5", "max_total": "25",
                       "status": ""}
    assert rows[1]["status"] == "ex01: timeout; ex03: missing" and rows[1]["total"] == "0"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_grader_that_cannot_run_is_not_a_zero(tmp_path, monkeypatch):
    from grader.sandbox.client import SandboxFailure

    def broken(*args, **kwargs):
        raise SandboxFailure("the grading worker did not start")

    monkeypatch.setattr("grader.grading.pipeline.grade", broken)
    (tmp_path / "ex03.py").write_text("x = 1\n", "utf-8")
    data = valid(lms.run_prairielearn("ex03", tmp_path, tmp_path / "pl.json"), PRAIRIELEARN_SCHEMA)
    assert data["gradable"] is False and "did not start" in data["message"]
    results = tmp_path / "gs" / "results.json"
    outcome = CliRunner().invoke(main, ["gradescope", "ex03", "--submission", str(tmp_path), "--results",
                                        str(results)])
    # Exit 3 (the grader failed), and still a results file that says so: without one Gradescope shows nothing.
    assert outcome.exit_code == 3, outcome.output
    written = json.loads(results.read_text("utf-8"))
    assert written["score"] == 0 and "did not start" in written["output"] and "not your doing" in written["output"]
    assert written["extra_data"]["status"] == "grader-failure"
    pl = tmp_path / "pl" / "results.json"
    outcome = CliRunner().invoke(main, ["prairielearn", "ex03", "--submission", str(tmp_path), "--results", str(pl)])
    assert outcome.exit_code == 3 and json.loads(pl.read_text("utf-8"))["gradable"] is False
