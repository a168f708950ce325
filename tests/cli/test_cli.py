"""The `grade` command: exit statuses, one-line usage errors, JSON on stdout and nothing else, schema, validate.

Most tests run the click app in-process with CliRunner and lend it the session's warm worker; two run
the installed `grade` script in a real subprocess, where a stray print would really reach stdout.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from conftest import cuda_available

from grader.cli.main import main
from grader.grading import pipeline as grading
from grader.model import report

ROOT = Path(__file__).resolve().parents[2]
GRADE = Path(sys.executable).parent / "grade"
SOLUTION = ROOT / "solutions" / "ex03.py"
STUB = ROOT / "exercises" / "ex03" / "stub.py"
NOISY = (
    "import sys\n"
    "print('NOISE-AT-IMPORT')\n"
    "print('NOISE-ON-STDERR', file=sys.stderr)\n"
    "sys.stdout.write('{\"score\": 1e9}\\n')\n"
)


class Borrowed:
    """The session's warm worker, lent to the CLI: `close()` leaves it running for the next test."""

    def __init__(self, worker: Any):
        self._worker = worker

    def __getattr__(self, name: str) -> Any:
        return getattr(self._worker, name)

    def close(self) -> None:
        pass


@pytest.fixture
def cli(workers, monkeypatch):
    """cli(*args) -> Result: `grade ARGS` in-process, stdout and stderr kept apart."""
    monkeypatch.setattr(grading, "start_worker",
                        lambda exercise_id, device="auto": Borrowed(workers.get(exercise_id, device != "cpu")))

    def run(*args: str | Path) -> Result:
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)

    return run


