"""The API's answers and errors as types: every error is ApiError (one line for a person), every answer a model.

The OpenAPI document (docs/openapi.md) is made from these; the pages (pages.py) share ApiError and the form's
fields, so neither module imports the application."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        self.status, self.message, self.headers = status, message, headers


class Created(BaseModel):
    id: str
    status: str
    exercise: str
    student: str
    sha256: str
    created_at: str


class SubmissionState(BaseModel):
    id: str
    status: str = Field(description="queued | running | graded | failed")
    exercise: str
    student: str
    score: float | None
    max_score: float | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    attempts: int
    position: int | None = Field(default=None, description="while queued: how many submissions are ahead")


class RegradeRequest(BaseModel):
    exercise: str | None = None
    student: str | None = None


class Regraded(BaseModel):
    queued: int


class QueueState(BaseModel):
    counts: dict[str, int]
    oldest_queued_age_s: float | None
    workers: int


class Health(BaseModel):
    ok: bool


def submission_fields(form: Any) -> dict[str, str | None]:
    """The form's text fields (an empty one counts as absent, as a browser sends it); ApiError 422 when the
    exercise is missing or a field is not text."""
    fields: dict[str, str | None] = {}
    for name in ("exercise", "student", "callback_url"):
        value = form.get(name)
        if value is not None and not isinstance(value, str):
            raise ApiError(422, f"{name}: Input should be a valid string")
        fields[name] = value or None
    if fields["exercise"] is None:
        raise ApiError(422, "exercise: Field required")
    return fields


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Error answers for the OpenAPI document: always JSON, whatever the endpoint's own answer is."""
    schema = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
    return {code: {"description": "an error", "content": {"application/json": {"schema": schema}}} for code in codes}


def iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def state(row: Any) -> SubmissionState:
    return SubmissionState(id=row.id, status=row.status, exercise=row.exercise, student=row.student,
                           score=row.score if row.status in ("graded", "failed") else None,
                           max_score=row.max_score if row.status in ("graded", "failed") else None,
                           created_at=iso(row.created_at), started_at=iso(row.started_at),
                           finished_at=iso(row.finished_at), attempts=row.attempts)
