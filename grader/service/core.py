"""What the routes need, made once at start-up: the store, the graders, the configuration (class `Service`).

The operations the API and the pages share (authenticate a token, take a submission, the report a caller may
read, the gradebook) are its methods, so both front ends check and answer alike."""

from __future__ import annotations

import csv
import gc
import io
import json
import logging
import os
import secrets
import time
from typing import Any

from grader.course import exercises
from grader.execution.executor import Executor
from grader.service.config import (
    CALLBACK_URL,
    CALLBACK_URL_MAX,
    IDEMPOTENCY_KEY,
    MAX_FILE_BYTES,
    PRINCIPAL_CACHE_S,
    STUDENT_ID,
    Config,
    ConfigurationError,
    open_store,
    public_url,
)
from grader.service.db import default_url
from grader.service.dispatcher import Dispatcher, Metrics
from grader.service.runners import Runners, RunnerSpec
from grader.service.schemas import ApiError
from grader.service.store import IdempotencyConflict, Principal, RateLimited

log = logging.getLogger("grader.service")


class Service:
    """What the routes need: the store, the graders, the configuration. Made at start-up.

    By default the grading runs in runner processes (runners.py: `jobs` runners of one slot each, or one
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
