"""A report as PrairieLearn's external-grader `results.json`: score as a fraction, gradable, tests, message.

Shape (PrairieLearn "External grading" docs): `gradable` (false: the submission could not be graded and
costs the student no attempt), `score` in [0, 1], `message`, `output`, and `tests`, each with `name`,
`description`, `points`, `max_points`, `message` and `output`. PrairieLearn has no per-test visibility,
so a hidden check's message is replaced by its outcome alone unless `reveal_hidden` is set.
"""

from __future__ import annotations

from typing import Any

from grader import sanitize
from grader.report import CheckResult, Report

OUTPUT_CAP = 10_000


def results(report: Report, reveal_hidden: bool = False) -> dict[str, Any]:
    """PrairieLearn results for one graded report (a crash or a hang is a graded zero, so still gradable)."""
    score = report.score / report.max_score if report.max_score else 0.0
    message = f"{report.exercise}: {report.score:g}/{report.max_score:g}"
    if report.error:
        message += ". Problem: " + report.error
    return sanitize.deep({
        "gradable": report.status != "grader-failure",  # the grader failed, not the student
        "score": round(min(1.0, max(0.0, score)), 6),
        "message": message,
        "output": report.output[-OUTPUT_CAP:],
        "tests": [test(check, reveal_hidden) for check in report.checks],
    })


def test(check: CheckResult, reveal_hidden: bool) -> dict[str, Any]:
    hidden = check.visibility == "hidden" and not reveal_hidden
    if hidden:
        message = "passed" if check.passed else f"{check.status.value} (hidden check: details are not shown)"
    else:
        message = check.message + (f"\ndiagnosis: {check.diagnosis}" if check.diagnosis else "")
    return {
        "name": check.name,
        "description": "hidden check" if check.visibility == "hidden" else "",
        "points": check.score,
        "max_points": check.max_score,
        "message": message,
        "output": "",
    }


def failure(message: str) -> dict[str, Any]:
    """Results when there was nothing to grade (no file): not gradable, so no attempt is used up."""
    return sanitize.deep({"gradable": False, "score": 0.0, "message": message, "output": "", "tests": []})
