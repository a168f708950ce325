"""The result data model (frozen dataclasses, no torch) and its JSON form, which is a public, versioned API."""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, replace
from functools import cache
from importlib import resources
from typing import Any

from grader import sanitize

# Bump on any change to the report's shape; readers key on it. See schema/report.schema.json.
SCHEMA_VERSION = "1.1"


class RunStatus(enum.StrEnum):
    """How a run as a whole ended (the report's `status`, schema 1.1): docs/report.md's list. Decided in one
    place, grading.run_status; serialised as its value."""

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


class Status(str, enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    TIMEOUT = "timeout"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class CheckResult:
    """One graded check: what a student reads and what an LMS stores."""

    name: str
    status: Status
    score: float
    max_score: float
    message: str
    diagnosis: str | None = None
    visibility: str = "visible"
    device: str | None = None
    hint: int | None = None  # 1-based index of the hint that helps with the diagnosis
    # Plotting data: {"variation": ..., "epochs": [...], "expected": {...}, "observed": {...}}; not scored.
    trajectory: dict[str, Any] | None = None
    first_divergent_epoch: int | None = None

    @property
    def passed(self) -> bool:
        return self.status is Status.PASSED


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
    # How the run ended, decided in grading.run_status() only; None for a report of a 1.0 grader (read from
    # disk), which never said: such a report is not current, and is regraded rather than classified.
    status: RunStatus | None = RunStatus.OK
    hidden_output: str = ""  # what it printed while hidden checks ran: for the instructor, never the student
    cell_errors: tuple[str, ...] = ()  # notebook cells that raised (the next cells still ran), always listed

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


def to_dict(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data; the only place that decides the wire shape."""
    data = asdict(report)
    data["score"] = report.score
    data["max_score"] = report.max_score
    data["full_marks"] = report.full_marks
    data["checks"] = [{**asdict(c), "status": c.status.value} for c in report.checks]
    data["devices"] = list(report.devices)
    data["status"] = report.status.value if report.status is not None else None
    data["cell_errors"] = list(report.cell_errors)
    return sanitize.deep(data)  # messages, output, paths: a submission's text, safe in any file or viewer


def to_json(report: Report) -> str:
    return json.dumps(to_dict(report), indent=2, sort_keys=False)


def from_dict(data: dict[str, Any]) -> Report:
    """Rebuild a report read from disk (batch resume, gradebook)."""
    checks = tuple(
        CheckResult(**{**c, "status": Status(c["status"])}) for c in data["checks"]
    )
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
    "to_dict",
    "to_json",
    "validation_errors",
]
