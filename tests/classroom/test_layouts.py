"""LMS exports as batch input: Canvas, Moodle and Gradescope layouts of one small class, each graded in one
command with the same scores and the LMS's identifiers in its import CSV; a messy folder where every entry
is graded or explained; and batch inputs treated as hostile (links, reserved names, formula cells, a
report that cannot be written)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import full_marks

from grader.classroom import batch, gradebook, layouts
from grader.cli.main import main
from grader.grading import pipeline as grading

ROOT = Path(__file__).resolve().parents[2]
SOLUTION = (ROOT / "solutions" / "ex03.py").read_text("utf-8")
NO_ZERO_GRAD = (ROOT / "tests" / "submissions" / "ex03" / "bug_no_zero_grad.py").read_text("utf-8")
CRASH = "import os\nos._exit(3)\n"
LIMITS = grading.Limits(timeout=5.0)

# The small class: (display name, Canvas login name, Canvas user id, Moodle participant, Gradescope SID) -> file
CLASS = [
    ("Ana Lopez", "lopezana", "1001", "501", "S1001", SOLUTION),
    ("Ben Ode", "odeben", "1002", "502", "S1002", NO_ZERO_GRAD),
    ("Cat Park", "parkcat", "1003", "503", "S1003", CRASH),
]

# Gradescope's "Export Submissions" metadata, in its own shape (Ruby symbols as keys).
GRADESCOPE_YAML = """\
submission_{sub}:
  :submitters:
  - :name: {name}
    :sid: '{sid}'
    :email: {login}@example.edu
  :created_at: 2026-11-30 12:00:00.000000000 +00:00
  :score: 0.0
  :status: processed
"""


def canvas_export(root: Path) -> Path:
    """Canvas "Download Submissions": one flat folder; Ben's is late and was uploaded twice (ex03-1.py)."""
    root.mkdir(parents=True)
    for number, (_, login, user, _, _, code) in enumerate(CLASS):
        late = "late_" if login == "odeben" else ""
        name = "ex03-1.py" if login == "odeben" else "ex03.py"
        (root / f"{login}_{late}{user}_{7000 + number}_{name}").write_text(code, "utf-8")
    return root


def moodle_export(root: Path) -> Path:
    """Moodle "Download all submissions": a folder per participant; one online-text folder beside."""
    for name, _, _, participant, _, code in CLASS:
        folder = root / f"{name}_{participant}_assignsubmission_file_"
        folder.mkdir(parents=True)
        (folder / "ex03.py").write_text(code, "utf-8")
    (root / "Ana Lopez_501_assignsubmission_onlinetext_").mkdir()
    (root / "Ana Lopez_501_assignsubmission_onlinetext_" / "onlinetext.html").write_text("<p>hi</p>", "utf-8")
    return root


def gradescope_export(root: Path) -> Path:
    """Gradescope "Export Submissions": submission_metadata.yml beside submission_<id>/ folders."""
    root.mkdir(parents=True)
    metadata = []
    for number, (name, login, _, _, sid, code) in enumerate(CLASS):
        sub = 900 + number
        (root / f"submission_{sub}").mkdir()
        (root / f"submission_{sub}" / "ex03.py").write_text(code, "utf-8")
        metadata.append(GRADESCOPE_YAML.format(sub=sub, name=name, sid=sid, login=login))
    (root / "submission_metadata.yml").write_text("".join(metadata), "utf-8")
    return root


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


# ---- fast: reading each layout

def test_each_export_is_detected_and_mapped_to_students_and_ids(tmp_path):
    canvas = layouts.read(canvas_export(tmp_path / "canvas"))
    assert canvas.layout == "canvas"
    assert {s.canvas_id for s in canvas.students.values()} == {"1001", "1002", "1003"}
    assert canvas.files["odeben_1002"]["ex03"].name == "odeben_late_1002_7001_ex03-1.py"  # re-upload, -1
    assert canvas.students["odeben_1002"].late == ("ex03",)
    moodle = layouts.read(moodle_export(tmp_path / "moodle"))
    assert moodle.layout == "moodle"
    assert {s.moodle_participant for s in moodle.students.values()} == {"501", "502", "503"}
    assert [s.reason for s in moodle.skipped] == ["Moodle's onlinetext submission, not a file upload"]
    scope = layouts.read(gradescope_export(tmp_path / "gradescope"))
    assert scope.layout == "gradescope"
    assert {(s.name, s.sis_id, s.email) for s in scope.students.values()} == {
        (n, sid, f"{login}@example.edu") for n, login, _, _, sid, _ in CLASS}
    assert layouts.read(tmp_path / "canvas", layout="folders").layout == "folders"
    (tmp_path / "canvas" / "graded").mkdir()  # OUT inside the export does not hide the layout
    assert layouts.detect(tmp_path / "canvas", tmp_path / "canvas" / "graded") == "canvas"


