"""Results: a submission's report (the student view where the caller must see it), the gradebook, regrading."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse, Response

from grader.course import exercises
from grader.service.deps import Caller, ServiceDep
from grader.service.schemas import ApiError, Regraded, RegradeRequest, errors

router = APIRouter()


@router.get("/api/v1/submissions/{submission_id}/report", response_model=dict[str, Any],
            responses=errors(401, 404, 409, 503))
def get_report(submission_id: str, caller: Caller, service: ServiceDep,
               view: Annotated[str | None, Query(pattern="^(full|student)$", description=(
                   "student: the student view (a student token always gets it)"))] = None) -> Response:
    row = service.store.get(submission_id, caller)
    if row is None:
        raise ApiError(404, f"no submission {submission_id!r} that this token may read.")
    if row.status not in ("graded", "failed") or not row.report:
        raise ApiError(409, f"submission {submission_id} is {row.status}, not graded yet; poll its status.")
    return Response(service.report_for(caller, row.report, view), media_type="application/json")


@router.get("/api/v1/gradebook.csv", response_class=PlainTextResponse,
            responses={200: {"content": {"text/csv": {}}}, **errors(401, 403, 503)})
def gradebook(caller: Caller, service: ServiceDep) -> Response:
    if caller.role != "instructor":
        raise ApiError(403, "the gradebook is for instructor tokens.")
    return Response(service.gradebook_csv(), media_type="text/csv; charset=utf-8")


@router.post("/api/v1/regrade", status_code=202, response_model=Regraded, responses=errors(401, 403, 422, 503))
def regrade(caller: Caller, service: ServiceDep, body: RegradeRequest | None = None) -> Regraded:
    if caller.role != "instructor":
        raise ApiError(403, "regrading is for instructor tokens.")
    body = body or RegradeRequest()
    if body.exercise is not None and body.exercise not in exercises.exercise_ids():
        raise ApiError(422, f"unknown exercise {body.exercise!r}.")
    queued = service.store.regrade(body.exercise, body.student)
    service.wake()
    return Regraded(queued=queued)
