"""The result data model (frozen dataclasses, no torch) and its JSON form, which is a public, versioned API."""

from __future__ import annotations

import enum
import json
import re
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from importlib import resources
from typing import Any

from grader.model import sanitize

# Bump on any change to the report's shape; readers key on it. See schema/report.schema.json.
SCHEMA_VERSION = "1.2"


class RunStatus(enum.StrEnum):
    """How a run as a whole ended (the report's `status`, schema 1.1): docs/report.md's list. Decided in one
    place, grading/build.py's run_status; serialised as its value."""

    OK = "ok"
    SYNTAX_ERROR = "syntax-error"
    IMPORT_ERROR = "import-error"
    UNREADABLE = "unreadable"
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory-limit"
    CRASHED = "crashed"
    EXITED = "exited"
    REJECTED = "rejected"
    GRADER_FAILURE = "grader-failure"


RUN_STATUSES = tuple(s.value for s in RunStatus)


class Status(str, enum.Enum):  # noqa: UP042 - not StrEnum: str() and format() of a member stay as written
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    TIMEOUT = "timeout"
    SKIPPED = "skipped"


# The sandbox tier a report names where the grader's own worker broke under the run (sandbox/tiers.py's
# Tier.FAILED takes its value from here): public in the JSON, read by grader_failed only.
GRADER_FAILED_TIER = "failed"

SAID_THEN = " What Python then said: "  # between a cause named first and the error it led to


@dataclass(frozen=True)
class CheckResult:
    """One graded check: what a student reads and what an LMS stores.

    What the check saw (`symptom`), the mistake named (`diagnosis`), its `explanation` and whether that
    cause goes before the symptom are separate fields; `message` composes them into the text the report's
    JSON carries (schema 1.1's `message`), and formats render from the fields.
    """

    name: str
    status: Status
    score: float
    max_score: float
    symptom: str  # what the check itself found: the quantity, the epoch, expected vs got, or the error
    diagnosis: str | None = None
    visibility: str = "visible"
    device: str | None = None
    hint: int | None = None  # 1-based index of the hint that helps with the diagnosis
    # Plotting data: {"variation": ..., "epochs": [...], "expected": {...}, "observed": {...}}; not scored.
    trajectory: dict[str, Any] | None = None
    first_divergent_epoch: int | None = None
    explanation: str | None = None  # the diagnosis's explanation with the fix (diagnose.py), None without one
    cause_first: bool = False  # the explanation goes before the symptom (the error the cause led to)
    failed_on: str | None = None  # where several devices were graded: the one this failure comes from
    # The explanation less its code's stock text (None when it has none): what a view that says the stock text
    # once prints on later checks. Not in the JSON; a report read back renders each message whole.
    explanation_detail: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        # The composed message trims the symptom where it meets the explanation: so does the model, so that
        # a report read back from its JSON is the report that was written.
        if self.explanation is not None:
            trimmed = self.symptom.rstrip() if self.cause_first else self.symptom.lstrip()
            object.__setattr__(self, "symptom", trimmed)
            object.__setattr__(self, "cause_first", self.cause_first and bool(trimmed))
        else:
            object.__setattr__(self, "cause_first", False)

    @property
    def passed(self) -> bool:
        return self.status is Status.PASSED

    @property
    def message(self) -> str:
        """The whole text for the student (the JSON report's `message`)."""
        return compose(self.symptom, self.explanation, self.cause_first, self.failed_on)


def compose(symptom: str, explanation: str | None, cause_first: bool = False, failed_on: str | None = None) -> str:
    """A check's message: its symptom and its diagnosis's explanation, the cause first where it is one."""
    if explanation is None:
        body = symptom
    elif cause_first:
        body = f"{explanation}{SAID_THEN}{symptom}".strip() if symptom else explanation.strip()
    else:
        body = f"{symptom} {explanation}".strip()
    return f"[on {failed_on}] {body}" if failed_on else body


