"""Batch inputs whose names are hostile or broken, through a real `grade batch`: a folder name that is not
UTF-8 (what unzip makes of a Windows zip), control characters and terminal escapes in names, `alice\\n` as
an id, and a YAML alias bomb in a Gradescope export. Each run must finish with every output written, print
nothing raw to the terminal, list the problem, and leave an OUT that the next run reads too."""

from __future__ import annotations

import csv
import json
import os
import pty
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from grader.classroom import layouts

ROOT = Path(__file__).resolve().parents[2]
GRADE = Path(sys.executable).parent / "grade"
SOLUTION = (ROOT / "solutions" / "ex01.py").read_bytes()  # NumPy: a light worker, so peak memory is the batch's
OUTPUTS = ("gradebook.csv", "canvas.csv", "moodle.csv", "summary.json", "roster.json")
SAFE_ID = re.compile(r"[^\x00-\x1f\x7f]+~[0-9a-f]{8}")


def make(root: Path, files: dict[bytes, bytes | None]) -> Path:
    """Paths as bytes (relative to root) -> content; None: a folder."""
    for relative, content in files.items():
        path = os.path.join(os.fsencode(root), relative)
        if content is None:
            os.makedirs(path, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as handle:
                handle.write(content)
    return root


def grade_batch(directory: Path, out: Path, *extra: str, limit_as: int | None = None,
                terminal: bool = False) -> tuple[int, str, str, int]:
    """Run `grade batch` as its own process: (exit status, stdout, stderr, its peak RSS in KiB).

    The peak is wait4's: the batch process's, or a worker it reaped, whichever is larger. `limit_as` caps its
    address space from just after its start (long before it reads any input). `terminal`: stdout is a
    pseudo-terminal, as the instructor's (click strips escape sequences only from what is not a terminal)."""
    stdout, stderr = out.parent / f"{out.name}.stdout", out.parent / f"{out.name}.stderr"
    master, slave = pty.openpty() if terminal else (None, None)
    with stdout.open("wb") as to_out, stderr.open("wb") as to_err:
        process = subprocess.Popen([str(GRADE), "batch", str(directory), "--out", str(out), "--jobs", "1",
                                    "--timeout", "10", *extra], stdout=slave if terminal else to_out, stderr=to_err)
        try:
            if limit_as:
                resource.prlimit(process.pid, resource.RLIMIT_AS, (limit_as, limit_as))
            if terminal:
                os.close(slave)
                to_out.write(_read_until_closed(master).replace(b"\r\n", b"\n"))
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:
            process.kill()
            raise
    process.returncode = os.waitstatus_to_exitcode(status)
    return (process.returncode, stdout.read_bytes().decode("utf-8"), stderr.read_bytes().decode("utf-8"),
            usage.ru_maxrss)


def _read_until_closed(master: int) -> bytes:
    chunks = []
    try:
        while chunk := os.read(master, 1 << 16):
            chunks.append(chunk)
    except OSError:  # EIO: the other end is closed
        pass
    finally:
        os.close(master)
    return b"".join(chunks)


def rows(out: Path, name: str = "gradebook.csv") -> list[list[str]]:
    with (out / name).open(newline="", encoding="utf-8") as handle:  # strict UTF-8: it must decode
        return list(csv.reader(handle))


def assert_outputs_written(out: Path, left_before: frozenset[bytes] = frozenset()) -> dict:
    for name in OUTPUTS:
        assert (out / name).is_file(), name
        (out / name).read_text("utf-8")
    for entry in set(os.listdir(os.fsencode(out))) - left_before:
        entry.decode("utf-8")  # no folder in OUT that a later run cannot name
        assert entry.decode().isprintable(), entry
    return json.loads((out / "summary.json").read_text("utf-8"))


def assert_terminal_safe(*texts: str) -> None:
    for text in texts:
        assert "\x1b" not in text and "\r" not in text
        assert not any(ch for ch in text if not ch.isprintable() and ch != "\n"), repr(text[:300])


@pytest.mark.slow
def test_an_undecodable_folder_name_in_a_class_folder(tmp_path):
    directory = make(tmp_path / "class", {
        b"ana/ex01.py": SOLUTION,
        b"jos\xe9/ex01.py": SOLUTION,
        b"alice/ex01.py": SOLUTION,
        b"alice\n/ex01.py": SOLUTION,
    })
    out = tmp_path / "out"
    # What the old grader left behind: a report in a folder named with the raw bytes.
    make(out, {b"old\xe9/ex01.json": b'{"score": 1}'})
    ids = []
    for run in ("first", "second"):
        code, stdout, stderr, _ = grade_batch(directory, out)
        assert code == 0, (run, stderr[-2000:])
        summary = assert_outputs_written(out, frozenset({b"old\xe9"}))
        assert_terminal_safe(stdout, stderr)
        students = [row[0] for row in rows(out)[1:]]
        renamed = [s for s in students if s not in ("alice", "ana")]
        assert len(students) == 4 and len(renamed) == 2, students
        assert all(SAFE_ID.fullmatch(s) for s in renamed), renamed
        assert {s.split("~")[0] for s in renamed} == {"alice\\n", "jos\\xe9"}
        assert all(row[1] == "18" for row in rows(out)[1:])  # graded, under their safe ids
        listed = {p["student"] for p in summary["input_problems"]}
        assert listed == set(renamed) and "jos\\xe9" in stdout
        ids.append(renamed)
    assert ids[0] == ids[1]  # stable across runs
    assert "unchanged (skipped)" in stdout and " 0 graded" in stdout


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["canvas", "moodle", "gradescope"])
def test_an_undecodable_name_in_an_lms_export(tmp_path, layout):
    files = {
        "canvas": {b"jos\xe9_1001_7000_ex01.py": SOLUTION, b"lopezana_1002_7001_ex01.py": SOLUTION,
                   b"odeben_1003_7002_ex01\xff.py": SOLUTION},
        "moodle": {b"Jos\xe9 Garc\xeda_501_assignsubmission_file_/ex01.py": SOLUTION,
                   b"Ana Lopez_502_assignsubmission_file_/ex01.py": SOLUTION,
                   b"Ana Lopez_502_assignsubmission_file_/notes\xe9\x1b[2J.txt": b"x"},
        "gradescope": {b"submission_900/ex01.py": SOLUTION, b"submission_901/ex01.py": SOLUTION,
                       b"submission_901/ex01\xe9.py": SOLUTION,
                       b"submission_metadata.yml": (
                           b"submission_900:\n  :submitters:\n  - :name: Jos\xc3\xa9\n    :sid: 'S1'\n"
                           b"submission_901:\n  :submitters:\n  - :name: \"Ben\\e[2J\"\n    :sid: \"S2\\n\"\n")},
    }[layout]
    directory = make(tmp_path / "class", files)
    out = tmp_path / "out"
    for run in ("first", "second"):
        code, stdout, stderr, _ = grade_batch(directory, out, "--layout", layout)
        assert code == 0, (run, stderr[-2000:])
        summary = assert_outputs_written(out)
        assert_terminal_safe(stdout, stderr)
        assert summary["layout"] == layout
        graded = [row for row in rows(out)[1:] if row[1] == "18"]
        assert len(graded) == 2, rows(out)
        cells = [cell for name in ("gradebook.csv", "canvas.csv", "moodle.csv") for row in rows(out, name)
                 for cell in row]
        assert all(cell.isprintable() for cell in cells), [c for c in cells if not c.isprintable()]
        shown = [*summary["skipped_files"], *summary["input_problems"]]
        assert shown and all(p["path"].isprintable() and p["reason"].isprintable() for p in shown)
    if layout == "gradescope":
        canvas = {row[0]: row for row in rows(out, "canvas.csv")}
        assert canvas["José"][2] == "S1"
        assert not any("S2" in cell for row in canvas.values() for cell in row)  # "S2\n" is no id: left out
        assert any("its :sid is left out" in p["reason"] for p in summary["input_problems"])
    else:
        assert any("\\xe9" in p["path"] for p in shown)