def one_line_error(result: Result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


# ---------------------------------------------------------------- usage errors: exit 2, one line


def test_missing_file_is_a_usage_error(cli, tmp_path: Path) -> None:
    result = cli("ex03", tmp_path / "nope.py")
    assert result.exit_code == 2
    assert "no such file" in one_line_error(result)
    assert result.stdout == ""


def test_directory_is_a_usage_error(cli, tmp_path: Path) -> None:
    result = cli("ex03", tmp_path)
    assert result.exit_code == 2
    assert "not a file" in one_line_error(result)


def test_no_file_and_no_default_is_a_usage_error(cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli("ex03")
    assert result.exit_code == 2
    assert "grade init ex03" in one_line_error(result)


@pytest.mark.parametrize("args", [("ex99", "x.py"), ("exfoo", "x.py"), ("hint", "ex99"), ("init", "ex00")])
def test_unknown_exercise_is_a_usage_error(cli, args: tuple[str, ...]) -> None:
    result = cli(*args)
    assert result.exit_code == 2
    assert "unknown exercise" in one_line_error(result)


@pytest.mark.parametrize("option", [("--device", "tpu"), ("--timeout", "0"), ("--memory", "1"),
                                    ("--format", "yaml")])
def test_bad_option_is_a_usage_error(cli, option: tuple[str, str]) -> None:
    result = cli("ex03", SOLUTION, *option)
    assert result.exit_code == 2
    assert option[0] in one_line_error(result)


@pytest.mark.parametrize("args", [("--bogus",), ("validate",), ("init",), ("ex03", SOLUTION, "extra")])
def test_malformed_command_line_is_a_one_line_usage_error(cli, args: tuple[str, ...]) -> None:
    result = cli(*args)
    assert result.exit_code == 2
    one_line_error(result)


@pytest.mark.skipif(cuda_available(), reason="CUDA is available here, so --device cuda is not an error")
def test_absent_cuda_is_a_usage_error(cli) -> None:
    result = cli("ex03", SOLUTION, "--device", "cuda")
    assert result.exit_code == 2
    assert "CUDA is not available" in one_line_error(result)
    assert result.stdout == ""


# ---------------------------------------------------------------- grading: exit 0 / 1, outputs


@pytest.mark.slow
def test_solution_exits_0_and_stub_exits_1(cli) -> None:
    good = cli("ex03", SOLUTION)
    assert good.exit_code == 0, good.output
    stub = cli("ex03", STUB)
    assert stub.exit_code == 1, stub.output
    assert "not-implemented" in stub.stdout or "Not implemented" in stub.stdout


@pytest.mark.slow
def test_default_file_is_exercise_py_in_the_current_directory(cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ex03.py").write_text(SOLUTION.read_text("utf-8"), "utf-8")
    result = cli("ex03", "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["submission"]["path"] == "ex03.py"


@pytest.mark.slow
def test_json_output_is_the_report_and_nothing_else(cli, tmp_path: Path) -> None:
    noisy = tmp_path / "ex03.py"
    noisy.write_text(NOISY + SOLUTION.read_text("utf-8"), "utf-8")
    result = cli("ex03", noisy, "--format", "json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert report.validation_errors(data) == []
    assert data["full_marks"] is True and data["score"] == data["max_score"]
    assert "NOISE" not in result.stdout.replace(json.dumps(data["output"])[1:-1], "")
    assert "NOISE-AT-IMPORT" in data["output"]  # kept for the student, inside the report only
    assert "NOISE" not in result.stderr


@pytest.mark.slow
def test_report_option_writes_the_same_report(cli, tmp_path: Path) -> None:
    path = tmp_path / "out" / "report.json"
    result = cli("ex03", STUB, "--format", "json", "--report", path)
    assert result.exit_code == 1
    written = json.loads(path.read_text("utf-8"))
    assert report.validation_errors(written) == []
    assert written == json.loads(result.stdout)
    assert written["score"] == 0


@pytest.mark.slow
def test_crashing_submission_is_exit_1_with_a_report(cli, tmp_path: Path) -> None:
    crash = tmp_path / "ex03.py"
    crash.write_text("import os\nos._exit(9)\n", "utf-8")
    path = tmp_path / "report.json"
    result = cli("ex03", crash, "--report", path)
    assert result.exit_code == 1
    data = json.loads(path.read_text("utf-8"))
    assert report.validation_errors(data) == []
    assert data["score"] == 0 and "exit status 9" in data["error"]
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_short_timeout_option_stops_an_endless_loop(cli, tmp_path: Path) -> None:
    looping = tmp_path / "ex03.py"
    looping.write_text(SOLUTION.read_text("utf-8").replace("    history = []\n", "    while True: pass\n", 1), "utf-8")
    result = cli("ex03", looping, "--timeout", "2", "--format", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert report.validation_errors(data) == []
    train = [c for c in data["checks"] if c["name"].startswith("train")]
    assert train and {c["status"] for c in train} <= {"timeout", "skipped"}  # the call's own budget stopped it
    assert any("did not return within" in c["message"] for c in train)


# ---------------------------------------------------------------- schema and validate


def test_schema_prints_the_packaged_json_schema(cli) -> None:
    result = cli("schema")
    assert result.exit_code == 0
    printed = json.loads(result.stdout)
    assert printed == report.schema()
    assert printed["$schema"].startswith("https://json-schema.org/")
    assert "checks" in printed["required"]


@pytest.mark.slow
def test_validate_accepts_a_real_report_and_rejects_tampered_ones(cli, tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    assert cli("ex03", SOLUTION, "--report", good).exit_code == 0
    result = cli("validate", good)
    assert result.exit_code == 0 and "valid" in result.stdout

    data = json.loads(good.read_text("utf-8"))
    tampered = {
        "bad-status": lambda d: d["checks"][0].update(status="excellent"),
        "negative-score": lambda d: d.update(score=-1),
        "unknown-field": lambda d: d.update(bonus=10),
        "missing-checks": lambda d: d.pop("checks"),
        "bad-diagnosis": lambda d: d["checks"][0].update(diagnosis="cheating"),
    }
    paths = []
    for name, edit in tampered.items():
        copy = json.loads(json.dumps(data))
        edit(copy)
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(copy), "utf-8")
    not_json = tmp_path / "not-json.json"
    not_json.write_text("{ nope", "utf-8")
    result = cli("validate", good, *paths, not_json)
    assert result.exit_code == 1
    assert f"{good}: valid" in result.stdout
    for path in [*paths, not_json]:
        assert f"{path}: INVALID" in result.stdout


def test_validate_missing_file_is_a_usage_error(cli, tmp_path: Path) -> None:
    result = cli("validate", tmp_path / "none.json")
    assert result.exit_code == 2
    one_line_error(result)


# ---------------------------------------------------------------- the real script, in a subprocess


@pytest.mark.slow
def test_installed_script_json_stdout_is_pure(tmp_path: Path) -> None:
    noisy = tmp_path / "ex03.py"
    noisy.write_text(NOISY + SOLUTION.read_text("utf-8"), "utf-8")
    run = subprocess.run([str(GRADE), "ex03", str(noisy), "--format", "json", "--device", "cpu"],
                         check=False, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert report.validation_errors(data) == []
    assert "NOISE" not in run.stdout.replace(json.dumps(data["output"])[1:-1], "")
    assert "NOISE" not in run.stderr


@pytest.mark.slow
def test_installed_script_usage_error_is_one_line(tmp_path: Path) -> None:
    run = subprocess.run([str(GRADE), "ex03", str(tmp_path / "missing.py")],
                         check=False, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 2
    assert run.stdout == ""
    assert [line for line in run.stderr.splitlines() if line.strip()] == [
        f"Error: no such file: {tmp_path / 'missing.py'}"
    ]


@pytest.mark.slow
def test_validate_checks_meaning_and_the_lms_results_files(cli, tmp_path: Path) -> None:
    """Shape is not enough: a report scoring 99 of 15 is invalid; Gradescope and PrairieLearn files are recognised."""
    good = tmp_path / "good.json"
    assert cli("ex03", SOLUTION, "--report", good).exit_code == 0
    data = json.loads(good.read_text("utf-8"))
    meaning = {
        "score-above-max": (lambda d: d.update(score=99), "outside 0.."),
        "score-not-the-sum": (lambda d: d.update(score=d["score"] - 1, full_marks=True), "not the sum"),
        "max-not-the-sum": (lambda d: d.update(max_score=d["max_score"] + 1, score=d["score"] + 1), "maxima"),
        "passed-without-points": (lambda d: (d["checks"][0].update(score=0),
                                             d.update(score=d["score"] - d["checks"][0]["max_score"])),
                                  "passed, but scored"),
        "full-marks-lie": (lambda d: (d["checks"][0].update(status="failed", score=0),
                                      d.update(score=d["score"] - d["checks"][0]["max_score"])),
                           "full_marks"),
    }
    for name, (edit, words) in meaning.items():
        copy = json.loads(json.dumps(data))
        edit(copy)
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(copy), "utf-8")
        result = cli("validate", path)
        assert result.exit_code == 1, name
        assert f"{path}: INVALID (report)" in result.stdout and words in result.stdout, (name, result.stdout)

    results = tmp_path / "results"
    results.mkdir()
    submission = tmp_path / "submission"
    submission.mkdir()
    (submission / "ex03.py").write_text(SOLUTION.read_text("utf-8"), "utf-8")
    assert cli("gradescope", "ex03", "--submission", submission, "--results", results / "gs.json").exit_code == 0
    assert cli("prairielearn", "ex03", "--submission", submission, "--results", results / "pl.json").exit_code == 0
    result = cli("validate", results / "gs.json", results / "pl.json")
    assert result.exit_code == 0, result.stdout
    assert "gs.json: valid (gradescope)" in result.stdout and "pl.json: valid (prairielearn)" in result.stdout
    gs = json.loads((results / "gs.json").read_text("utf-8"))
    gs["tests"][0]["score"] = gs["tests"][0]["max_score"] + 5
    (results / "gs-bad.json").write_text(json.dumps(gs), "utf-8")
    pl = json.loads((results / "pl.json").read_text("utf-8"))
    pl["score"] = 0.5
    (results / "pl-bad.json").write_text(json.dumps(pl), "utf-8")
    result = cli("validate", results / "gs-bad.json", results / "pl-bad.json")
    assert result.exit_code == 1
    assert "gs-bad.json: INVALID (gradescope)" in result.stdout and "above its max_score" in result.stdout
    assert "pl-bad.json: INVALID (prairielearn)" in result.stdout and "points over their maxima" in result.stdout
