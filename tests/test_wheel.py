"""The wheel students install: the course's public files are in it; hidden checks, solutions and tests are not.

The wheel is built from a copy of the checkout (so the build leaves nothing behind in it), then
installed into a fresh virtual environment that borrows torch and friends from the project's venv
without its editable install, and grades the ex03 solution from there: visible checks only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from grader.course import exercises
from grader.model.report import validation_errors

ROOT = Path(__file__).resolve().parent.parent
COURSE_FILES = ("statement.md", "stub.py", "hints.md", "spec.toml", "probe.py", "references/visible.json")

pytestmark = pytest.mark.slow


def run(command: list[str], **options) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=300, **options)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source") / "checkout"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache", "out"))
    out = tmp_path_factory.mktemp("wheelhouse")
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                 "-q", "-w", str(out), str(source)])
    assert built.returncode == 0, built.stdout + built.stderr
    [path] = out.glob("*.whl")
    return path


@pytest.fixture(scope="module")
def names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def exercise_ids() -> list[str]:
    return sorted(p.name for p in (ROOT / "exercises").iterdir()
                  if exercises.EXERCISE_ID.match(p.name) and (p / "spec.toml").exists())


def test_every_exercise_ships_its_public_files(names: list[str]) -> None:
    ids = exercise_ids()
    assert ids, "no exercises found in the checkout"
    missing = [f"grader/_course/{ex}/{name}" for ex in ids for name in COURSE_FILES
               if f"grader/_course/{ex}/{name}" not in names]
    assert missing == []
    assert "grader/schema/report.schema.json" in names
    assert "grader/sandbox/zygote.py" in names


def test_hidden_checks_solutions_and_tests_never_ship(names: list[str]) -> None:
    assert [n for n in names if "/hidden/" in n or n.endswith("references.json")] == []
    assert [n for n in names if n.startswith(("solutions/", "tests/", "exercises/", "benchmarks/"))] == []
    assert [n for n in names if "solution" in n.lower()] == []
    top_level = {n.split("/")[0] for n in names}
    assert top_level == {"grader", next(t for t in top_level if t.endswith(".dist-info"))}


def test_wheel_declares_the_grade_script(wheel: Path, names: list[str]) -> None:
    [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read(entry_points).decode()
    assert "grade = grader.cli:main" in text


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding only the wheel; torch, numpy, click... come from the project venv via a .pth.

    Only the project venv's site-packages directory is borrowed, not its .pth files, so its editable
    install of the checkout is invisible here.
    """
    home = tmp_path_factory.mktemp("venv") / "v"
    venv.EnvBuilder(with_pip=False).create(home)
    python = home / "bin" / "python"
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)  # a pure-Python wheel installs by unpacking into purelib
    (site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", "utf-8")
    return python


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("GRADER_", "PYTHON"))}


def test_installed_grader_uses_its_packaged_course(installed: Path, tmp_path: Path) -> None:
    script = (
        "import json, grader\n"
        "from grader.course import exercises as e\n"
        "hidden = [c.name for i in e.exercise_ids() for c in e.load(i).checks if c.visibility == 'hidden']\n"
        "print(json.dumps({'file': grader.__file__, 'course': str(e.course_root()),\n"
        "                  'solutions': str(e.solutions_root()), 'ids': e.exercise_ids(), 'hidden': hidden}))\n"
    )
    probe = run([str(installed), "-c", script], cwd=tmp_path, env=clean_env())
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    site = installed.parent.parent
    assert Path(found["file"]).is_relative_to(site), found["file"]
    assert Path(found["course"]) == Path(found["file"]).parent / "_course"
    assert found["solutions"] == "None"
    assert found["ids"] == exercise_ids()
    assert found["hidden"] == []


def test_installed_grader_grades_with_visible_checks_only(installed: Path, tmp_path: Path) -> None:
    submission = tmp_path / "ex03.py"
    shutil.copy(ROOT / "solutions" / "ex03.py", submission)
    graded = run([str(installed), "-m", "grader.cli", "ex03", str(submission), "--format", "json",
                  "--device", "cpu"], cwd=tmp_path, env=clean_env())
    assert graded.returncode == 0, graded.stdout[-2000:] + graded.stderr[-2000:]
    report = json.loads(graded.stdout)
    assert validation_errors(report) == []
    assert report["full_marks"] is True
    assert {c["visibility"] for c in report["checks"]} == {"visible"}
    visible = [c for c in exercises.load("ex03").checks if c.visibility == "visible"]
    assert [c["name"] for c in report["checks"]] == [c.name for c in visible]
    assert report["max_score"] == sum(c.points for c in visible)