@pytest.mark.slow
def test_terminal_escapes_in_names_reach_the_terminal_escaped(tmp_path):
    fake = b"\x1b[2J\x1b[H15 of 15 graded, 0 problems\n"
    directory = make(tmp_path / "class", {
        b"ana/ex01.py": SOLUTION,
        b"ana/" + fake + b".py": b"x",
        b"\x1b]0;pwned\x07" + b"ben/ex01.py": SOLUTION,
        b"cat\xe2\x80\xaeyp.10xe/ex01.py": SOLUTION,  # a right-to-left override
    })
    out = tmp_path / "out"
    code, stdout, stderr, _ = grade_batch(directory, out, terminal=True)
    assert code == 0, stderr[-2000:]
    assert_terminal_safe(stdout, stderr)
    assert not any(line.startswith("15 of 15") for line in stdout.splitlines())
    assert "\\x1b[2J\\x1b[H15 of 15 graded, 0 problems\\n.py" in stdout
    assert "\\u202e" in stdout
    assert_outputs_written(out)


BOMB = b"""\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
submission_900:
  :submitters:
  - :name: *i
    :sid: *i
    :email: ana@example.edu
"""
PEAK_KIB = 500 * 1024


@pytest.mark.slow
def test_a_yaml_alias_bomb_in_a_gradescope_export_is_a_listed_problem_in_bounded_memory(tmp_path):
    directory = make(tmp_path / "class", {b"submission_900/ex01.py": SOLUTION, b"submission_metadata.yml": BOMB})
    out = tmp_path / "out"
    # The cap only spares this machine when the defence is missing (the old reader went past 1.5 GiB).
    code, stdout, stderr, peak_kib = grade_batch(directory, out, limit_as=3 << 30)
    assert code == 0, stderr[-2000:]
    assert peak_kib < PEAK_KIB, f"peak RSS {peak_kib / 1024:.0f} MiB"
    summary = assert_outputs_written(out)
    problem = [p for p in summary["input_problems"] if p["path"] == "submission_metadata.yml"]
    assert problem and "alias" in problem[0]["reason"], summary["input_problems"]
    assert "submission_metadata.yml" in stdout and "alias" in stdout
    assert rows(out)[1][:2] == ["submission_900", "18"]  # still graded, named by its folder


