"""The HTTP API of docs/http-api.md and the two pages, as one FastAPI application.

Every error is `{"error": "one line for a person"}`. A submission is stored (committed) before 202 is
answered; the grading happens in grading runner processes (runner.py), which lease the jobs from the
database themselves: this process only stores, answers and serves pages. The OpenAPI document at
/openapi.json describes every answer an endpoint can give.
"""

from __future__ import annotations

import csv
import gc
import io
import json
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as StarletteUploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from grader.course import exercises
from grader.execution.executor import Executor
from grader.service import pages
from grader.service.config import (  # moved to config.py, still named here
    CALLBACK_URL as CALLBACK_URL,
    CALLBACK_URL_MAX as CALLBACK_URL_MAX,
    DEFAULT_PUBLIC_URL as DEFAULT_PUBLIC_URL,
    IDEMPOTENCY_KEY as IDEMPOTENCY_KEY,
    MAX_BODY_BYTES as MAX_BODY_BYTES,
    MAX_FILE_BYTES as MAX_FILE_BYTES,
    PRINCIPAL_CACHE_S as PRINCIPAL_CACHE_S,
    PUBLIC_URL as PUBLIC_URL,
    STUDENT_ID as STUDENT_ID,
    Config as Config,
    ConfigurationError as ConfigurationError,
    add_token as add_token,
    list_tokens as list_tokens,
    open_store as open_store,
    public_url as public_url,
    revoke_token as revoke_token,
)
from grader.service.db import default_url
from grader.service.dispatcher import Dispatcher, Metrics
from grader.service.middleware import (  # moved to middleware.py, still named here
    BodyLimit as BodyLimit,
)
from grader.service.runners import Runners, RunnerSpec
from grader.service.schemas import (  # moved to schemas.py, still named here
    ApiError as ApiError,
    Created as Created,
    Health as Health,
    QueueState as QueueState,
    Regraded as Regraded,
    RegradeRequest as RegradeRequest,
    SubmissionState as SubmissionState,
    errors as errors,
    iso as iso,
    state as state,
    submission_fields as submission_fields,
)
from grader.service.store import IdempotencyConflict, Principal, RateLimited

log = logging.getLogger("grader.service")


# ---- the shapes of the answers (the OpenAPI document is made from these)


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