def _check_from_dict(data: dict[str, Any], several_devices: bool) -> CheckResult:
    """A check read back from its JSON. From schema 1.2 the symptom is a field of its own; the cause came first
    where the message is composed that way. A 1.0/1.1 check (no `symptom`) keeps its message whole as the
    symptom: its parts are never cut out of the words."""
    fields = {k: v for k, v in data.items() if k in CheckResult.__dataclass_fields__}
    fields.pop("explanation_detail", None), fields.pop("symptom", None)
    message = str(data.get("message", ""))
    fields["status"] = status = Status(data["status"])
    failed_on = data.get("device") if several_devices and status is not Status.PASSED else None
    if not (failed_on and message.startswith(f"[on {failed_on}] ")):
        failed_on = None
    fields["failed_on"] = failed_on
    symptom, explanation = data.get("symptom"), data.get("explanation")
    if symptom is None:
        return CheckResult(**{**fields, "explanation": None, "failed_on": None}, symptom=message)
    cause_first = explanation is not None and compose(symptom, explanation, True, failed_on) == message
    return CheckResult(**fields, symptom=str(symptom), cause_first=cause_first)


@dataclass(frozen=True)
class Submission:
    path: str
    sha256: str
    kind: str  # "py" | "ipynb"
    size: int


@dataclass(frozen=True)
class Report:
    exercise: str
    title: str
    submission: Submission
    checks: tuple[CheckResult, ...]
    devices: tuple[str, ...]
    grader_version: str
    versions: dict[str, str]
    sandbox: dict[str, Any]
    duration_s: float = 0.0
    # A problem with the run as a whole (crash at import, hang, channel abuse), for the student to read.
    error: str | None = None
    output: str = ""  # what the submission printed before any hidden check ran (capped), labelled by check
    references_sha256: str = ""
    schema_version: str = SCHEMA_VERSION
    # How the run ended, decided in grading/build.py's run_status only (never assumed: no default says `ok`);
    # None for a report of a 1.0 grader (read from disk), which never said: such a report is not current, and
    # is regraded rather than classified.
    status: RunStatus | None = None
    hidden_output: str = ""  # what it printed while hidden checks ran: for the instructor, never the student
    cell_errors: tuple[str, ...] = ()  # notebook cells that raised (the next cells still ran), always listed
    hidden_pending: float = 0.0  # (1.2) points of hidden checks that did not run here: graded at submission

    @property
    def score(self) -> float:
        return round(sum(c.score for c in self.checks), 6)

    @property
    def max_score(self) -> float:
        return round(sum(c.max_score for c in self.checks), 6)

    @property
    def full_marks(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks) and self.error is None \
            and self.status is RunStatus.OK

    def with_checks(self, checks: tuple[CheckResult, ...]) -> Report:
        return replace(self, checks=checks)


def grader_failed(report: Report | dict[str, Any]) -> bool:
    """Whether a report (or its JSON) says that the grader broke under the run, not the submission: the one
    test of "was this the grader's fault" (a batch regrades such a report, an executor retries its job and
    replaces its worker).

    The status is the decision (build.run_status: `grader-failure`); a report whose sandbox names the tier
    GRADER_FAILED_TIER counts too, whatever its status says (one written before statuses, or by hand).
    """
    data: dict[str, Any] = {"status": report.status, "sandbox": report.sandbox} if isinstance(report, Report) \
        else report
    sandbox = data.get("sandbox")
    return data.get("status") == RunStatus.GRADER_FAILURE or \
        isinstance(sandbox, dict) and sandbox.get("tier") == GRADER_FAILED_TIER


def totals(report: Report) -> str:
    """The score as every view says it: where hidden checks did not run (the student wheel), the visible
    checks' total and how many points remain for the hidden checks graded at submission."""
    score, out_of = f"{report.score:g}", f"{report.max_score:g}"
    if not report.hidden_pending:
        return f"{score}/{out_of}"
    return (f"visible checks: {score}/{out_of}; {report.hidden_pending:g} more points are hidden checks "
            "graded at submission")


HIDDEN_WITHHELD = "hidden check: {outcome}; details are not shown."
# A hidden check's name is its author's description of its inputs ("minimize: torch.cosh(w) + 0.5*w from w = 2
# (lr 0.3, 12 epochs)"): a student reads only the function it calls and its number among the hidden checks.
HIDDEN_NAME = "{function}hidden check {number}"
REJECTED_WITHHELD = ("the grader rejected your results: your code wrote into the grader's result channel or "
                     "sent more than it accepts; details are not shown.")