# ---- fast: ids are matched whole

def test_an_id_with_a_final_newline_is_never_the_id(tmp_path):
    # `$` matches before a final newline: `alice\n` passed the old patterns as if it were `alice`.
    folders = layouts.read(make(tmp_path / "folders", {b"alice/ex01.py": SOLUTION, b"alice\n/ex01.py": SOLUTION}))
    assert "alice" in folders.students and len(folders.students) == 2
    assert all(key.isprintable() for key in folders.students)
    canvas = layouts.read(make(tmp_path / "canvas", {b"ana_1001_7000_ex01.py": SOLUTION,
                                                     b"ben_1002_7001_ex01.py\n": SOLUTION}), layout="canvas")
    assert list(canvas.files) == ["ana_1001"] or not canvas.files.get("ben_1002")
    moodle = layouts.read(make(tmp_path / "moodle", {
        b"Ana_501_assignsubmission_file_/ex01.py": SOLUTION,
        b"Ben_502_assignsubmission_file_\n/ex01.py": SOLUTION,
        b"Cat_\xd9\xa5\xd9\xa0\xd9\xa3_assignsubmission_file_/ex01.py": SOLUTION}), layout="moodle")
    assert list(moodle.students) == ["Ana_501"]  # a trailing newline, or Arabic-Indic digits: no participant id
    gradescope = layouts.read(make(tmp_path / "gradescope", {
        b"submission_900/ex01.py": SOLUTION, b"submission_901\n/ex01.py": SOLUTION,
        b"submission_metadata.yml": b"submission_900:\n  :submitters:\n  - :sid: \"alice\\n\"\n"}),
        layout="gradescope")
    assert list(gradescope.students) == ["submission_900"]
    assert gradescope.students["submission_900"].sis_id == ""
    assert all(p.path.isprintable() for p in [*gradescope.skipped, *gradescope.problems])