class Service:
    """What the routes need: the store, the graders, the configuration. Made at start-up.

    By default the grading runs in runner processes (runner.py: `jobs` runners of one slot each, or one
    runner with `jobs` slots on a Dask cluster), each leasing jobs from the database. Given an executor
    object, this process grades on it itself instead (one in-process dispatcher, as an embedding may want).
    """

    def __init__(self, config: Config, executor: Executor | None = None):
        self.config = config
        # with runners, their commits checkpoint SQLite's WAL; a POST's commit never waits for one
        try:
            self.public_url = public_url(config.public_url)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        self.engine, self.store = open_store(config.db_url, checkpoints=executor is not None)
        self.secret = os.environ.get("GRADE_WEBHOOK_SECRET") or self.store.setting(
            "webhook_secret", lambda: secrets.token_hex(32))
        self.metrics = Metrics()
        self._given_executor = executor
        self._principals: dict[str, tuple[Principal, float]] = {}  # token -> (who, until): no lookup per call
        self.exercise_ids = exercises.exercise_ids()
        for exercise_id, problem in exercises.broken().items():  # the others are served; this one is named
            log.error("exercise %s is broken and not served: %s", exercise_id, problem)
        self.executor: Executor | None = None
        self.dispatcher: Dispatcher | None = None
        self.runners: Runners | None = None

    def start(self) -> None:
        """Start the graders: the runner processes, or the given executor's in-process dispatcher."""
        if self._given_executor is not None:
            self.executor = self._given_executor
            self.dispatcher = Dispatcher(self.store, self.executor, self.secret, self.config.timing, self.metrics,
                                         self.config.limits)
            self.dispatcher.start()
        else:
            self.runners = Runners(self.runner_specs(), self.metrics.latency.observe)
            self.runners.start()
        self.metrics.workers.set(self.capacity)
        try:
            self.store.warm()
        except Exception as exc:  # noqa: BLE001 - the database is away now: the first POSTs pay instead
            log.warning("could not warm the database connections (%s)", str(exc).splitlines()[0][:200])
        # Everything alive now (the modules, FastAPI's routes and models: some 120,000 objects) lives as long
        # as the process; out of the collector's sight, a full collection no longer stops every answer for
        # a tenth of a second in the middle of a burst.
        gc.collect()
        gc.freeze()

    def runner_specs(self) -> list[RunnerSpec]:
        config = self.config
        common = {"db_url": config.db_url or default_url(), "secret": self.secret, "device": config.device,
                  "timeout": config.limits.timeout, "memory_mib": config.limits.memory_mib, "nice": config.runner_nice}
        if config.scheduler:  # the cluster grades; one runner keeps its slots busy and does the comparing
            return [RunnerSpec(slots=config.jobs, index=0, scheduler=config.scheduler, webhooks=True, **common)]
        return [RunnerSpec(slots=1, index=i, webhooks=i == 0, **common) for i in range(max(1, config.jobs))]

    @property
    def capacity(self) -> int:
        if self.runners is not None:
            return self.runners.capacity
        return self.executor.capacity if self.executor is not None else 0

    def healthy_workers(self) -> bool:
        if self.runners is not None:
            return self.runners.healthy()
        return self.executor is not None and bool(self.executor.healthy())

    def wake(self) -> None:
        if self.runners is not None:
            self.runners.wake()
        if self.dispatcher is not None:
            self.dispatcher.wake.set()

    def close(self) -> None:
        if self.runners is not None:
            self.runners.close()  # each runner stops claiming and hands back what it was grading
        if self.dispatcher is not None:
            self.dispatcher.close()  # stops claiming; what it was grading goes back in the queue
        if self.executor is not None:
            self.executor.close(wait=False)
        self.engine.dispose()

    # ---- operations shared by the API and the pages
    def cached_principal(self, token: str | None) -> Principal | None:
        """Who a token is, from the cache alone (None: not cached, or cached too long ago)."""
        cached = self._principals.get(token) if token else None
        return cached[0] if cached is not None and cached[1] > time.monotonic() else None

    def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise ApiError(401, "send Authorization: Bearer TOKEN (create one with `grade token add`).")
        cached = self.cached_principal(token)
        if cached is not None:
            return cached
        principal = self.store.principal(token)
        if principal is None:
            raise ApiError(401, "that token is not known to this service, or it was revoked.")
        if len(self._principals) > 10_000:
            self._principals.clear()
        self._principals[token] = (principal, time.monotonic() + PRINCIPAL_CACHE_S)
        return principal

    def submit(self, principal: Principal, exercise: str, upload_name: str, content: bytes, student: str | None,
               callback_url: str | None, idempotency_key: str | None) -> tuple[Any, bool]:
        if exercise not in self.exercise_ids:
            raise ApiError(422, f"unknown exercise {exercise!r}; choose from {', '.join(self.exercise_ids)}.")
        if len(content) > MAX_FILE_BYTES:
            raise ApiError(413, f"the file is larger than {MAX_FILE_BYTES // 1024} KiB; submit only your source.")
        if principal.role == "student":
            if student and student != principal.student:
                raise ApiError(403, "a student token submits only as its own student.")
            student = principal.student
        elif not student:
            raise ApiError(422, "an lms or instructor token must say which student submits (field `student`).")
        if not STUDENT_ID.fullmatch(student or ""):
            raise ApiError(422, "a student id is 1-128 letters, digits, '.', '_', '@' or '-', starting with a "
                                "letter or digit.")
        if callback_url is not None:
            if principal.role == "student":
                raise ApiError(422, "callback_url is for lms and instructor tokens.")
            if not CALLBACK_URL.match(callback_url) or len(callback_url) > CALLBACK_URL_MAX \
                    or any(c.isspace() or not c.isprintable() for c in callback_url):
                raise ApiError(422, "callback_url must be an http:// or https:// URL.")
        if idempotency_key is not None and not IDEMPOTENCY_KEY.fullmatch(idempotency_key):
            raise ApiError(422, "Idempotency-Key must be 1-200 printable ASCII characters.")
        # printable only: a NUL byte in a multipart filename made PostgreSQL refuse the row (a 503 "database
        # not answering", retried for ever); the name is only shown and its suffix read
        filename = "".join(c if c.isprintable() else "_" for c in os.path.basename(upload_name or ""))[:200] \
            or f"{exercise}.py"
        if not filename.lower().endswith((".py", ".ipynb")):
            raise ApiError(422, "submit a .py or .ipynb file.")
        try:
            row, new = self.store.add_submission(principal, exercise, student, filename, content, callback_url,
                                                 self.public_url, idempotency_key,
                                                 (self.config.rate_limit, self.config.rate_window_s))
        except RateLimited as exc:
            raise ApiError(429, f"too many submissions for {student}: at most {self.config.rate_limit} every "
                                f"{self.config.rate_window_s:g} s; try again in {exc.retry_after_s} s.",
                           {"Retry-After": str(exc.retry_after_s)}) from None
        except IdempotencyConflict as exc:
            raise ApiError(409, f"this Idempotency-Key was already used for another submission (another {exc}); "
                                "use a new key for a new submission. Nothing was stored.") from None
        if new:
            self.wake()
        return row, new

    def report_for(self, principal: Principal, report_json: str, view: str | None = None) -> str:
        """The report a caller may read: the student view for a student (whatever it asks), and for lms and
        instructor callers that asked for `view=student`; the whole stored report otherwise."""
        if principal.role == "student" or view == "student":
            from grader.model.report import from_dict, student_dict

            try:
                return json.dumps(student_dict(from_dict(json.loads(report_json))))
            except (ValueError, KeyError, TypeError):  # never the whole report instead: fail closed
                raise ApiError(500, "this report cannot be shown; ask the instructor to regrade it.") from None
        return report_json

    def gradebook_csv(self) -> str:
        from grader.classroom.gradebook import number, status_of
        from grader.model.report import from_dict

        ids = exercises.exercise_ids()
        max_scores = {e: float(sum(c.points for c in exercises.load(e).checks)) for e in ids}
        best: dict[tuple[str, str], tuple[float, str | None]] = {}
        for student, exercise, score, report, _created, _id in self.store.graded():
            status = status_of(from_dict(json.loads(report))) if report else None
            key = (student, exercise)
            if self.config.gradebook == "latest" or key not in best or (score or 0.0) >= best[key][0]:
                best[key] = (score or 0.0, status)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["student", *ids, "total", "max_total", "status"])
        for student in sorted({s for s, _ in best}):
            cells = [best.get((student, e)) for e in ids]
            total = sum(c[0] for c in cells if c)
            status = "; ".join(f"{e}: {c[1] if c else 'missing'}" for e, c in zip(ids, cells, strict=True)
                               if not c or c[1])
            writer.writerow([student, *(number(c[0]) if c else "" for c in cells), number(total),
                             number(sum(max_scores.values())), status])
        return out.getvalue()


