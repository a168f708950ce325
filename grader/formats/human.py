"""The student's view of a report: a compact table of checks, the score, and the next step to take."""

from __future__ import annotations

import textwrap

from grader.model import sanitize
from grader.model.report import CheckResult, Report, Status, compose, totals

SYMBOLS = {
    Status.PASSED: "PASS",
    Status.FAILED: "FAIL",
    Status.ERROR: "ERROR",
    Status.TIMEOUT: "TIMEOUT",
    Status.SKIPPED: "SKIP",
}
WIDTH = 100
SHORT = 80  # a message this short is repeated rather than referred back to


def _points(value: float) -> str:
    return f"{value:g}"


def for_terminal(report: Report) -> str:
    """`--format human`: the table, with the `grade hint` line where the exercise has hints."""
    from grader.course import hints

    return render(report, hint_count=len(hints.load(report.exercise)))


def render(report: Report, hint_count: int = 0) -> str:
    lines = [f"{report.exercise}: {report.title}   ({report.submission.path})", ""]
    if report.error:
        lines += textwrap.wrap("Problem: " + report.error, WIDTH, subsequent_indent="  ") + [""]
    unsaid = [e for e in report.cell_errors if e not in (report.error or "")]
    if unsaid:  # full marks or not: a cell that raised may hide code the student thinks ran
        lines.append("Notebook cells that raised an error (the cells after them still ran):")
        for text in unsaid:
            lines += textwrap.wrap(text, WIDTH, initial_indent="  - ", subsequent_indent="    ")
        lines.append("")
    explained: set[str] = set()
    said: dict[str, str] = {}  # a message already printed → the check that printed it
    for check in report.checks:
        status = SYMBOLS[check.status]
        points = f"{_points(check.score)}/{_points(check.max_score)}"
        hidden = " (hidden)" if check.visibility == "hidden" else ""
        # The whole name, wrapped at word boundaries under itself: a name cut short names another check.
        name = textwrap.wrap(check.name + hidden, WIDTH - 19, break_long_words=False, break_on_hyphens=False)
        lines.append(f"  {status:<7} {points:>7}  {name[0] if name else ''}")
        lines += [" " * 19 + more for more in name[1:]]
        if check.status is not Status.PASSED and check.message:
            first = said.setdefault(check.message, check.name) if len(check.message) > SHORT else check.name
            text = _message(check, explained) if first == check.name else f"The same as for \"{first}\" above."
            for paragraph in text.split("\n"):
                lines += textwrap.wrap(paragraph, WIDTH, initial_indent=" " * 19, subsequent_indent=" " * 19)
            if check.diagnosis:
                command = f"`grade hint {report.exercise} -n {check.hint}`"
                hint = f"; hint {check.hint} helps: {command}" if check.hint else ""
                lines.append(" " * 19 + f"diagnosis: {check.diagnosis}{hint}")
    where = f"device: {', '.join(report.devices) or '-'}; sandbox: {report.sandbox.get('tier', '?')}"
    lines += ["", f"Score: {totals(report)}   ({where})"]
    lines.append(next_step(report, hint_count))
    if report.output.strip() and not report.full_marks:
        shown = report.output.strip().splitlines()[-8:]
        lines += ["", "Your program printed (last lines):"] + ["  | " + line[:WIDTH] for line in shown]
    # Everything a submission controls is in there (its messages, prints, even its file's name): no escape
    # sequence, carriage return or lone surrogate reaches the terminal (sanitize.py).
    return sanitize.text("\n".join(lines) + "\n")


def _message(check: CheckResult, explained: set[str]) -> str:
    """The check's message; a diagnosis's stock explanation is printed once, at its first check (later ones
    keep their own finding and what is particular to them)."""
    if not check.diagnosis:
        return check.message
    if check.diagnosis not in explained:
        explained.add(check.diagnosis)
        return check.message
    if check.explanation is None or check.explanation_detail is None:
        return check.message
    own = check.explanation_detail
    return compose(check.symptom, own, check.cause_first, check.failed_on).strip() + " (Same mistake as above.)"


def next_step(report: Report, hint_count: int = 0) -> str:
    if report.full_marks and report.hidden_pending:
        return (f"All visible checks passed. {report.hidden_pending:g} more points are hidden checks, graded when "
                "you submit. Next: `grade list` to pick the next exercise.")
    if report.full_marks:
        return "All checks passed. Well done! Next: `grade list` to pick the next exercise."
    failing = [c for c in report.checks if c.status is not Status.PASSED]
    if report.error and not any(c.score for c in report.checks):
        return "Next step: fix the problem above, then run the grader again."
    if all(c.diagnosis == "not-implemented" for c in failing):
        return f"Next step: implement the functions in your file (see `grade hint {report.exercise}`)."
    first = failing[0]
    tip = f" Stuck? `grade hint {report.exercise}`." if hint_count else ""
    return f"Next step: fix \"{first.name}\" first: later checks often follow from it.{tip}"
