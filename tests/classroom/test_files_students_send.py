"""The files students actually send (issue 25): `Ex01.py`, `ex03 (1).py`, `ex03-1.py`, `ex3.py`, a folder's one
file with `--exercise`, a PEP 263 coding line; each taken with a note saying which file was graded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from grader.classroom import layouts
from grader.course import filenames
from grader.course.submission import read
from grader.lms import autograder as lms

ROOT = Path(__file__).resolve().parents[2]
KNOWN = ["ex01", "ex02", "ex03", "ex04", "ex05"]


@pytest.mark.parametrize(("name", "exercise", "said"), [
    ("Ex01.py", "ex01", "case"),
    ("EX01.PY", "ex01", "case"),
    ("ex03 (1).py", "ex03", "re-upload"),
    ("ex03(2).ipynb", "ex03", "re-upload"),
    ("ex03-1.py", "ex03", "re-upload"),
    ("ex3.py", "ex03", "ex3 for ex03"),
])
def test_a_near_miss_name_is_its_exercise_with_a_note(name, exercise, said):
    taken = filenames.exercise_of(name, KNOWN)
    assert taken is not None and taken.exercise == exercise
    assert said in taken.note and exercise in taken.note


@pytest.mark.parametrize("name", ["ex03.py", "notes.py", "ex99.py", "ex03.txt", "my_ex03_final.py", "ex03 (x).py"])
def test_an_exact_or_unrelated_name_gets_no_near_miss(name):
    assert filenames.exercise_of(name, KNOWN) is None


def write(path: Path, text: str = "def forward(w, x):\n    return w * x\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    return path


def test_batch_takes_near_miss_names_and_says_which_file(tmp_path):
    write(tmp_path / "alice" / "Ex01.py")
    write(tmp_path / "bob" / "ex03 (1).py")
    write(tmp_path / "carol" / "ex03.py")
    write(tmp_path / "carol" / "ex03-1.py")  # Canvas's re-upload: the newer one is graded
    found = layouts.read(tmp_path)
    assert found.files["alice"] == {"ex01": tmp_path / "alice" / "Ex01.py"}
    assert found.files["bob"] == {"ex03": tmp_path / "bob" / "ex03 (1).py"}
    assert found.files["carol"] == {"ex03": tmp_path / "carol" / "ex03-1.py"}
    notes = {(p.student, p.path): p.reason for p in found.problems}
    assert "graded as ex01" in notes[("alice", "alice/Ex01.py")]
    assert "graded as ex03" in notes[("bob", "bob/ex03 (1).py")]
    assert not any("wrong case" in s.reason for s in found.skipped)


def test_with_one_exercise_asked_for_the_folders_one_file_is_graded(tmp_path):
    write(tmp_path / "dana" / "my_ex03_final.py")
    write(tmp_path / "dana" / "notes.txt", "my notes")
    write(tmp_path / "erin" / "a.py")
    write(tmp_path / "erin" / "b.py")  # two candidates: which one would be a guess
    found = layouts.read(tmp_path, wanted=["ex03"])
    assert found.files["dana"] == {"ex03": tmp_path / "dana" / "my_ex03_final.py"}
    assert any(p.student == "dana" and "only .py/.ipynb file" in p.reason for p in found.problems)
    assert found.files["erin"] == {}
    assert not layouts.read(tmp_path).files["dana"]  # without --exercise: not guessed


def test_an_lms_upload_with_a_near_miss_or_a_single_file_is_found(tmp_path):
    write(tmp_path / "up1" / "ex3.py")
    assert lms.find_submission(tmp_path / "up1", "ex03") == ("ex03", tmp_path / "up1" / "ex3.py")
    write(tmp_path / "up2" / "my_ex03_final.py")
    assert lms.find_submission(tmp_path / "up2", "ex03") == ("ex03", tmp_path / "up2" / "my_ex03_final.py")
    write(tmp_path / "up3" / "notes.md", "x")
    with pytest.raises(lms.NoSubmission) as raised:
        lms.find_submission(tmp_path / "up3", "ex03")
    assert "notes.md" in str(raised.value) and "case-sensitive" not in str(raised.value)


def test_a_pep_263_coding_line_is_honoured(tmp_path):
    path = tmp_path / "ex01.py"
    path.write_bytes("# -*- coding: latin-1 -*-\n# Exercice résolu\ndef forward(w, x):\n    return w * x\n"
                     .encode("latin-1"))
    loaded = read(path, "ex01")
    assert loaded.problem is None
    assert "résolu" in loaded.cells[0].source


def test_bytes_that_contradict_the_coding_line_are_unreadable_in_one_line(tmp_path):
    path = tmp_path / "ex01.py"
    path.write_bytes(b"# coding: ascii\nx = '\xe9'\n")
    loaded = read(path, "ex01")
    assert loaded.problem_status == "unreadable" and "ascii" in loaded.problem and "\n" not in loaded.problem


@pytest.mark.slow
def test_grade_check_finds_ex01_in_another_case(tmp_path):
    (tmp_path / "Ex01.py").write_text((ROOT / "solutions" / "ex01.py").read_text("utf-8"), "utf-8")
    done = subprocess.run([sys.executable, "-m", "grader.cli", "check", "ex01"], check=False, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "GRADER_COURSE": str(ROOT / "exercises")})
    assert done.returncode == 0, done.stderr
    assert "Ex01.py: graded as ex01" in done.stderr


def test_grade_check_lists_the_names_it_found_when_none_matches(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from grader.cli.main import main

    (tmp_path / "homework.py").write_text("x = 1\n", "utf-8")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["check", "ex01"])
    assert result.exit_code == 2 and "Found: homework.py." in result.output