async def bearer_token(credentials: Annotated[HTTPAuthorizationCredentials | None,
                                               Depends(HTTPBearer(auto_error=False))]) -> str | None:
    return credentials.credentials if credentials else None


def current(request: Request) -> Service:
    return request.app.state.service


async def principal(request: Request, token: Annotated[str | None, Depends(bearer_token)]) -> Principal:
    """On the event loop when the token is in the cache (nearly every call: a sync dependency would cost each
    request a trip through the thread pool); a lookup in the database goes to the thread pool."""
    service = current(request)
    cached = service.cached_principal(token)
    if cached is not None:
        return cached
    return await run_in_threadpool(service.authenticate, token)


Caller = Annotated[Principal, Depends(principal)]


def create_app(config: Config | None = None, executor: Executor | None = None) -> FastAPI:
    config = config or Config()
    holder: dict[str, Service] = {"service": Service(config, executor)}  # migrates now: a bad --db fails early

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = holder["service"]
        service.start()
        try:
            yield
        finally:
            service.close()

    app = FastAPI(title="dl-grader service", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Submissions over HTTP; the database is the record. "
                              "See docs/http-api.md in the repository.")
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)

    app.state.service = holder["service"]

    def service() -> Service:
        return holder["service"]

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header"))
        return JSONResponse({"error": f"{where or 'request'}: {first.get('msg', 'invalid')}".replace("\n", " ")}, 422)

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    async def database_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database error: %s", str(exc).splitlines()[0][:200])
        return JSONResponse({"error": "the database is not answering right now; try again in a few seconds."}, 503,
                            headers={"Retry-After": "5"})

    # ---- the API
    # The form is read here, not by FastAPI's Form() and File() parameters: solving those and validating the
    # answer through its model were a third of this process's work per POST in a burst. The document still
    # says exactly what the endpoint reads (SUBMISSION_FORM) and answers (Created).
    @app.post("/api/v1/submissions", status_code=202, response_model=Created,
              responses=errors(400, 401, 403, 409, 413, 422, 429, 503),
              openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {
                  "schema": SUBMISSION_FORM}}}})
    async def submit(request: Request, caller: Caller,
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
        row, _new = await run_in_threadpool(service().submit, caller, fields["exercise"], filename, content,
                                            fields["student"], fields["callback_url"], idempotency_key)
        return JSONResponse({"id": row.id, "status": row.status, "exercise": row.exercise, "student": row.student,
                             "sha256": row.sha256, "created_at": iso(row.created_at)}, 202)

    @app.get("/api/v1/submissions/{submission_id}", response_model=SubmissionState, responses=errors(401, 404, 503))
    def get_submission(submission_id: str, caller: Caller) -> SubmissionState:
        row = service().store.get(submission_id, caller)
        if row is None:
            raise ApiError(404, f"no submission {submission_id!r} that this token may read.")
        answer = state(row)
        if row.status == "queued":
            answer.position = service().store.position(row)
        return answer

    @app.get("/api/v1/submissions/{submission_id}/report", response_model=dict[str, Any],
             responses=errors(401, 404, 409, 503))
    def get_report(submission_id: str, caller: Caller,
                   view: Annotated[str | None, Query(pattern="^(full|student)$", description=(
                       "student: the student view (a student token always gets it)"))] = None) -> Response:
        row = service().store.get(submission_id, caller)
        if row is None:
            raise ApiError(404, f"no submission {submission_id!r} that this token may read.")
        if row.status not in ("graded", "failed") or not row.report:
            raise ApiError(409, f"submission {submission_id} is {row.status}, not graded yet; poll its status.")
        return Response(service().report_for(caller, row.report, view), media_type="application/json")

    @app.get("/api/v1/submissions", response_model=list[SubmissionState], responses=errors(401, 503))
    def list_submissions(caller: Caller, exercise: str | None = None, student: str | None = None,
                         limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[SubmissionState]:
        return [state(r) for r in service().store.list(caller, exercise, student, limit)]

    @app.get("/api/v1/gradebook.csv", response_class=PlainTextResponse,
             responses={200: {"content": {"text/csv": {}}}, **errors(401, 403, 503)})
    def gradebook(caller: Caller) -> Response:
        if caller.role != "instructor":
            raise ApiError(403, "the gradebook is for instructor tokens.")
        return Response(service().gradebook_csv(), media_type="text/csv; charset=utf-8")

    @app.post("/api/v1/regrade", status_code=202, response_model=Regraded, responses=errors(401, 403, 422, 503))
    def regrade(caller: Caller, body: RegradeRequest | None = None) -> Regraded:
        if caller.role != "instructor":
            raise ApiError(403, "regrading is for instructor tokens.")
        body = body or RegradeRequest()
        if body.exercise is not None and body.exercise not in exercises.exercise_ids():
            raise ApiError(422, f"unknown exercise {body.exercise!r}.")
        queued = service().store.regrade(body.exercise, body.student)
        service().wake()
        return Regraded(queued=queued)

    @app.get("/api/v1/queue", response_model=QueueState, responses=errors(401, 503))
    def queue_state(caller: Caller) -> QueueState:
        counts, oldest = service().store.counts()
        age = round(max(0.0, time.time() - oldest), 3) if oldest is not None else None
        return QueueState(counts=counts, oldest_queued_age_s=age, workers=service().capacity)

    @app.get("/healthz", response_model=Health, responses={503: {"model": Health}})
    def healthz() -> JSONResponse:
        try:
            service().store.ping()
            database = True
        except Exception:  # noqa: BLE001 - any failure means "not healthy"
            database = False
        ok = database and service().healthy_workers()
        return JSONResponse({"ok": ok}, 200 if ok else 503)

    @app.get("/metrics", response_class=PlainTextResponse, responses={200: {"content": {"text/plain": {}}}})
    def metrics() -> Response:
        metrics = service().metrics
        try:
            counts, _ = service().store.counts()
            for status, count in counts.items():
                metrics.submissions.labels(status).set(count)
            metrics.queue_depth.set(counts.get("queued", 0))
        except Exception as exc:  # noqa: BLE001 - the database is away: serve what this process knows
            log.warning("metrics: the database did not answer (%s)", str(exc).splitlines()[0][:200])
        metrics.healthy_workers.set(1 if service().healthy_workers() else 0)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    pages.add_routes(app, service)
    from grader.service.lti import routes as lti_routes

    lti_routes.add_routes(app, service)  # LTI 1.3: /lti/..., and the score outbox's loop
    return app