def test_a_messy_folder_lists_every_entry_it_does_not_grade(tmp_path):
    root = tmp_path / "class"
    (root / "ana").mkdir(parents=True)
    (root / "ana" / "ex03.py").write_text(SOLUTION, "utf-8")
    (root / "ana" / "ex03.ipynb").write_text("{}", "utf-8")  # duplicate: the .py is graded
    (root / "ana" / "Ex02.py").write_text("x = 1\n", "utf-8")  # another case: graded as ex02, with a note
    (root / "ana" / "notes.py").write_text("x = 1\n", "utf-8")
    (root / "ana" / "README.txt").write_text("hi", "utf-8")
    (root / "ana" / "ex07.py").write_text("x = 1\n", "utf-8")  # no such exercise
    (root / "ana" / "old").mkdir()  # a folder
    (root / "ana" / "EX04.IPYNB").write_text("{}", "utf-8")
    (root / "roster.xlsx").write_text("x", "utf-8")  # a file beside the student folders
    (root / ".DS_Store").write_text("x", "utf-8")
    found = layouts.read(root)
    reasons = {s.path: s.reason for s in found.skipped}
    assert reasons == {
        "ana/ex03.ipynb": "duplicate for ex03: ana/ex03.py is graded instead",
        "ana/notes.py": "not an exercise file (expected exNN.py or exNN.ipynb)",
        "ana/README.txt": "not an exercise file (expected exNN.py or exNN.ipynb)",
        "ana/ex07.py": reasons["ana/ex07.py"],
        "ana/old": "a folder: only files directly in the student's folder are graded",
        "roster.xlsx": "a file beside the student folders (expected DIR/<student>/<EX>.py)",
        ".DS_Store": "hidden (its name starts with '.')",
    }
    assert reasons["ana/ex07.py"].startswith("unknown exercise ex07 (this course has ex01")
    assert found.files == {"ana": {"ex03": root / "ana" / "ex03.py", "ex02": root / "ana" / "Ex02.py",
                                   "ex04": root / "ana" / "EX04.IPYNB"}}
    notes = {p.path: p.reason for p in found.problems}
    assert set(notes) == {"ana/Ex02.py", "ana/EX04.IPYNB"} and "graded as ex02" in notes["ana/Ex02.py"]
    # every entry of the class folder is either graded or listed
    entries = {str(p.relative_to(root)) for p in root.rglob("*") if p.parent in (root, root / "ana")}
    assert entries == set(reasons) | {"ana", "ana/ex03.py", "ana/Ex02.py", "ana/EX04.IPYNB"}


def test_links_and_reserved_names_are_refused(tmp_path):
    root = tmp_path / "class"
    (root / "ana").mkdir(parents=True)
    (root / "ana" / "ex03.py").write_text(SOLUTION, "utf-8")
    (root / "mallory").symlink_to(ROOT / "solutions")  # a student folder linked to the solutions
    (root / "eve").symlink_to(root / "ana")  # ... or to a neighbour's folder
    (root / "gradebook.csv").mkdir()
    (root / "gradebook.csv" / "ex03.py").write_text(SOLUTION, "utf-8")
    found = layouts.read(root)
    assert found.refused == {"mallory": "refused-link", "eve": "refused-link", "gradebook.csv": "reserved-name"}
    assert set(found.students) == {"ana"}


def test_csv_cells_that_a_spreadsheet_would_evaluate_are_neutralised():
    for text in ("=HYPERLINK(\"http://x\")", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"):
        assert gradebook.csv_cell(text) == "'" + text
    assert gradebook.csv_cell("ana") == "ana" and gradebook.csv_cell("a=b") == "a=b"


def test_a_flat_folder_of_unknown_files_names_the_layouts_expected(tmp_path):
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "random.py").write_text("x = 1\n", "utf-8")
    outcome = CliRunner().invoke(main, ["batch", str(tmp_path / "flat"), "--out", str(tmp_path / "out")])
    assert outcome.exit_code == 2
    assert "Canvas, Moodle or Gradescope export" in outcome.output and "random.py" in outcome.output


# ---- slow: the same class from three LMS exports, each in one command

@pytest.fixture(scope="module")
def three_exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    graded = {}
    for layout, make in (("canvas", canvas_export), ("moodle", moodle_export), ("gradescope", gradescope_export)):
        outcome = CliRunner().invoke(main, ["batch", str(make(root / layout)), "--out", str(root / f"{layout}-out"),
                                            "--jobs", "2", "--timeout", "5"])
        assert outcome.exit_code == 0, outcome.output
        graded[layout] = root / f"{layout}-out"
    return graded


