"""A report as Gradescope's autograder `results.json`: score, execution_time, output and one test per check.

Shape (Gradescope's "Autograder Specifications"): top-level `score` (overrides the sum of the tests),
`execution_time` (seconds), `output`, `visibility`, `stdout_visibility`, `extra_data` and `tests`; each
test has `name`, `score`, `max_score`, `status` ("passed" | "failed"), `output`, `visibility` and
optionally `number` and `tags`. A hidden check becomes `after_published`: the student sees it once the
instructor publishes the grades, never before. `validate` in tests/lms/test_lms.py holds the schema we check
this against.

Outputs are Markdown (`output_format: md`, which Gradescope renders). A Gradescope student cannot run
`grade hint`, so where a diagnosis names a hint, the hint's own text is in the test's output. Text that
comes from the submission (messages quoting its exception, its prints) sits in fenced code blocks, with a
fence longer than any run of backticks in it, so it is shown, never rendered as Markdown.
"""

from __future__ import annotations

import re
from typing import Any

from grader.course import hints
from grader.model import sanitize
from grader.model.report import CheckResult, Report, totals

OUTPUT_CAP = 10_000  # characters of the submission's own prints shown back to the student
VISIBILITY = {"visible": "visible", "hidden": "after_published"}


def results(report: Report) -> dict[str, Any]:
    """Gradescope results for one graded report (every string through sanitize.deep)."""
    texts = {h.number: h.text for h in hints.load(report.exercise)}
    return sanitize.deep({
        "score": report.score,
        "execution_time": max(0, round(report.duration_s)),
        "output": overall_output(report),
        "output_format": "md",
        "test_output_format": "md",
        "visibility": "visible",
        "stdout_visibility": "hidden",  # the grader's own stdout; the student's prints are in `output`
        "tests": [test(number, check, texts) for number, check in enumerate(report.checks, 1)],
        "extra_data": {
            "exercise": report.exercise,
            "max_score": report.max_score,
            "grader_version": report.grader_version,
            "submission_sha256": report.submission.sha256,
            "sandbox": str(report.sandbox.get("tier", "")),
        },
    })


def fenced(text: str) -> str:
    """Text shown verbatim in Markdown: a code fence longer than any backtick run inside it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def test(number: int, check: CheckResult, hint_texts: dict[int, str] | None = None) -> dict[str, Any]:
    lines = [fenced(check.message)] if check.message else []
    if check.diagnosis:
        lines.append(f"**Diagnosis:** `{check.diagnosis}`")
        text = (hint_texts or {}).get(check.hint or 0)
        if text:
            lines.append(f"**Hint {check.hint}:** {text}")
    return {
        "name": check.name,
        "number": str(number),
        "score": check.score,
        "max_score": check.max_score,
        "status": "passed" if check.passed else "failed",
        "output": "\n\n".join(lines),
        "visibility": VISIBILITY[check.visibility],
        "tags": [check.diagnosis] if check.diagnosis else [],
    }


def overall_output(report: Report) -> str:
    lines = [f"**{report.exercise}: {report.title}**", f"Score: {totals(report)}"]
    if report.error:
        lines += ["**Problem:**", fenced(report.error)]
    if report.output.strip():
        printed = report.output[-OUTPUT_CAP:]
        lines += ["**Your program printed:**", fenced(printed)]
    return "\n\n".join(lines)


def failure(message: str, execution_time: float = 0.0) -> dict[str, Any]:
    """Results for a submission that could not be graded at all (no file): zero, with the reason."""
    return sanitize.deep({
        "score": 0.0,
        "execution_time": max(0, round(execution_time)),
        "output": message,
        "output_format": "text",  # our own words, nothing from a submission
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [],
    })
