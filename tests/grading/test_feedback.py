"""`grade batch --feedback`: a page per student beside the report (hidden checks as the instructor chooses),
a class page (score distribution, checks failed most with crashes apart, diagnosis histogram, links,
similar pairs side by side), and an ETA that does not sit at 00:00:00 while a submission runs long."""

from __future__ import annotations

import html as html_lib
import io
import json
import os
import re
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.classroom import classpage
from grader.cli.main import main
from grader.cli.progress import _BatchProgress, progress_line
from grader.model.report import from_dict

ROOT = Path(__file__).resolve().parents[2]
SOLUTION = (ROOT / "solutions" / "ex03.py").read_text("utf-8")
NO_ZERO_GRAD = (ROOT / "tests" / "submissions" / "ex03" / "bug_no_zero_grad.py").read_text("utf-8")


def renamed_copy(source: str) -> str:
    """The solution with its names changed and its layout reflowed: what a copier hands in."""
    for old, new in (("history", "records"), ("y_pred", "guess"), ("_as_weight", "prepare"), ("    ", "  ")):
        source = source.replace(old, new)
    return "# all my own work\n\n" + source.replace("\n\n\n", "\n\n\n\n")


CLASS = {
    "ana": SOLUTION,
    "ben": NO_ZERO_GRAD,
    "cat": "import os\nos._exit(3)\n",  # a crash: its checks must not count as "failed most"
    "dan": renamed_copy(SOLUTION),
    "<script>eve": NO_ZERO_GRAD,  # a name that must stay text on the class page
}


@pytest.fixture(scope="module")
def feedback_batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("feedback")
    for student, code in CLASS.items():
        (root / "class" / student).mkdir(parents=True)
        (root / "class" / student / "ex03.py").write_text(code, "utf-8")
    out = root / "out"
    outcome = CliRunner().invoke(main, ["batch", str(root / "class"), "--out", str(out), "--jobs", "2",
                                        "--timeout", "5", "--feedback", "--similarity"])
    assert outcome.exit_code == 0, outcome.output
    return out, outcome.output


@pytest.mark.slow
def test_each_student_gets_a_page_beside_the_report_with_hidden_details_withheld(feedback_batch):
    out, printed = feedback_batch
    assert "Feedback: 5 student page(s)" in printed
    for student in CLASS:
        assert (out / student / "ex03.html").is_file()
    report = json.loads((out / "ben" / "ex03.json").read_text("utf-8"))
    hidden_failed = [c for c in report["checks"] if c["visibility"] == "hidden" and c["status"] != "passed"]
    assert hidden_failed, "the buggy submission fails hidden checks too"
    page = (out / "ben" / "ex03.html").read_text("utf-8")
    for number, check in enumerate(hidden_failed, 1):  # (ben fails every hidden check: they number alike)
        assert f"train: hidden check {number}" in page  # shown: the function it calls, its status and points ...
        assert html_lib.escape(check["message"]) not in page  # ... never its message
        assert html_lib.escape(check["name"]) not in page  # ... nor its name, which describes its inputs
    visible_failed = [c for c in report["checks"] if c["visibility"] == "visible" and c["status"] != "passed"]
    assert all(html_lib.escape(c["message"]) in page for c in visible_failed)
    full = classpage.student_report(from_dict(report), "full")
    assert full.checks == from_dict(report).checks


@pytest.mark.slow
def test_the_class_page_counts_crashes_apart_and_links_every_student(feedback_batch):
    out, _ = feedback_batch
    summary = json.loads((out / "summary.json").read_text("utf-8"))
    assert summary["not_run"] == [{"exercise": "ex03", "status": "exited", "count": 1}]  # os._exit: CONTRACT's `exited`
    cat = json.loads((out / "cat" / "ex03.json").read_text("utf-8"))
    failed = {f["check"]: f["count"] for f in summary["failed_checks"]}
    for check in cat["checks"]:  # the crash failed every check, yet none counts it
        reports = [json.loads((out / s / "ex03.json").read_text("utf-8")) for s in CLASS if s != "cat"]
        expected = sum(1 for r in reports for c in r["checks"]
                       if c["name"] == check["name"] and c["status"] == "failed")
        assert failed.get(check["name"], 0) == expected
    page = (out / "class.html").read_text("utf-8")
    links = set(re.findall(r'href="([^"]+)"', page))
    assert links == {"ana/ex03.html", "ben/ex03.html", "cat/ex03.html", "dan/ex03.html", "%3Cscript%3Eeve/ex03.html"}
    assert "<script" not in page and "&lt;script&gt;eve" in page
    assert page.count('src="data:image/png;base64,') >= 2  # the score distribution and the diagnosis histogram
    assert "grad-not-zeroed" in page and "Runs that did not finish" in page


@pytest.mark.slow
def test_the_renamed_copy_is_shown_side_by_side_and_the_honest_pair_is_not(feedback_batch):
    out, printed = feedback_batch
    result = json.loads((out / "similarity.json").read_text("utf-8"))
    pairs = {(p["first"], p["second"]) for p in result["exercises"]["ex03"]["pairs"]}
    assert ("ana", "dan") in pairs
    assert ("<script>eve", "ben") in pairs  # the same buggy file twice: alike, and it says so
    assert not any("ana" in pair and "ben" in pair for pair in pairs)  # a bug is not a copy of the fix
    page = (out / "class.html").read_text("utf-8")
    assert "<mark>" in page and 'class="side"' in page
    assert "ana  dan" in printed


def test_the_eta_waits_for_a_first_report_and_grows_while_nothing_finishes():
    assert "00:00:00" not in progress_line(0, 10, 60.0, 60.0)
    assert "after the first report" in progress_line(0, 10, 60.0, 60.0)
    early = progress_line(1, 3, 10.0, 0.0)
    stuck = progress_line(1, 3, 70.0, 60.0)  # the second submission loops for 60 s
    assert "ETA 00:00:20" in early and "ETA 00:02:20" in stuck and "no report for 60 s" in stuck
    assert progress_line(3, 3, 5.0, 0.0).endswith("done")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_line_is_redrawn_while_a_submission_runs_long():
    terminal = _Terminal()
    progress = _BatchProgress(terminal)
    progress.start(3, 0)
    progress.advance(None)
    deadline = time.monotonic() + 10
    while terminal.getvalue().count("\r") < 3 and time.monotonic() < deadline:
        time.sleep(0.1)  # nothing finishes: only the ticker draws
    progress.close()
    assert terminal.getvalue().count("\r") >= 3
    assert "grading 1/3" in terminal.getvalue()


def test_no_progress_line_off_a_terminal():
    stream = io.StringIO()
    progress = _BatchProgress(stream)
    progress.start(3, 0)
    progress.advance(None)
    progress.close()
    assert stream.getvalue() == ""


@pytest.mark.slow
def test_student_pages_are_rewritten_only_when_their_report_changed(feedback_batch):
    out, _ = feedback_batch
    assert classpage.write_student_pages(out) == []  # all current: a re-run writes nothing
    report = out / "ana" / "ex03.json"
    later = (out / "ana" / "ex03.html").stat().st_mtime + 10  # the report now newer than its page
    os.utime(report, (later, later))
    assert classpage.write_student_pages(out) == [out / "ana" / "ex03.html"]
    assert len(classpage.write_student_pages(out, "full")) == len(CLASS)  # another choice: every page again
