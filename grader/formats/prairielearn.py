"""A report as PrairieLearn's external-grader `results.json`: score as a fraction, gradable, tests, message.

Shape (PrairieLearn "External grading" docs): `gradable` (false: the submission could not be graded and
costs the student no attempt), `score` in [0, 1], `message`, `output`, and `tests`, each with `name`,
`description`, `points`, `max_points`, `message` and `output`. PrairieLearn has no per-test visibility,
so a hidden check's name and message are the student view's (its outcome alone) unless `reveal_hidden` is set.
Where a diagnosis names a hint, the hint's text follows the message (a PrairieLearn student cannot run
`grade hint`), and the loss plot of the visible checks goes into `images` as a PNG data URL (needs
matplotlib; left out without it, and when it would take the file past PrairieLearn's 1 MB limit).
"""

from __future__ import annotations

import base64
from typing import Any

from grader.course import hints
from grader.model import sanitize
from grader.model.report import CheckResult, Report, RunStatus, student_view, totals

OUTPUT_CAP = 10_000
IMAGE_CAP = 600_000  # bytes of base64 PNG: results.json must stay under 1 MB


def results(report: Report, reveal_hidden: bool = False) -> dict[str, Any]:
    """PrairieLearn results for one graded report (a crash or a hang is a graded zero, so still gradable).
    Without `reveal_hidden`, the student view's checks (their hidden checks' names withheld too)."""
    report = report if reveal_hidden else student_view(report)
    score = report.score / report.max_score if report.max_score else 0.0
    message = f"{report.exercise}: {totals(report)}"
    if report.error:
        message += ". Problem: " + report.error
    texts = {h.number: h.text for h in hints.load(report.exercise)}
    data = {
        "gradable": report.status is not RunStatus.GRADER_FAILURE,  # the grader failed, not the student
        "score": round(min(1.0, max(0.0, score)), 6),
        "message": message,
        "output": report.output[-OUTPUT_CAP:],
        "tests": [test(check, reveal_hidden, texts) for check in report.checks],
    }
    image = plot_image(report)
    if image is not None:
        data["images"] = [image]
    return sanitize.deep(data)


def plot_image(report: Report) -> dict[str, str] | None:
    """The loss and w curves of the visible checks as an image entry, or None (no matplotlib, no curves)."""
    try:
        from grader.formats import plot

        if not plot.panels(report):
            return None
        encoded = base64.b64encode(plot.png_bytes(report)).decode("ascii")
    except ModuleNotFoundError:
        return None
    if len(encoded) > IMAGE_CAP:
        return None
    return {"label": "Your loss and w per epoch against the reference", "url": f"data:image/png;base64,{encoded}"}


def test(check: CheckResult, reveal_hidden: bool, hint_texts: dict[int, str] | None = None) -> dict[str, Any]:
    hidden = check.visibility == "hidden" and not reveal_hidden
    if hidden:
        message = "passed" if check.passed else f"{check.status.value} (hidden check: details are not shown)"
    else:
        message = check.message + (f"\ndiagnosis: {check.diagnosis}" if check.diagnosis else "")
        text = (hint_texts or {}).get(check.hint or 0) if check.diagnosis else None
        if text:
            message += f"\nHint {check.hint}: {text}"
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
