"""The HTTP API of docs/http-api.md and the two pages, assembled into one FastAPI application.

This module only assembles: the service's lifespan (start the graders, stop them), the body limit, the error
handlers, and the routers: the API's by resource (routes/: submissions, reports, health), the pages
(pages.py) and LTI 1.3 (lti/routes.py). Every error is `{"error": "one line for a person"}`. A submission is
stored (committed) before 202 is answered; the grading happens in grading runner processes (runners.py),
which lease the jobs from the database themselves: this process only stores, answers and serves pages. The
OpenAPI document at /openapi.json describes every answer an endpoint can give.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from grader.execution.executor import Executor
from grader.service import pages
from grader.service.config import MAX_BODY_BYTES, Config
from grader.service.core import Service
from grader.service.middleware import BodyLimit
from grader.service.routes import health, reports, submissions
from grader.service.schemas import ApiError

log = logging.getLogger("grader.service")


def create_app(config: Config | None = None, executor: Executor | None = None) -> FastAPI:
    """The application; its Service is made now (it migrates the database: a bad --db fails early) and
    started by the lifespan. Given an executor, this process grades on it itself instead of runners."""
    made = Service(config or Config(), executor)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        made.start()
        try:
            yield
        finally:
            made.close()

    app = FastAPI(title="dl-grader service", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Submissions over HTTP; the database is the record. "
                              "See docs/http-api.md in the repository.")
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    app.state.service = made
    add_error_handlers(app)
    for router in (submissions.router, reports.router, health.router):
        app.include_router(router)

    def service() -> Service:
        return made

    pages.add_routes(app, service)
    from grader.service.lti import routes as lti_routes

    lti_routes.add_routes(app, service)  # LTI 1.3: /lti/..., and the score outbox's loop
    return app


def add_error_handlers(app: FastAPI) -> None:
    """Every error as `{"error": one line}`: the API's own, Starlette's, a request that does not validate, and
    a database that does not answer (503 with Retry-After)."""

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
