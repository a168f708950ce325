"""The Gradescope zip and the PrairieLearn question folder, each run through its own entry point on the
platform's documented layout, played in a temporary root (AUTOGRADER_ROOT, PL_GRADE_ROOT; GRADE_BIN is
this checkout's `grade`, standing in for what setup.sh / the Dockerfile install)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_lms import GRADESCOPE_SCHEMA, PRAIRIELEARN_SCHEMA, valid

from grader import exercises, hints, packaging
from grader.cli import main

ROOT = Path(__file__).resolve().parent.parent
GRADE = Path(sys.executable).parent / "grade"
BUGGY = (ROOT / "tests" / "submissions" / "ex03" / "bug_no_zero_grad.py").read_text("utf-8")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return packaging.build_wheel(tmp_path_factory.mktemp("wheel"))


def run_entry(script: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(script)], env={**os.environ, "GRADE_BIN": str(GRADE), **env},
                          capture_output=True, text=True, timeout=300, check=False)


def gradescope_root(tmp_path: Path, package: Path) -> Path:
    """/autograder as Gradescope lays it out: the zip in source/, run_autograder beside it, submission/."""
    root = tmp_path / "autograder"
    with zipfile.ZipFile(package) as archive:
        archive.extractall(root / "source")
        modes = {info.filename: info.external_attr >> 16 for info in archive.infolist()}
    assert modes["setup.sh"] & stat.S_IXUSR and modes["run_autograder"] & stat.S_IXUSR
    (root / "run_autograder").write_bytes((root / "source" / "run_autograder").read_bytes())
    (root / "submission").mkdir()
    return root


@pytest.mark.slow
def test_gradescope_zip_grades_on_gradescopes_layout(tmp_path, wheel):
    package = packaging.gradescope_package("ex03", tmp_path / "autograder.zip", wheel)
    names = zipfile.ZipFile(package).namelist()
    assert {"setup.sh", "run_autograder", "constraints.txt", wheel.name, "course/ex03/hidden/spec.toml"} <= set(names)
    root = gradescope_root(tmp_path, package)
    setup = (root / "source" / "setup.sh").read_text("utf-8")
    assert f"./{wheel.name}" in setup and "-c constraints.txt" in setup and "whl/cpu" in setup
    assert subprocess.run(["bash", "-n", str(root / "source" / "setup.sh")], check=False).returncode == 0
    assert "torch==2.13.0" in (root / "source" / "constraints.txt").read_text("utf-8")
    (root / "submission" / "ex03.py").write_text(BUGGY, "utf-8")
    done = run_entry(root / "run_autograder", AUTOGRADER_ROOT=str(root))
    assert done.returncode == 0, done.stderr
    data = valid(json.loads((root / "results" / "results.json").read_text("utf-8")), GRADESCOPE_SCHEMA)
    assert 0 < data["score"] < 15 and data["output_format"] == "md" and data["test_output_format"] == "md"
    hint = {h.number: h.text for h in hints.load("ex03")}
    diagnosed = [t for t in data["tests"] if "grad-not-zeroed" in t["output"]]
    assert diagnosed and all(f"**Hint 2:** {hint[2]}" in t["output"] for t in diagnosed)
    assert "grade hint" not in json.dumps(data)  # a Gradescope student cannot run it
    assert any(t["visibility"] == "after_published" for t in data["tests"])  # hidden checks came along


@pytest.mark.slow
def test_gradescope_wrongly_named_upload_names_what_was_found(tmp_path, wheel):
    root = gradescope_root(tmp_path, packaging.gradescope_package("ex03", tmp_path / "a.zip", wheel))
    (root / "submission" / "Ex03.py").write_text(BUGGY, "utf-8")
    (root / "submission" / "notes.txt").write_text("hi", "utf-8")
    done = run_entry(root / "run_autograder", AUTOGRADER_ROOT=str(root))
    assert done.returncode == 0, done.stderr
    data = valid(json.loads((root / "results" / "results.json").read_text("utf-8")), GRADESCOPE_SCHEMA)
    assert data["score"] == 0 and "ex03.py" in data["output"]
    assert "Found: Ex03.py, notes.txt" in data["output"]


@pytest.mark.slow
def test_prairielearn_folder_grades_on_prairielearns_layout(tmp_path, wheel):
    question = packaging.prairielearn_package("ex03", tmp_path / "question", wheel)
    info = json.loads((question / "info.json").read_text("utf-8"))
    assert info["gradingMethod"] == "External" and info["type"] == "v3"
    options = info["externalGradingOptions"]
    assert options["enabled"] is True and options["entrypoint"] == "/grade/tests/run.sh" and options["image"]
    page = (question / "question.html").read_text("utf-8")
    assert 'file-name="ex03.py"' in page and 'source-file-name="ex03.py"' in page
    assert "<pl-external-grader-results>" in page and exercises.load("ex03").title in page
    assert (question / "ex03.py").read_text("utf-8") == exercises.load("ex03").stub
    assert (question / "tests" / wheel.name).is_file() and (question / "tests" / "course" / "ex03" / "hidden").is_dir()
    assert wheel.name in (question / "tests" / "Dockerfile").read_text("utf-8")
    # /grade as PrairieLearn lays it out: tests/ copied from the question, the student's files in student/
    root = tmp_path / "grade"
    (root / "student").mkdir(parents=True)
    (root / "tests").symlink_to(question / "tests", target_is_directory=True)
    (root / "student" / "ex03.py").write_text(BUGGY, "utf-8")
    done = run_entry(root / "tests" / "run.sh", PL_GRADE_ROOT=str(root))
    assert done.returncode == 0, done.stderr
    results = root / "results" / "results.json"
    data = valid(json.loads(results.read_text("utf-8")), PRAIRIELEARN_SCHEMA)
    assert data["gradable"] is True and 0 < data["score"] < 1
    assert [i["url"][:22] for i in data["images"]] == ["data:image/png;base64,"]
    assert results.stat().st_size < 1_000_000  # PrairieLearn's limit
    hint = {h.number: h.text for h in hints.load("ex03")}
    assert any(hint[2] in t["message"] for t in data["tests"] if "grad-not-zeroed" in t["message"])
    # an image without the grader still answers, and the attempt does not count
    done = run_entry(root / "tests" / "run.sh", PL_GRADE_ROOT=str(root), GRADE_BIN="no-such-grade")
    assert done.returncode == 0
    assert json.loads(results.read_text("utf-8"))["gradable"] is False


def test_package_commands_refuse_cleanly(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x", "utf-8")
    outcome = CliRunner().invoke(main, ["prairielearn-package", "ex03", "--out", str(tmp_path / "full"),
                                        "--wheel", __file__])
    assert outcome.exit_code == 1 and "not empty" in outcome.output
    outcome = CliRunner().invoke(main, ["gradescope-package", "ex99"])
    assert outcome.exit_code == 2