@pytest.mark.slow
def test_three_exports_of_one_class_grade_to_the_same_scores(three_exports):
    scores = {}
    for layout, out in three_exports.items():
        roster = json.loads((out / "roster.json").read_text("utf-8"))["students"]
        rows = {r["student"]: r for r in csv.DictReader((out / "gradebook.csv").open(encoding="utf-8"))}
        scores[layout] = {roster[key]["name"]: (row["ex03"], row["status"]) for key, row in rows.items()}
    names = {login: name for name, login, *_ in CLASS}  # Canvas knows only the login-style name
    canvas = {names[k]: v for k, v in scores["canvas"].items()}
    assert canvas == scores["moodle"] == scores["gradescope"]
    by_name = scores["moodle"]
    assert by_name["Ana Lopez"] == (full_marks("ex03"), "") and by_name["Cat Park"][1] == "ex03: exited"
    assert 0 < float(by_name["Ben Ode"][0]) < float(full_marks("ex03"))


@pytest.mark.slow
def test_each_lms_import_csv_carries_the_lms_identifier(three_exports):
    canvas = read_csv(three_exports["canvas"] / "canvas.csv")
    assert canvas[0][:5] == list(gradebook.CANVAS_FIXED) and canvas[1][0] == "Points Possible"
    assert {(r[0], r[1]) for r in canvas[2:]} == {("lopezana", "1001"), ("odeben", "1002"), ("parkcat", "1003")}
    moodle = read_csv(three_exports["moodle"] / "moodle.csv")
    assert moodle[0] == ["Identifier", "Full name", "ex03"]
    assert {(r[0], r[1]) for r in moodle[1:]} == {
        ("Participant 501", "Ana Lopez"), ("Participant 502", "Ben Ode"), ("Participant 503", "Cat Park")}
    scope = read_csv(three_exports["gradescope"] / "canvas.csv")
    assert {(r[0], r[2]) for r in scope[2:]} == {("Ana Lopez", "S1001"), ("Ben Ode", "S1002"), ("Cat Park", "S1003")}
    summary = json.loads((three_exports["moodle"] / "summary.json").read_text("utf-8"))
    assert summary["layout"] == "moodle" and len(summary["skipped_files"]) == 1


# ---- slow: batch inputs treated as hostile

@pytest.mark.slow
def test_hostile_batch_inputs_get_a_status_and_never_stop_the_batch(tmp_path):
    root = tmp_path / "class"
    students = ["=cmd|' -C calc'!A0", "+ben", "-cat", "@dan", "ana", "zed"]
    for student in students:
        (root / student).mkdir(parents=True)
        (root / student / "ex03.py").write_text(SOLUTION, "utf-8")
    (root / "gradebook.csv").mkdir()
    (root / "gradebook.csv" / "ex03.py").write_text(SOLUTION, "utf-8")
    (root / "mallory").symlink_to(ROOT / "solutions")  # ex03.py inside: 15/15 if it were followed
    (root / "eve").mkdir()
    (root / "eve" / "ex03.py").symlink_to(ROOT / "solutions" / "ex03.py")
    out = tmp_path / "out"
    out.mkdir()
    (out / "ana").write_text("in the way", "utf-8")  # ana's report cannot be written: a failure mid-slot
    options = batch.Options(jobs=1, limits=LIMITS)
    for attempt in ("first run", "re-run"):
        result = batch.run(root, out, ["ex03"], options)
        rows = {r["student"]: r for r in csv.DictReader((out / "gradebook.csv").open(encoding="utf-8"))}
        assert rows["gradebook.csv"]["status"] == "ex03: reserved-name", attempt
        assert rows["mallory"]["status"] == "ex03: refused-link" and rows["mallory"]["ex03"] == ""
        assert rows["eve"]["status"] == "ex03: refused-link" and rows["eve"]["ex03"] == ""
        assert rows["ana"]["status"] == "ex03: grader-failure"  # said, not silently lost
        assert rows["zed"]["ex03"] == full_marks("ex03"), attempt  # graded after ana's failure, on the same single slot
        assert (out / "gradebook.csv").is_file() and (out / "canvas.csv").is_file()
        assert result.summary["statuses"].get("not-graded") is None
    for name in ("gradebook.csv", "canvas.csv", "moodle.csv"):
        cells = [cell for row in read_csv(out / name) for cell in row]
        assert not any(cell.startswith(gradebook.FORMULA_STARTS) for cell in cells), name
        assert "'=cmd|' -C calc'!A0" in cells and "'+ben" in cells and "'@dan" in cells
    assert not (out / "mallory" / "ex03.json").exists() and not (out / "eve" / "ex03.json").exists()
