"""Everything the service does to its database, each operation one short transaction.

The queue lives in the `submissions` table. A job is claimed with one UPDATE whose subquery picks the
oldest queued row (new submissions before regrades) `FOR UPDATE SKIP LOCKED` on PostgreSQL, so several
processes share the queue and no row is claimed twice; on SQLite the single UPDATE statement holds the
database's write lock. A claim counts an attempt and sets a lease that the claiming process's heartbeat
extends; a lease that expires (its process died) puts the job back in the queue, and a job that has used
up its attempts is finished as `failed`, with a report that says why. A result is stored only by the
process that still holds the lease, in the same transaction as its webhook: the report is the record
before the job is acknowledged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from grader.service.db import PageSession, Setting, Submission, Token, Webhook

ROLES = ("student", "lms", "instructor")
STATUSES = ("queued", "running", "graded", "failed")
MAX_ATTEMPTS = 3  # a submission that breaks its worker this often ends `failed`, never a requeue loop
WEBHOOK_GIVE_UP_S = 24 * 3600.0
_WITHOUT_CONTENT = [c for c in Submission.__table__.c if c.name != "content"]  # what a reader sees of a row
# The POST path's statements, built once (building a statement and its cache key cost more than SQLite's run)
_SUBMISSIONS = Submission.__table__
_BY_KEY = select(_SUBMISSIONS).where(_SUBMISSIONS.c.token_id == bindparam("token_id"),
                                     _SUBMISSIONS.c.idempotency_key == bindparam("key"))
_RECENT = (select(func.count(), func.min(_SUBMISSIONS.c.created_at))
           .where(_SUBMISSIONS.c.student == bindparam("student"), _SUBMISSIONS.c.created_at >= bindparam("since"),
                  _SUBMISSIONS.c.priority == 0))
_INSERT = _SUBMISSIONS.insert()


def unstorable(*texts: str | None) -> bool:
    """Whether one of `texts` has a NUL byte: PostgreSQL refuses one in a text column, so a lookup by it would
    fail as if the database were down (nothing stored has one)."""
    return any("\x00" in text for text in texts if text)


class IdempotencyConflict(Exception):
    """An Idempotency-Key already used by this token for another student, exercise or file."""


class RateLimited(Exception):
    def __init__(self, retry_after_s: int):
        super().__init__(f"retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Principal:
    token_id: int
    role: str
    student: str | None

    @property
    def reads_all(self) -> bool:
        return self.role in ("lms", "instructor")


@dataclass(frozen=True)
class Claimed:
    id: str
    exercise: str
    filename: str
    content: bytes
    attempts: int


def iso(seconds: float) -> str:
    """A time as the API writes it: ISO 8601 in UTC, to the millisecond, with a Z."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def sign(body: bytes, secret: str) -> str:
    """The X-Grade-Signature header's value: `sha256=` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class Store:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        # SQLite has one writer at a time, and a writer that finds the lock taken sleeps in SQLite's busy
        # handler (1, 2, 5, 10, ... ms) however soon it is free: this process's own POSTs take turns here
        # instead, and only another process's transaction can make one of them sleep there.
        self._submit_turn: AbstractContextManager[Any] = (
            threading.Lock() if engine.dialect.name == "sqlite" else nullcontext())

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessions.begin() as session:
            yield session

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    def warm(self, connections: int = 8) -> None:
        """Open pooled connections and compile the POST path's statements once, so that the first burst of
        submissions does not pay for it (reads only: a student and a key that do not exist)."""
        held = []
        try:
            for _ in range(connections):
                connection = self.engine.connect()
                held.append(connection)
                connection.execute(_BY_KEY, {"token_id": -1, "key": ""}).first()
                connection.execute(_RECENT, {"student": "", "since": 0}).one()
                connection.rollback()
        finally:
            for connection in held:
                connection.close()

    # ---- tokens and settings
    def add_token(self, role: str, student: str | None) -> str:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; choose from {', '.join(ROLES)}")
        if role == "student" and not student:
            raise ValueError("a student token needs --student ID")
        token = "gr_" + secrets.token_urlsafe(32)
        with self.session() as session:
            session.add(Token(token_sha256=hash_token(token), role=role,
                              student=student if role == "student" else None, created_at=time.time()))
        return token

    def principal(self, token: str) -> Principal | None:
        """Who a token is; None for one that is not known or was revoked."""
        with self.session() as session:
            row = session.scalar(select(Token).where(Token.token_sha256 == hash_token(token),
                                                     Token.revoked_at.is_(None)))
            return Principal(row.id, row.role, row.student) if row else None

    def tokens(self) -> list[Token]:
        """Every token (its hash, never the token itself), oldest first."""
        with self.session() as session:
            return list(session.scalars(select(Token).order_by(Token.id)))

    def revoke_token(self, token_or_id: str) -> Token | None:
        """Revoke a token given as itself (`gr_...`) or by its id (`grade token list`); None if there is none.
        Its submissions and reports stay; it no longer signs anyone in."""
        if token_or_id.isdigit():
            condition = Token.id == int(token_or_id)
        else:
            condition = Token.token_sha256 == hash_token(token_or_id)
        with self.session() as session:
            row = session.scalar(select(Token).where(condition))
            if row is not None and row.revoked_at is None:
                row.revoked_at = time.time()
                session.execute(update(PageSession).where(PageSession.token_id == row.id,
                                                          PageSession.revoked_at.is_(None))
                                .values(revoked_at=row.revoked_at))
            return row

    def setting(self, key: str, make: Any) -> str:
        """The stored value of a setting, made (and stored) once by `make()` when there is none."""
        with self.session() as session:
            row = session.get(Setting, key)
            if row is not None:
                return row.value
        try:
            with self.session() as session:
                session.add(Setting(key=key, value=make()))
        except IntegrityError:
            pass  # another process stored it first
        with self.session() as session:
            return session.get(Setting, key).value

    # ---- submissions
    def add_submission(self, principal: Principal, exercise: str, student: str, filename: str, content: bytes,
                       callback_url: str | None, base_url: str, idempotency_key: str | None,
                       rate: tuple[int, float] | None = None) -> tuple[Any, bool]:
        """Store a submission (queued), in one transaction; returns it and whether it is new (False: the same
        Idempotency-Key as before). `rate` = (at most N, per S seconds) for this student, else RateLimited."""
        now = time.time()
        values = {"id": uuid.uuid4().hex, "exercise": exercise, "student": student, "filename": filename,
                  "sha256": hashlib.sha256(content).hexdigest(), "content": content, "callback_url": callback_url,
                  "base_url": base_url, "token_id": principal.token_id, "idempotency_key": idempotency_key,
                  "status": "queued", "priority": 0, "attempts": 0, "created_at": now, "queued_at": now}
        try:  # SQLAlchemy Core on one connection: the POST path is the API's hottest, the ORM's flush its cost
            with self._submit_turn, self.engine.begin() as connection:
                if idempotency_key:
                    existing = connection.execute(_BY_KEY, {"token_id": principal.token_id,
                                                            "key": idempotency_key}).first()
                    if existing is not None:
                        return self._same_request(existing, values), False
                if rate:
                    limit, window = rate
                    count, oldest = connection.execute(_RECENT, {"student": student, "since": now - window}).one()
                    if count >= limit:
                        raise RateLimited(max(1, int((oldest or now) + window - now + 0.999)))
                connection.execute(_INSERT, values)
        except IntegrityError:  # another POST with this key committed first (a race): the same rule
            existing = self._by_key(principal.token_id, idempotency_key) if idempotency_key else None
            if existing is None:
                raise
            return self._same_request(existing, values), False
        return SimpleNamespace(**values), True

    @staticmethod
    def _same_request(existing: Any, values: dict[str, Any]) -> Any:
        """The stored submission of a replayed Idempotency-Key, or IdempotencyConflict where the replay asks
        for something else (another student, exercise or file): that one is never silently dropped."""
        for name in ("student", "exercise", "sha256"):
            if getattr(existing, name) != values[name]:
                raise IdempotencyConflict(name)
        return existing

    def position(self, row: Any) -> int | None:
        """How many queued submissions the claim order puts before this queued one (None when not queued)."""
        if row.status != "queued":
            return None
        table = _SUBMISSIONS
        ahead = (table.c.priority < row.priority) | (
            (table.c.priority == row.priority) & ((table.c.queued_at < row.queued_at) | (
                (table.c.queued_at == row.queued_at) & (table.c.id < row.id))))
        with self.engine.connect() as connection:
            return int(connection.execute(select(func.count()).where(table.c.status == "queued", ahead)).scalar())

    # ---- the pages' sessions
    def new_session(self, token_id: int, lifetime_s: float) -> str:
        """A new session for a signed-in browser: its random id (the cookie's value; stored only hashed)."""
        raw = "gs_" + secrets.token_urlsafe(32)
        now = time.time()
        with self.session() as session:
            session.add(PageSession(id_sha256=hash_token(raw), token_id=token_id, created_at=now,
                                    expires_at=now + lifetime_s))
        return raw

    def session_principal(self, raw: str) -> Principal | None:
        """Who a session is: None when unknown, expired, signed out, or its token revoked."""
        with self.session() as session:
            row = session.execute(
                select(Token.id, Token.role, Token.student).join(PageSession, PageSession.token_id == Token.id)
                .where(PageSession.id_sha256 == hash_token(raw), PageSession.revoked_at.is_(None),
                       PageSession.expires_at > time.time(), Token.revoked_at.is_(None))).first()
            return Principal(row.id, row.role, row.student) if row else None

    def end_session(self, raw: str) -> None:
        with self.session() as session:
            session.execute(update(PageSession).where(PageSession.id_sha256 == hash_token(raw),
                                                      PageSession.revoked_at.is_(None))
                            .values(revoked_at=time.time()))

    def _by_key(self, token_id: int, key: str) -> Any:
        with self.engine.connect() as connection:
            return connection.execute(_BY_KEY, {"token_id": token_id, "key": key}).first()

    def get(self, submission_id: str, principal: Principal) -> Any:
        """The submission (without its file) if the caller may see it (another student's reads as absent).
        Core, not the ORM: a client polling for its report calls this often."""
        table = Submission.__table__
        if unstorable(submission_id):
            return None  # never stored: no NUL byte reaches PostgreSQL (it refuses one, and that read as a 503)
        with self.engine.connect() as connection:
            row = connection.execute(select(*_WITHOUT_CONTENT).where(table.c.id == submission_id)).first()
        if row is None or (not principal.reads_all and row.student != principal.student):
            return None
        return row

    def list(self, principal: Principal, exercise: str | None, student: str | None, limit: int = 100,
             with_reports: bool = False) -> list[Any]:
        """The caller's visible submissions, newest first (without their files; their reports if asked)."""
        table = Submission.__table__
        if unstorable(exercise, student):
            return []  # a NUL byte: nothing stored has one
        columns = _WITHOUT_CONTENT if with_reports else [c for c in _WITHOUT_CONTENT if c.name != "report"]
        query = select(*columns).order_by(table.c.created_at.desc(), table.c.id).limit(limit)
        if not principal.reads_all:
            query = query.where(table.c.student == principal.student)
        if exercise:
            query = query.where(table.c.exercise == exercise)
        if student:
            query = query.where(table.c.student == student)
        with self.engine.connect() as connection:
            return list(connection.execute(query))

    def graded(self) -> list[tuple[str, str, float, str | None, float, str]]:
        """(student, exercise, score, report JSON, created_at, id) of every graded or failed submission, oldest
        first."""
        with self.session() as session:
            return [tuple(r) for r in session.execute(
                select(Submission.student, Submission.exercise, Submission.score, Submission.report,
                       Submission.created_at, Submission.id)
                .where(Submission.status.in_(("graded", "failed")), Submission.report.is_not(None))
                .order_by(Submission.created_at, Submission.id))]

    def regrade(self, exercise: str | None, student: str | None) -> int:
        """Queue the finished submissions again, behind every new one; returns how many."""
        conditions = [Submission.status.in_(("graded", "failed"))]
        if unstorable(exercise, student):
            return 0
        if exercise:
            conditions.append(Submission.exercise == exercise)
        if student:
            conditions.append(Submission.student == student)
        with self.session() as session:
            result = session.execute(update(Submission).where(*conditions).values(
                status="queued", priority=1, attempts=0, queued_at=time.time(), lease_owner=None,
                lease_expires=None, started_at=None, finished_at=None))
            return int(result.rowcount or 0)

    def counts(self) -> tuple[dict[str, int], float | None]:
        with self.session() as session:
            rows = session.execute(select(Submission.status, func.count()).group_by(Submission.status)).all()
            oldest = session.scalar(select(func.min(Submission.queued_at)).where(Submission.status == "queued"))
        counts = {status: 0 for status in STATUSES}
        counts.update({status: int(n) for status, n in rows})
        return counts, oldest

    # ---- the queue
    def claim(self, owner: str, lease_s: float) -> Claimed | None:
        now = time.time()
        pick = (select(Submission.id).where(Submission.status == "queued")
                .order_by(Submission.priority, Submission.queued_at, Submission.id)
                .limit(1).with_for_update(skip_locked=True).scalar_subquery())
        with self.session() as session:
            claimed_id = session.execute(
                update(Submission).where(Submission.id == pick, Submission.status == "queued")
                .values(status="running", lease_owner=owner, lease_expires=now + lease_s,
                        attempts=Submission.attempts + 1, started_at=now)
                .returning(Submission.id)
                .execution_options(synchronize_session=False)
            ).scalar()
            if claimed_id is None:
                return None
            row = session.get(Submission, claimed_id)
            return Claimed(row.id, row.exercise, row.filename, row.content, row.attempts)

    def heartbeat(self, owner: str, lease_s: float) -> int:
        with self.session() as session:
            result = session.execute(update(Submission)
                                     .where(Submission.status == "running", Submission.lease_owner == owner)
                                     .values(lease_expires=time.time() + lease_s))
            return int(result.rowcount or 0)

    def expired(self) -> list[Claimed]:
        """The running jobs whose lease has run out (their process died or lost the database for too long)."""
        with self.session() as session:
            rows = session.scalars(select(Submission).where(Submission.status == "running",
                                                            Submission.lease_expires < time.time()))
            return [Claimed(r.id, r.exercise, r.filename, r.content, r.attempts) for r in rows]

    def requeue(self, claimed: Claimed, error: str, owner: str | None = None) -> bool:
        """Put a job back in the queue (after its lease expired, or its worker broke under it)."""
        condition = (Submission.lease_owner == owner) if owner else (Submission.lease_expires < time.time())
        with self.session() as session:
            result = session.execute(update(Submission)
                                     .where(Submission.id == claimed.id, Submission.status == "running", condition)
                                     .values(status="queued", lease_owner=None, lease_expires=None,
                                             last_error=error))
            return bool(result.rowcount)

    def release(self, owner: str) -> int:
        """A process stopping cleanly: its running jobs go back to the queue, the attempt not counted."""
        with self.session() as session:
            result = session.execute(update(Submission)
                                     .where(Submission.status == "running", Submission.lease_owner == owner)
                                     .values(status="queued", lease_owner=None, lease_expires=None,
                                             attempts=Submission.attempts - 1))
            return int(result.rowcount or 0)

    def finish(self, submission_id: str, owner: str | None, status: str, report: dict[str, Any],
               secret: str, error: str | None = None) -> bool:
        """Store the report and, in the same transaction, its webhook. Only the lease holder's result counts
        (owner None: an expired lease, finished by whoever found it). Returns False when it was not ours."""
        now = time.time()
        lease = (Submission.lease_owner == owner) if owner else (Submission.lease_expires < now)
        with self.session() as session:
            result = session.execute(
                update(Submission).where(Submission.id == submission_id, Submission.status == "running", lease)
                .values(status=status, report=json.dumps(report), score=report.get("score"),
                        max_score=report.get("max_score"), finished_at=now, lease_owner=None,
                        lease_expires=None, last_error=error)
                .execution_options(synchronize_session=False))
            if not result.rowcount:
                return False
            row = session.get(Submission, submission_id)
            if row.callback_url:
                body = json.dumps({"id": row.id, "status": status, "score": row.score, "max_score": row.max_score,
                                   "report_url": f"{row.base_url.rstrip('/')}/api/v1/submissions/{row.id}/report",
                                   "exercise": row.exercise, "student": row.student, "graded_at": iso(now)},
                                  separators=(",", ":"))
                session.add(Webhook(submission_id=row.id, url=row.callback_url, body=body, attempts=0,
                                    next_attempt_at=now, created_at=now, given_up=0))
        return True

    # ---- the webhook outbox
    def due_webhooks(self, hold_s: float, limit: int = 20) -> list[tuple[int, str, str, int, str]]:
        """Claim the callbacks due now (held for `hold_s`, so another process leaves them alone meanwhile)."""
        now = time.time()
        with self.session() as session:
            rows = list(session.scalars(
                select(Webhook).where(Webhook.delivered_at.is_(None), Webhook.given_up == 0,
                                      Webhook.next_attempt_at <= now)
                .order_by(Webhook.next_attempt_at).limit(limit).with_for_update(skip_locked=True)))
            for row in rows:
                row.next_attempt_at = now + hold_s
            # the delivery's id (X-Grade-Delivery): the same on every retry of this row, another for a regrade's
            return [(r.id, r.url, r.body, r.attempts, f"{r.submission_id}-{r.id}") for r in rows]

    def webhook_done(self, webhook_id: int, delivered: bool, error: str | None, backoff_s: float) -> None:
        now = time.time()
        with self.session() as session:
            row = session.get(Webhook, webhook_id)
            if row is None:
                return
            row.attempts += 1
            if delivered:
                row.delivered_at = now
                row.last_error = None
                return
            row.last_error = (error or "")[:500]
            if now - row.created_at > WEBHOOK_GIVE_UP_S:
                row.given_up = 1
            else:
                row.next_attempt_at = now + backoff_s * (2 ** min(row.attempts - 1, 12))

    def webhooks(self, submission_id: str) -> list[Webhook]:
        with self.session() as session:
            return list(session.scalars(select(Webhook).where(Webhook.submission_id == submission_id)))

