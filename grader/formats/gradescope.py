"""A report as Gradescope's autograder `results.json`: score, execution_time, output and one test per check.

Shape (Gradescope's "Autograder Specifications"): top-level `score` (overrides the sum of the tests),
`execution_time` (seconds), `output`, `visibility`, `stdout_visibility`, `extra_data` and `tests`; each
test has `name`, `score`, `max_score`, `status` ("passed" | "failed"), `output`, `visibility` and
optionally `number` and `tags`. A hidden check becomes `after_published`: the student sees it once the
instructor publishes the grades, never before. `validate` in tests/test_lms.py holds the schema we check
this against.
"""

from __future__ import annotations

from typing import Any

from grader import sanitize
from grader.report import CheckResult, Report

OUTPUT_CAP = 10_000  # characters of the submission's own prints shown back to the student
VISIBILITY = {"visible": "visible", "hidden": "after_published"}


def results(report: Report) -> dict[str, Any]:
    """Gradescope results for one graded report (every string through sanitize.deep)."""
    return sanitize.deep({
        "score": report.score,
        "execution_time": max(0, round(report.duration_s)),
        "output": overall_output(report),
        "output_format": "text",
        "test_output_format": "text",
        "visibility": "visible",
        "stdout_visibility": "hidden",  # the grader's own stdout; the student's prints are in `output`
        "tests": [test(number, check) for number, check in enumerate(report.checks, 1)],
        "extra_data": {
            "exercise": report.exercise,
            "max_score": report.max_score,
            "grader_version": report.grader_version,
            "submission_sha256": report.submission.sha256,
            "sandbox": str(report.sandbox.get("tier", "")),
        },
    })


def test(number: int, check: CheckResult) -> dict[str, Any]:
    lines = [check.message] if check.message else []
    if check.diagnosis:
        lines.append(f"diagnosis: {check.diagnosis}" + (f" (hint {check.hint} helps)" if check.hint else ""))
    return {
        "name": check.name,
        "number": str(number),
        "score": check.score,
        "max_score": check.max_score,
        "status": "passed" if check.passed else "failed",
        "output": "\n".join(lines),
        "visibility": VISIBILITY[check.visibility],
        "tags": [check.diagnosis] if check.diagnosis else [],
    }


def overall_output(report: Report) -> str:
    lines = [f"{report.exercise}: {report.title}", f"Score: {report.score:g}/{report.max_score:g}"]
    if report.error:
        lines += ["", "Problem: " + report.error]
    if report.output.strip():
        printed = report.output[-OUTPUT_CAP:]
        lines += ["", "Your program printed:", printed]
    return "\n".join(lines)


def failure(message: str, execution_time: float = 0.0) -> dict[str, Any]:
    """Results for a submission that could not be graded at all (no file): zero, with the reason."""
    return sanitize.deep({
        "score": 0.0,
        "execution_time": max(0, round(execution_time)),
        "output": message,
        "output_format": "text",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [],
    })
