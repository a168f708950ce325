"""Submissions: POST one (stored and committed before 202 is answered), read one's state, list them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as StarletteUploadFile

from grader.course import exercises
from grader.service.config import CALLBACK_URL, CALLBACK_URL_MAX, IDEMPOTENCY_KEY, MAX_FILE_BYTES, STUDENT_ID
from grader.service.deps import Caller, ServiceDep
from grader.service.schemas import ApiError, Created, SubmissionState, errors, iso, state, submission_fields

router = APIRouter()

SUBMISSION_FORM: dict[str, Any] = {  # the POST's form, as the OpenAPI document gives it
    "type": "object", "required": ["exercise", "file"], "title": "SubmissionForm",
    "properties": {
        "exercise": {"type": "string", "title": "Exercise", "enum": exercises.exercise_ids()},
        "file": {"type": "string", "contentMediaType": "application/octet-stream", "title": "File",
                 "description": "the .py or .ipynb, at most 1 MiB"},
        "student": {"type": "string", "title": "Student", "pattern": f"^{STUDENT_ID.pattern}$",
                    "description": "required with lms and instructor tokens"},
        "callback_url": {"type": "string", "title": "Callback Url", "pattern": CALLBACK_URL.pattern,
                         "maxLength": CALLBACK_URL_MAX},
    },
}


# The form is read here, not by FastAPI's Form() and File() parameters: solving those and validating the
# answer through its model were a third of this process's work per POST in a burst. The document still
# says exactly what the endpoint reads (SUBMISSION_FORM) and answers (Created).
@router.post("/api/v1/submissions", status_code=202, response_model=Created,
             responses=errors(400, 401, 403, 409, 413, 422, 429, 503),
             openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {
                 "schema": SUBMISSION_FORM}}}})
async def submit(request: Request, caller: Caller, service: ServiceDep,
                 idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", json_schema_extra={
                     "pattern": f"^{IDEMPOTENCY_KEY.pattern}$"})] = None) -> Response:
    try:
        form = await request.form(max_files=4, max_fields=16)
    except ApiError:
        raise
    except Exception:  # noqa: BLE001 - Starlette's MultiPartException, a broken stream: the body is at fault
        raise ApiError(400, "the body is not a readable multipart/form-data form.") from None
    try:
        fields = submission_fields(form)
        upload = form.get("file")
        if isinstance(upload, str) and upload:
            raise ApiError(422, "file: send the file as a file part of the form, not as text")
        if not isinstance(upload, StarletteUploadFile) or (upload.filename == "" and upload.size == 0):
            raise ApiError(422, "file: Field required")  # absent, or a browser's empty file input
        content = await upload.read(MAX_FILE_BYTES + 1)
        filename = upload.filename or ""
    finally:
        await form.close()
    row, _new = await run_in_threadpool(service.submit, caller, fields["exercise"], filename, content,
                                        fields["student"], fields["callback_url"], idempotency_key)
    return JSONResponse({"id": row.id, "status": row.status, "exercise": row.exercise, "student": row.student,
                         "sha256": row.sha256, "created_at": iso(row.created_at)}, 202)


@router.get("/api/v1/submissions/{submission_id}", response_model=SubmissionState, responses=errors(401, 404, 503))
def get_submission(submission_id: str, caller: Caller, service: ServiceDep) -> SubmissionState:
    row = service.store.get(submission_id, caller)
    if row is None:
        raise ApiError(404, f"no submission {submission_id!r} that this token may read.")
    answer = state(row)
    if row.status == "queued":
        answer.position = service.store.position(row)
    return answer


@router.get("/api/v1/submissions", response_model=list[SubmissionState], responses=errors(401, 503))
def list_submissions(caller: Caller, service: ServiceDep, exercise: str | None = None, student: str | None = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[SubmissionState]:
    return [state(r) for r in service.store.list(caller, exercise, student, limit)]
