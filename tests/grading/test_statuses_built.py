"""Every report gets its status from the one decider (grading/build.py): one never run to the end is never ok."""

from __future__ import annotations

from conftest import ROOT

from grader.execution.executor import unrun_report
from grader.grading import build
from grader.model.report import RunStatus


def test_a_report_without_a_run_is_a_grader_failure_never_ok(tmp_path):
    path = tmp_path / "ex03.py"
    path.write_bytes((ROOT / "solutions" / "ex03.py").read_bytes())
    report = unrun_report("ex03", path, "the grader stopped while grading your submission 3 times")
    assert report.status is RunStatus.GRADER_FAILURE and not report.full_marks and report.score == 0


def test_the_grader_failure_report_takes_its_status_from_the_decider(tmp_path):
    report = build.failure_report("ex03", tmp_path / "missing.py", "an invariant broke")
    assert report.status is build.run_status(None, None, "an invariant broke") is RunStatus.GRADER_FAILURE
