"""The course as a student meets it: `grade list`, `grade init`, and `grade EX FILE` on solutions and stubs.

Every solution must score full marks (exit 0) and every untouched stub zero (exit 1, each check
`not-implemented`), through the real command line, with reports that validate against the schema.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from grader.cli.main import main
from grader.course import exercises
from grader.model.report import validation_errors

ROOT = Path(__file__).resolve().parents[2]
EXERCISE_IDS = exercises.exercise_ids()


def grade_cli(exercise_id: str, path: Path, report: Path) -> tuple[int, str, dict[str, Any]]:
    """`grade EX FILE --report R`: (exit code, stdout, the JSON report)."""
    result = CliRunner().invoke(main, [exercise_id, str(path), "--report", str(report)])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{result.exception!r}\n{result.output}"
    )
    return result.exit_code, result.stdout, json.loads(report.read_text("utf-8"))


def test_list_shows_every_exercise_of_the_course() -> None:
    result = CliRunner().invoke(main, ["list"])
    assert result.exit_code == 0
    lines = result.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == EXERCISE_IDS and EXERCISE_IDS
    for line, exercise_id in zip(lines, EXERCISE_IDS, strict=False):
        assert exercises.load(exercise_id).title in line


@pytest.mark.parametrize("exercise_id", EXERCISE_IDS)
def test_init_writes_the_stub_and_never_overwrites_without_force(exercise_id: str, tmp_path: Path) -> None:
    runner = CliRunner()
    stub = exercises.load(exercise_id).stub
    target = tmp_path / f"{exercise_id}.py"
    assert runner.invoke(main, ["init", exercise_id, "--dir", str(tmp_path)]).exit_code == 0
    assert target.read_text("utf-8") == stub

    target.write_text("# my work\n", "utf-8")
    refused = runner.invoke(main, ["init", exercise_id, "--dir", str(tmp_path)])
    assert refused.exit_code == 2
    assert "--force" in refused.stderr
    assert target.read_text("utf-8") == "# my work\n"

    assert runner.invoke(main, ["init", exercise_id, "--dir", str(tmp_path), "--force"]).exit_code == 0
    assert target.read_text("utf-8") == stub


def test_every_exercise_is_complete() -> None:
    """Each exercise has its visible checks (hidden ones are optional) and points on every function it asks for."""
    for exercise_id in EXERCISE_IDS:
        exercise = exercises.load(exercise_id)
        visibilities = {c.visibility for c in exercise.checks}
        assert visibilities == ({"visible", "hidden"} if exercise.hidden_available else {"visible"}), exercise_id
        assert len({c.name for c in exercise.checks}) == len(exercise.checks), f"{exercise_id}: duplicate names"
        assert all(c.points > 0 for c in exercise.checks)
        assert any(c.compare == "trajectory" for c in exercise.checks), exercise_id
        # A probe is named after the student function it calls; ex05's model is probed as a whole.
        probes = {c.probe for c in exercise.checks}
        wanted = set(exercise.functions) - {"LinearRegression"}
        assert wanted <= probes, f"{exercise_id}: nothing checks {wanted - probes}"
        if "LinearRegression" in exercise.functions:
            assert {"structure", "model_forward"} <= probes


@pytest.mark.slow
@pytest.mark.parametrize("exercise_id", EXERCISE_IDS)
def test_solution_scores_full_marks(exercise_id: str, tmp_path: Path) -> None:
    code, stdout, report = grade_cli(exercise_id, exercises.solutions_root() / f"{exercise_id}.py",
                                     tmp_path / "r.json")
    assert validation_errors(report) == []
    failed = [(c["name"], c["message"]) for c in report["checks"] if c["status"] != "passed"]
    assert failed == []
    assert report["score"] == report["max_score"] > 0
    assert code == 0
    hidden = exercises.load(exercise_id).hidden_available
    assert {c["visibility"] for c in report["checks"]} == ({"visible", "hidden"} if hidden else {"visible"})
    assert f"{report['score']:g}/{report['max_score']:g}" in stdout


@pytest.mark.slow
@pytest.mark.parametrize("exercise_id", EXERCISE_IDS)
def test_untouched_stub_scores_zero_and_says_not_implemented(exercise_id: str, tmp_path: Path) -> None:
    stub = tmp_path / f"{exercise_id}.py"
    shutil.copy(exercises.course_root() / exercise_id / "stub.py", stub)
    code, _, report = grade_cli(exercise_id, stub, tmp_path / "r.json")
    assert validation_errors(report) == []
    assert code == 1
    assert report["score"] == 0
    assert report["max_score"] > 0
    assert {c["diagnosis"] for c in report["checks"]} == {"not-implemented"}
    assert all(c["score"] == 0 and c["status"] != "passed" for c in report["checks"])