def student_view(report: Report) -> Report:
    """The report as its student may see it: the one student view, for every path a student reaches (the
    service's API and pages, `grade batch --feedback`, the notebook, LTI). Hidden checks keep their name,
    status, points and visibility; their message, diagnosis, explanation, hint, inputs and plotting data are
    withheld, and so is what the submission printed while they ran (`hidden_output`, absent from
    `student_dict`). The result still validates against the report schema."""
    # The channel's complaint quotes what the child wrote (a result's key, a field's name), and code that ran
    # with the hidden inputs in hand can write there: of a rejected run with hidden checks, the student reads
    # only that it was rejected, in the error and in every check that repeats it.
    withheld = report.status is RunStatus.REJECTED and bool(report.error) \
        and any(c.visibility != "visible" for c in report.checks)
    checks = []
    hidden = 0
    for check in report.checks:
        if withheld and report.error and report.error in check.symptom:
            check = replace(check, symptom=check.symptom.replace(report.error, REJECTED_WITHHELD))
        if check.visibility != "visible":
            outcome = "passed" if check.status is Status.PASSED else check.status.value
            hidden += 1
            check = replace(check, name=_hidden_name(check.name, hidden),
                            symptom=HIDDEN_WITHHELD.format(outcome=outcome), diagnosis=None,
                            explanation=None, explanation_detail=None, cause_first=False, failed_on=None, hint=None,
                            trajectory=None,
                            first_divergent_epoch=None)
        checks.append(check)
    return replace(report, checks=tuple(checks), hidden_output="",
                   error=REJECTED_WITHHELD if withheld else report.error)


def _hidden_name(name: str, number: int) -> str:
    """A hidden check's name as its student reads it: the function it calls (the name's leading identifier
    where one opens it), and its number."""
    match = re.match(r"[A-Za-z_][A-Za-z0-9_]*", name)
    return HIDDEN_NAME.format(function=f"{match.group(0)}: " if match else "", number=number)


def student_dict(report: Report) -> dict[str, Any]:
    """The student view's JSON: `to_dict(student_view(report))` without the `hidden_output` key at all."""
    data = to_dict(student_view(report))
    data.pop("hidden_output", None)
    return data


def to_dict(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data; the only place that decides the wire shape."""
    data = asdict(report)
    data["score"] = report.score
    data["max_score"] = report.max_score
    data["full_marks"] = report.full_marks
    data["checks"] = [_check_to_dict(c) for c in report.checks]
    data["devices"] = list(report.devices)
    data["status"] = report.status.value if report.status is not None else None
    data["cell_errors"] = list(report.cell_errors)
    return sanitize.deep(data)  # messages, output, paths: a submission's text, safe in any file or viewer


def _check_to_dict(check: CheckResult) -> dict[str, Any]:
    """A check's JSON: `message` (symptom and explanation composed, schema 1.0) where `symptom` stood, and from
    schema 1.2 `symptom` itself after it, so that no reader cuts a message apart."""
    data = asdict(check)
    symptom_at = list(data).index("symptom")
    del data["symptom"], data["cause_first"], data["failed_on"], data["explanation_detail"]
    items = list({**data, "status": check.status.value}.items())
    return dict(items[:symptom_at] + [("message", check.message), ("symptom", check.symptom)] + items[symptom_at:])


def to_json(report: Report) -> str:
    return json.dumps(to_dict(report), indent=2, sort_keys=False)


def to_json_line(report: Report) -> str:
    """`--format json`: the report and a newline, nothing else."""
    return to_json(report) + "\n"


def from_dict(data: dict[str, Any]) -> Report:
    """Rebuild a report read from disk (batch resume, gradebook)."""
    several_devices = len(data.get("devices") or ()) > 1
    checks = tuple(_check_from_dict(c, several_devices) for c in data["checks"])
    fields = {k: v for k, v in data.items() if k in Report.__dataclass_fields__}
    fields["checks"] = checks
    fields["submission"] = Submission(**data["submission"])
    fields["devices"] = tuple(data["devices"])
    status = data.get("status")
    fields["status"] = RunStatus(status) if status is not None else None  # None: a 1.0 grader's report
    fields["cell_errors"] = tuple(data.get("cell_errors") or ())
    return Report(**fields)


@cache
def schema() -> dict[str, Any]:
    text = resources.files("grader").joinpath("schema/report.schema.json").read_text("utf-8")
    return json.loads(text)


def validation_errors(data: Any) -> list[str]:
    """Every way `data` breaks the report schema, as readable lines (empty when valid)."""
    import jsonschema  # imported here: grading itself never needs it

    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]


__all__ = [
    "RUN_STATUSES",
    "SCHEMA_VERSION",
    "CheckResult",
    "Report",
    "RunStatus",
    "Status",
    "Submission",
    "from_dict",
    "schema",
    "student_dict",
    "student_view",
    "to_dict",
    "to_json",
    "validation_errors",
]
