"""The executor interface on the local warm pool: the same reports as single grading, and a slot that
survives its worker being killed under a job."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from conftest import ROOT, SUBMISSIONS

from grader.execution.executor import Job, LocalExecutor, grade_all
from grader.grading import pipeline as grading
from grader.model.report import to_dict

pytestmark = pytest.mark.slow
FILES = [("ex03", ROOT / "solutions" / "ex03.py"), ("ex03", SUBMISSIONS / "ex03" / "bug_no_zero_grad.py"),
         ("ex01", SUBMISSIONS / "ex01" / "bug_gradient_sign.py")]  # ex01 is NumPy: another framework's worker


def comparable(report: dict) -> list:
    return [report["score"], [(c["name"], c["status"], c["diagnosis"], c["message"]) for c in report["checks"]]]


def test_the_local_pool_grades_as_single_mode_does(workers):
    jobs = [Job(exercise, path, device="cpu") for exercise, path in FILES]
    with LocalExecutor(2, device="cpu") as executor:
        outcomes = grade_all(executor, jobs)
        assert executor.healthy()
    for job, outcome in zip(jobs, outcomes, strict=True):
        assert outcome.ok and outcome.problem is None
        single = grading.grade(job.exercise, job.path, device="cpu", worker=workers.get(job.exercise))
        assert comparable(to_dict(outcome.report)) == comparable(to_dict(single))


def test_a_worker_killed_under_a_job_is_reported_and_replaced(tmp_path):
    sleeper = tmp_path / "ex03.py"
    sleeper.write_text("import time\ntime.sleep(30)\n" + (ROOT / "solutions" / "ex03.py").read_text())
    with LocalExecutor(1, device="cpu", prewarm="ex03") as executor:
        assert executor.ready(120)
        future = executor.submit(Job("ex03", sleeper, device="cpu", limits=grading.Limits(timeout=60)))
        time.sleep(2)
        slot = executor._slots[0]
        [worker] = slot.workers.values()
        os.kill(worker.process.pid, signal.SIGKILL)
        outcome = future.result(timeout=60)
        assert outcome.worker_failed and outcome.report is not None
        assert outcome.report.sandbox["tier"] == "failed" and outcome.report.score == 0
        again = executor.submit(Job("ex03", ROOT / "solutions" / "ex03.py", device="cpu")).result(timeout=120)
        assert again.ok and again.report.score == again.report.max_score
        assert Path(again.report.submission.path).name == "ex03.py"
