"""Batch grading: a class with correct, buggy, crashing, hanging, notebook and unreadable submissions,
graded in one call; single-mode scores; resume (nothing redone); a batch killed halfway and resumed."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner
from conftest import full_marks

from grader import __version__
from grader.classroom import batch, gradebook
from grader.cli.main import main
from grader.course import submission
from grader.grading import pipeline as grading
from grader.model.report import RUN_STATUSES, from_dict, to_json, validation_errors

ROOT = Path(__file__).resolve().parents[2]
SOLUTION = (ROOT / "solutions" / "ex03.py").read_text("utf-8")
LIMITS = grading.Limits(timeout=3.0)  # the hanging submission costs this much, once


def no_zero_grad(source: str) -> str:
    assert "w.grad.zero_()" in source
    return source.replace("w.grad.zero_()", "pass")


def summed_loss(source: str) -> str:
    assert "((y_pred - y) ** 2).mean()" in source
    return source.replace("((y_pred - y) ** 2).mean()", "((y_pred - y) ** 2).sum()")


def notebook(source: str) -> str:
    cells = [nbformat.v4.new_markdown_cell("# ex03"), nbformat.v4.new_code_cell("%matplotlib inline"),
             nbformat.v4.new_code_cell(source)]
    return nbformat.writes(nbformat.v4.new_notebook(cells=cells))


# student -> (file name, content); None: a folder named like the file (unreadable); absent file: missing
CLASS: dict[str, tuple[str, str | None] | None] = {
    "ana": ("ex03.py", SOLUTION),
    "ben": ("ex03.ipynb", notebook(SOLUTION)),
    "cat": ("ex03.py", no_zero_grad(SOLUTION)),
    "dan": ("ex03.py", summed_loss(SOLUTION)),
    "eve": ("ex03.py", "import os\nos._exit(3)\n"),
    "fay": ("ex03.py", "while True:\n    pass\n"),
    "gus": ("ex03.py", "def forward(w, x:\n"),
    "hal": ("ex03.py", None),
    "ida": None,
}
EXPECTED_STATUS = {"eve": "exited", "fay": "timeout", "gus": "syntax-error", "hal": "unreadable", "ida": "missing"}


def make_class(root: Path, members: dict[str, tuple[str, str | None] | None]) -> Path:
    for student, entry in members.items():
        folder = root / student
        folder.mkdir(parents=True)
        if entry is None:
            continue
        name, content = entry
        if content is None:
            (folder / name).mkdir()
        else:
            (folder / name).write_text(content, "utf-8")
    return root


def gradebook_rows(out: Path) -> dict[str, dict[str, str]]:
    with (out / "gradebook.csv").open(newline="", encoding="utf-8") as handle:
        return {row["student"]: row for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """The class, graded once with two workers; (submissions dir, out dir, result)."""
    root = tmp_path_factory.mktemp("batch")
    directory = make_class(root / "class", CLASS)
    out = root / "out"
    result = batch.run(directory, out, ["ex03"], batch.Options(jobs=2, device="cpu", limits=LIMITS))
    return directory, out, result


# ---- fast: discovery, resume rule, status words, summary text

def test_discover_finds_py_then_ipynb_and_marks_missing(tmp_path):
    directory = make_class(tmp_path / "class", {
        "a": ("ex03.py", SOLUTION), "b": ("ex03.ipynb", "{}"), "c": None, ".hidden": ("ex03.py", SOLUTION)})
    (tmp_path / "class" / "a" / "ex03.ipynb").write_text("{}", "utf-8")
    tasks = {t.student: t for t in batch.discover(directory, ["ex03"])}
    assert set(tasks) == {"a", "b", "c"}
    assert tasks["a"].path.name == "ex03.py"  # .py wins over .ipynb, as in single mode
    assert tasks["b"].path.name == "ex03.ipynb"
    assert tasks["c"].path is None


def test_discover_all_exercises_keeps_only_submitted_ones(tmp_path):
    directory = make_class(tmp_path / "class", {"a": ("ex03.py", SOLUTION), "b": ("ex01.py", "x = 1\n")})
    tasks = batch.discover(directory, None)
    assert sorted({t.exercise for t in tasks}) == ["ex01", "ex03"]
    assert {(t.student, t.exercise) for t in tasks if t.path is None} == {("a", "ex01"), ("b", "ex03")}


def test_discover_skips_the_output_folder_inside_the_class(tmp_path):
    directory = make_class(tmp_path / "class", {"a": ("ex03.py", SOLUTION), "graded": None})
    assert [t.student for t in batch.discover(directory, ["ex03"], directory / "graded")] == ["a"]


def test_discover_rejects_a_missing_directory(tmp_path):
    with pytest.raises(batch.BatchError):
        batch.discover(tmp_path / "nope", ["ex03"])


def test_is_current_needs_same_file_grader_and_references(tmp_path):
    path = tmp_path / "class" / "a" / "ex03.py"
    path.parent.mkdir(parents=True)
    path.write_text(SOLUTION, "utf-8")
    task = batch.Task("a", "ex03", path)
    out = tmp_path / "out"
    record = {"grader_version": __version__, "references_sha256": "refs", "sandbox": {"tier": "process"},
              "submission": {"sha256": submission.file_sha256(path)}, "status": "ok"}
    batch.write_atomic(task.report_path(out), json.dumps(record))
    assert batch.is_current(task, out, "refs")
    batch.write_atomic(task.report_path(out), json.dumps({k: v for k, v in record.items() if k != "status"}))
    assert not batch.is_current(task, out, "refs")  # it never said how its run ended: regraded, not guessed
    assert not batch.is_current(task, out, "other references")
    batch.write_atomic(task.report_path(out), json.dumps({**record, "grader_version": "0.0.0-old"}))
    assert not batch.is_current(task, out, "refs")
    batch.write_atomic(task.report_path(out), json.dumps({**record, "sandbox": {"tier": "failed"}}))
    assert not batch.is_current(task, out, "refs")  # the grader's own failure is retried
    # ... decided by the status as well: a child that died before its hello keeps its worker's tier
    batch.write_atomic(task.report_path(out), json.dumps({**record, "status": "grader-failure"}))
    assert not batch.is_current(task, out, "refs")
    batch.write_atomic(task.report_path(out), json.dumps(record))
    path.write_text(SOLUTION + "\n# edited\n", "utf-8")
    assert not batch.is_current(task, out, "refs")
    task.report_path(out).write_text("{ half a rep", "utf-8")
    assert not batch.is_current(task, out, "refs")
    path.write_text(SOLUTION, "utf-8")
    limits = {"timeout": 60.0, "memory_mib": 2048}
    batch.write_atomic(task.report_path(out), json.dumps({**record, "sandbox": {"tier": "process", "limits": limits}}))
    assert batch.is_current(task, out, "refs", limits)
    assert not batch.is_current(task, out, "refs", {**limits, "timeout": 120.0})  # a longer timeout regrades


def test_write_atomic_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "a" / "ex03.json"
    batch.write_atomic(target, "{}")
    batch.write_atomic(target, '{"x": 1}')
    assert json.loads(target.read_text()) == {"x": 1}
    assert [p.name for p in target.parent.iterdir()] == ["ex03.json"]


@pytest.mark.parametrize("status", RUN_STATUSES)
def test_the_status_column_is_the_reports_status(status):
    report = from_dict({**json.loads(to_json(grading.failure_report("ex03", "nowhere.py", "x"))), "status": status})
    assert gradebook.status_of(report) == (None if status == "ok" else status)


def test_a_report_without_a_status_is_never_classified_by_its_wording():
    data = json.loads(to_json(grading.failure_report("ex03", "nowhere.py", "x")))
    for error in ("your code used more than 64 MiB of memory", "SyntaxError in ex03.py", "could not be imported"):
        old = {k: v for k, v in {**data, "error": error, "schema_version": "1.0"}.items() if k != "status"}
        assert gradebook.status_of(from_dict(old)) == gradebook.NOT_GRADED


# ---- the class, graded

@pytest.mark.slow
def test_every_student_is_in_the_gradebook_with_a_status_when_not_clean(graded_class):
    _, out, result = graded_class
    assert result.interrupted_by is None
    rows = gradebook_rows(out)
    assert set(rows) == set(CLASS)
    for student, row in rows.items():
        status = EXPECTED_STATUS.get(student)
        assert row["status"] == (f"ex03: {status}" if status else ""), student
        assert row["max_total"] == full_marks("ex03")
    assert rows["ana"]["ex03"] == rows["ana"]["total"] == full_marks("ex03")
    assert rows["ida"]["ex03"] == "" and rows["hal"]["ex03"] == ""
    assert result.graded == 7 and result.problems == 1 and result.skipped == 0


@pytest.mark.slow
def test_reports_are_valid_and_match_single_mode(graded_class, grade_file):
    directory, out, _ = graded_class
    for student, entry in CLASS.items():
        report_path = out / student / "ex03.json"
        if entry is None or entry[1] is None:
            assert not report_path.exists()
            continue
        data = json.loads(report_path.read_text("utf-8"))
        assert validation_errors(data) == [], student
        single = grade_file("ex03", directory / student / entry[0], limits=LIMITS)
        assert data["score"] == single.score, student
        assert [c["status"] for c in data["checks"]] == [c.status.value for c in single.checks], student
        assert data["submission"]["sha256"] == single.submission.sha256


@pytest.mark.slow
def test_summary_counts_what_the_reports_say(graded_class):
    _, out, _ = graded_class
    summary = json.loads((out / "summary.json").read_text("utf-8"))
    reports = [json.loads(p.read_text()) for p in out.glob("*/ex03.json")]
    dist = summary["exercises"]["ex03"]
    assert dist["graded"] == len(reports) == 7
    assert dist["full_marks"] == 2  # ana and ben (the notebook)
    assert sum(dist["scores"].values()) == 7 and sum(dist["bands"].values()) == 7
    failed = {f["check"]: f["count"] for f in summary["failed_checks"]}
    finished = [r for r in reports if r["status"] == "ok"]  # crashes and hangs counted apart
    for check in reports[0]["checks"]:
        assert failed.get(check["name"], 0) == sum(
            1 for r in finished for c in r["checks"] if c["name"] == check["name"] and c["status"] == "failed")
    assert {(n["status"], n["count"]) for n in summary["not_run"]} == {("exited", 1), ("timeout", 1),
                                                                      ("syntax-error", 1)}
    diagnosed = sum(len({c["diagnosis"] for c in r["checks"] if c["diagnosis"]}) for r in reports)
    assert sum(d["count"] for d in summary["diagnoses"]) == diagnosed  # once per student and mistake
    assert summary["statuses"] == {s: 1 for s in EXPECTED_STATUS.values()}
    text = batch.render_summary(summary)
    assert "ex03: 7 reports" in text and "Checks failed most (students):" in text


@pytest.mark.slow
def test_second_run_regrades_nothing_and_rebuilds_the_gradebook(graded_class):
    directory, out, _ = graded_class
    before = {p: p.stat().st_mtime_ns for p in out.glob("*/ex03.json")}
    expected = (out / "gradebook.csv").read_text("utf-8")
    (out / "gradebook.csv").unlink()
    again = batch.run(directory, out, ["ex03"], batch.Options(jobs=2, device="cpu", limits=LIMITS))
    assert again.graded == 0 and again.skipped == 7
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/ex03.json")} == before
    assert (out / "gradebook.csv").read_text("utf-8") == expected


@pytest.mark.slow
def test_a_changed_file_is_regraded_and_force_regrades_all(tmp_path):
    directory = make_class(tmp_path / "class", {"a": ("ex03.py", SOLUTION), "b": ("ex03.py", SOLUTION)})
    out = tmp_path / "out"
    options = batch.Options(jobs=1, device="cpu", limits=LIMITS)
    assert batch.run(directory, out, ["ex03"], options).graded == 2
    (directory / "b" / "ex03.py").write_text(no_zero_grad(SOLUTION), "utf-8")
    rerun = batch.run(directory, out, ["ex03"], options)
    assert (rerun.graded, rerun.skipped) == (1, 1)
    assert json.loads((out / "b" / "ex03.json").read_text())["score"] < float(full_marks("ex03"))
    forced = batch.run(directory, out, ["ex03"], batch.Options(jobs=1, device="cpu", limits=LIMITS, force=True))
    assert (forced.graded, forced.skipped) == (2, 0)


@pytest.mark.slow
def test_a_submission_that_kills_its_worker_does_not_stop_the_batch(tmp_path):
    killer = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.kill(0, signal.SIGKILL)\n"
    directory = make_class(tmp_path / "class", {"a_killer": ("ex03.py", killer), "b_ok": ("ex03.py", SOLUTION),
                                                "c_killer": ("ex03.py", killer), "d_ok": ("ex03.py", SOLUTION)})
    out = tmp_path / "out"
    result = batch.run(directory, out, ["ex03"], batch.Options(jobs=1, device="cpu", limits=LIMITS))
    assert result.graded == 4
    rows = gradebook_rows(out)
    assert rows["b_ok"]["ex03"] == rows["d_ok"]["ex03"] == full_marks("ex03")
    assert rows["a_killer"]["ex03"] == rows["c_killer"]["ex03"] == "0"


@pytest.mark.slow
def test_a_slot_restarts_a_worker_that_died(tmp_path):
    from grader.execution.executor import _Slot

    slot = _Slot("cpu", "auto")  # the batch's slots are the executor's
    try:
        first = slot.worker("ex03")
        first.info()
        first.kill()
        second = slot.worker("ex03")
        assert second is not first and second.alive
        assert second.info()["event"] == "ready"
    finally:
        slot.close()


# ---- stopped halfway, then resumed

def _slow_class(root: Path, count: int) -> Path:
    slow = "import time\ntime.sleep(0.6)\n" + SOLUTION
    return make_class(root, {f"s{i:02d}": ("ex03.py", slow + f"\n# student {i}\n") for i in range(count)})


def _start_batch(directory: Path, out: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "grader.cli", "batch", str(directory), "--out", str(out), "--jobs", "1",
               "--device", "cpu", "--exercise", "ex03"]
    # SIGINT as a terminal would deliver it, even where this test itself runs with SIGINT ignored (a shell's
    # background job): an ignored SIGINT is inherited through exec, and Python then installs no KeyboardInterrupt
    # handler. A handled one is reset to the default at exec.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_batch_stopped_halfway_keeps_its_reports_and_resumes(tmp_path, sig, status):
    count = 8
    directory, out = _slow_class(tmp_path / "class", count), tmp_path / "out"
    process = _start_batch(directory, out)
    deadline = time.monotonic() + 60
    while len(list(out.glob("*/ex03.json"))) < 2 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == status, stderr
    assert "INTERRUPTED" in stdout
    kept = sorted(p.parent.name for p in out.glob("*/ex03.json"))
    assert 2 <= len(kept) < count
    for path in out.glob("*/ex03.json"):
        assert validation_errors(json.loads(path.read_text("utf-8"))) == []
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    rows = gradebook_rows(out)
    not_graded = {s for s, r in rows.items() if r["status"] == "ex03: not-graded"}
    assert not_graded == {f"s{i:02d}" for i in range(count)} - set(kept)

    resumed = _start_batch(directory, out)
    stdout, stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, stderr
    assert f"{count - len(kept)} graded, {len(kept)} unchanged" in stdout
    rows = gradebook_rows(out)
    assert all(row["ex03"] == full_marks("ex03") and row["status"] == "" for row in rows.values())
    assert len(rows) == count


# ---- the command line

def test_cli_batch_usage_errors(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(main, ["batch", str(tmp_path / "nope"), "--out", str(tmp_path / "out")])
    assert missing.exit_code == 2
    (tmp_path / "empty").mkdir()
    empty = runner.invoke(main, ["batch", str(tmp_path / "empty"), "--out", str(tmp_path / "out")])
    assert empty.exit_code == 2 and "no submissions found" in empty.output and "--layout" in empty.output
    unknown = runner.invoke(main, ["batch", str(tmp_path / "empty"), "--out", "o", "--exercise", "ex99"])
    assert unknown.exit_code == 2


def test_require_sandbox_refuses_with_the_doctors_one_line(tmp_path, monkeypatch):
    import types

    doctor = types.ModuleType("grader.sandbox.doctor")

    def refuse() -> None:
        raise RuntimeError("user namespaces are disabled on this machine")

    doctor.require_namespace_tier = refuse
    monkeypatch.setitem(sys.modules, "grader.sandbox.doctor", doctor)
    monkeypatch.setattr("grader.sandbox.doctor", doctor, raising=False)
    directory = make_class(tmp_path / "class", {"a": ("ex03.py", SOLUTION)})
    result = CliRunner().invoke(main, ["batch", str(directory), "--out", str(tmp_path / "out"), "--require-sandbox"])
    assert result.exit_code == 2
    assert "user namespaces are disabled on this machine" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_cli_batch_prints_a_summary_and_no_progress_bar_off_a_terminal(tmp_path):
    directory = make_class(tmp_path / "class", {"a": ("ex03.py", SOLUTION), "b": None})
    result = CliRunner().invoke(main, ["batch", str(directory), "--out", str(tmp_path / "out"), "--jobs", "1",
                                       "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "1 submissions from 2 students: 1 graded" in result.output
    assert "grading" not in result.output and "\r" not in result.output
    assert gradebook_rows(tmp_path / "out")["b"]["status"] == "ex03: missing"
    assert os.path.exists(tmp_path / "out" / "canvas.csv")


def test_gradebook_is_rebuilt_from_every_report_on_disk(tmp_path):
    out = tmp_path / "out"
    fake = {**json.loads(to_json(grading.failure_report("ex01", "ana/ex01.py", "x"))),
            "score": 7.0, "max_score": 10.0, "error": None, "sandbox": {"tier": "namespaces"}, "status": "ok",
            "checks": [{"name": "a check", "status": "failed", "diagnosis": "gradient-sign", "score": 7.0,
                        "max_score": 8.0, "message": "", "visibility": "visible"},
                       {"name": "another", "status": "failed", "diagnosis": "gradient-sign", "score": 0.0,
                        "max_score": 2.0, "message": "", "visibility": "visible"}]}
    batch.write_atomic(out / "ana" / "ex01.json", json.dumps(fake))  # from an earlier `--exercise ex01` run
    batch.write_atomic(out / "ben" / "ex03.problem.json", json.dumps({"status": "unreadable"}))
    tasks = [batch.Task("ana", "ex03", None), batch.Task("ben", "ex03", tmp_path / "ben" / "ex03.py")]
    files, summary = batch.rebuild(out, tasks)
    assert [p.name for p in files] == ["gradebook.csv", "canvas.csv", "moodle.csv"]
    rows = gradebook_rows(out)
    assert rows["ana"]["ex01"] == "7" and rows["ana"]["status"] == "ex03: missing"
    assert rows["ben"]["status"] == "ex01: missing; ex03: unreadable"
    assert summary["diagnoses"] == [{"exercise": "ex01", "diagnosis": "gradient-sign", "count": 1}]
    assert summary["exercises"]["ex01"]["mean"] == 7.0


# ---- a class of attackers between two honest students

# A class of attackers between honest students: tests/sandbox/test_attacks.py, which knows each attack's tier.
