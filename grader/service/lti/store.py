"""Every LTI operation on the database, each one short transaction (as grader/service/store.py does)."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from grader.service.db import PageSession, Submission, Token
from grader.service.lti.models import (
    LtiLaunch,
    LtiLogin,
    LtiPlatform,
    LtiScore,
    LtiSubmission,
    LtiTicket,
    LtiUser,
)
from grader.service.store import hash_token, iso

LOGIN_S = 600.0  # an OIDC login must come back as a launch within this long
TICKET_S = 120.0  # an "open in a new window" ticket lives this long, and is used once
SCORE_GIVE_UP_S = 24 * 3600.0


@dataclass(frozen=True)
class Platform:
    id: int
    issuer: str
    client_id: str
    deployment_id: str
    auth_url: str
    token_url: str
    jwks_url: str
    created_at: float
    frame_origins: tuple[str, ...] = ()


@dataclass(frozen=True)
class Launch:
    id: str
    platform_id: int
    kind: str
    message_type: str
    context_id: str | None
    context_title: str | None
    exercise: str | None
    lineitem: str | None
    memberships_url: str | None
    deep_link: dict[str, Any] | None
    student: str
    name: str | None
    sub: str
    token_id: int  # the principal this launch's session signs in as


def _platform(row: LtiPlatform) -> Platform:
    return Platform(row.id, row.issuer, row.client_id, row.deployment_id, row.auth_url, row.token_url,
                    row.jwks_url, row.created_at, tuple((row.frame_origins or "").split()))


class LtiStore:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessions.begin() as session:
            yield session

    # ---- platforms
    def add_platform(self, issuer: str, client_id: str, deployment_id: str, auth_url: str, token_url: str,
                     jwks_url: str, frame_origins: tuple[str, ...] = ()) -> Platform:
        with self.session() as session:
            existing = session.scalar(select(LtiPlatform).where(
                LtiPlatform.issuer == issuer, LtiPlatform.client_id == client_id,
                LtiPlatform.deployment_id == deployment_id))
            if existing is not None:  # the same deployment again: its URLs updated
                existing.auth_url, existing.token_url, existing.jwks_url = auth_url, token_url, jwks_url
                existing.frame_origins = " ".join(frame_origins) or None
                return _platform(existing)
            row = LtiPlatform(issuer=issuer, client_id=client_id, deployment_id=deployment_id, auth_url=auth_url,
                              token_url=token_url, jwks_url=jwks_url, frame_origins=" ".join(frame_origins) or None,
                              created_at=time.time())
            session.add(row)
            session.flush()
            return _platform(row)

    def platforms(self) -> list[Platform]:
        with self.session() as session:
            return [_platform(r) for r in session.scalars(select(LtiPlatform).order_by(LtiPlatform.id))]

    def platform(self, platform_id: int) -> Platform | None:
        with self.session() as session:
            row = session.get(LtiPlatform, platform_id)
            return _platform(row) if row else None

    def remove_platform(self, platform_id: int) -> Platform | None:
        with self.session() as session:
            row = session.get(LtiPlatform, platform_id)
            if row is None:
                return None
            found = _platform(row)
            launches = select(LtiLaunch.id).where(LtiLaunch.platform_id == platform_id)
            session.execute(delete(LtiTicket).where(LtiTicket.launch_id.in_(launches)))
            session.execute(update(LtiScore).where(LtiScore.platform_id == platform_id,
                                                   LtiScore.delivered_at.is_(None))
                            .values(given_up=1, last_error="the platform was removed"))
            session.execute(delete(LtiSubmission).where(LtiSubmission.launch_id.in_(launches)))
            session.execute(delete(LtiLaunch).where(LtiLaunch.platform_id == platform_id))
            session.delete(row)
            return found

    # ---- logins in flight
    def new_login(self, issuer: str, client_id: str) -> tuple[str, str]:
        """A fresh (state, nonce); the database keeps the state's hash only."""
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        now = time.time()
        with self.session() as session:
            session.execute(delete(LtiLogin).where(LtiLogin.expires_at < now))  # expired ones, at once
            session.add(LtiLogin(state_sha256=hash_token(state), nonce=nonce, issuer=issuer, client_id=client_id,
                                 created_at=now, expires_at=now + LOGIN_S))
        return state, nonce

    def use_login(self, state: str) -> LtiLogin | None:
        """The login this state began, used up now (a second use finds nothing); None if unknown or expired."""
        now = time.time()
        with self.session() as session:
            used = session.execute(update(LtiLogin).where(
                LtiLogin.state_sha256 == hash_token(state), LtiLogin.used_at.is_(None), LtiLogin.expires_at > now)
                .values(used_at=now)).rowcount
            return session.get(LtiLogin, hash_token(state)) if used else None

    # ---- users and launches
    def user(self, issuer: str, client_id: str, sub: str, name: str | None) -> tuple[int, str, int]:
        """(user id, student id, token id to sign in as) for (issuer, client id, sub), made on first launch."""
        with self.session() as session:
            return self._user(session, issuer, client_id, sub, name)

    @staticmethod
    def _user(session: Session, issuer: str, client_id: str, sub: str, name: str | None) -> tuple[int, str, int]:
        """A person is a `sub` of one registration (issuer and client id), never of an issuer alone: several
        registrations may share an issuer (every Canvas cloud school's is https://canvas.instructure.com),
        and each has its own keys, so one of them must not sign in as another's users. The student id is
        "lti-" + sha256(issuer, sub) as before where that is free (the first registration of an issuer keeps
        its students' ids), else "lti-" + sha256(issuer, client id, sub)."""
        import hashlib

        row = session.scalar(select(LtiUser).where(LtiUser.issuer == issuer, LtiUser.client_id == client_id,
                                                   LtiUser.sub == sub))
        if row is None:
            student = "lti-" + hashlib.sha256(f"{issuer}\n{sub}".encode()).hexdigest()[:20]
            if session.scalar(select(LtiUser.id).where(LtiUser.student == student)) is not None:
                student = "lti-" + hashlib.sha256(f"{issuer}\n{client_id}\n{sub}".encode()).hexdigest()[:20]
            token = Token(token_sha256=hash_token("lti-unheld-" + secrets.token_urlsafe(32)), role="student",
                          student=student, created_at=time.time())
            session.add(token)
            session.flush()
            row = LtiUser(issuer=issuer, client_id=client_id, sub=sub, student=student, name=name, token_id=token.id)
            session.add(row)
            session.flush()
        elif name and row.name != name:
            row.name = name
        return row.id, row.student, row.token_id

    def add_launch(self, platform_id: int, user_id: int, kind: str, message_type: str, context_id: str | None,
                   context_title: str | None, exercise: str | None, lineitem: str | None,
                   memberships_url: str | None, deep_link: dict[str, Any] | None) -> str:
        with self.session() as session:
            return self._add_launch(session, platform_id, user_id, kind, message_type, context_id, context_title,
                                    exercise, lineitem, memberships_url, deep_link)

    @staticmethod
    def _add_launch(session: Session, platform_id: int, user_id: int, kind: str, message_type: str,
                    context_id: str | None, context_title: str | None, exercise: str | None, lineitem: str | None,
                    memberships_url: str | None, deep_link: dict[str, Any] | None) -> str:
        launch_id = uuid.uuid4().hex
        session.add(LtiLaunch(id=launch_id, platform_id=platform_id, user_id=user_id, kind=kind,
                              message_type=message_type, context_id=context_id, context_title=context_title,
                              exercise=exercise, lineitem=lineitem, memberships_url=memberships_url,
                              deep_link=json.dumps(deep_link) if deep_link is not None else None,
                              created_at=time.time()))
        return launch_id

    def accept(self, issuer: str, client_id: str, sub: str, name: str | None, session_s: float,
               **launch: Any) -> tuple[str, str, str]:
        """An accepted launch in one transaction: its user (made on first launch), the launch, a new-window
        ticket and a page session. Returns (launch id, ticket, the session's raw id)."""
        ticket, raw = "lt_" + secrets.token_urlsafe(32), "gs_" + secrets.token_urlsafe(32)
        now = time.time()
        with self.session() as session:
            user_id, _student, token_id = self._user(session, issuer, client_id, sub, name)
            launch_id = self._add_launch(session, user_id=user_id, **launch)
            session.add(LtiTicket(ticket_sha256=hash_token(ticket), launch_id=launch_id, expires_at=now + TICKET_S))
            session.add(PageSession(id_sha256=hash_token(raw), token_id=token_id, created_at=now,
                                    expires_at=now + session_s))
        return launch_id, ticket, raw

    def launch(self, launch_id: str) -> Launch | None:
        with self.session() as session:
            found = session.execute(select(LtiLaunch, LtiUser).join(LtiUser, LtiUser.id == LtiLaunch.user_id)
                                    .where(LtiLaunch.id == launch_id)).first()
            if found is None:
                return None
            launch, user = found
            return Launch(launch.id, launch.platform_id, launch.kind, launch.message_type, launch.context_id,
                          launch.context_title, launch.exercise, launch.lineitem, launch.memberships_url,
                          json.loads(launch.deep_link) if launch.deep_link else None, user.student, user.name,
                          user.sub, user.token_id)

    def names(self, issuer: str, client_id: str) -> dict[str, tuple[str, str | None]]:
        """sub -> (student id, name) of this registration's users who launched the tool."""
        with self.session() as session:
            users = session.scalars(select(LtiUser).where(LtiUser.issuer == issuer, LtiUser.client_id == client_id))
            return {r.sub: (r.student, r.name) for r in users}

    def display_names(self, students: list[str]) -> dict[str, str]:
        with self.session() as session:
            return {r.student: r.name for r in session.scalars(select(LtiUser).where(LtiUser.student.in_(students)))
                    if r.name}

    # ---- tickets (the new-window fallback)
    def new_ticket(self, launch_id: str) -> str:
        ticket = "lt_" + secrets.token_urlsafe(32)
        with self.session() as session:
            session.add(LtiTicket(ticket_sha256=hash_token(ticket), launch_id=launch_id,
                                  expires_at=time.time() + TICKET_S))
        return ticket

    def use_ticket(self, ticket: str) -> str | None:
        """The launch a ticket was made for, the ticket used up now; None when unknown, used or expired."""
        now = time.time()
        with self.session() as session:
            used = session.execute(update(LtiTicket).where(
                LtiTicket.ticket_sha256 == hash_token(ticket), LtiTicket.used_at.is_(None),
                LtiTicket.expires_at > now).values(used_at=now)).rowcount
            if not used:
                return None
            return session.get(LtiTicket, hash_token(ticket)).launch_id

    # ---- submissions and their scores
    def link_submission(self, submission_id: str, launch_id: str) -> None:
        with self.session() as session:
            if session.get(LtiSubmission, submission_id) is None:
                session.add(LtiSubmission(submission_id=submission_id, launch_id=launch_id, considered=0))

    def enqueue_scores(self, gradebook: str) -> int:
        """Queue the score that counts (best or latest, as the gradebook says) for the line item of every newly
        graded (or regraded) LTI submission, in the transaction that marks it considered: whatever is killed
        when, each grade is considered once. The score that counts may be another submission's (a regrade
        that lowered the best, two attempts that tie), which is then sent where the platform does not have
        it yet. Returns how many were queued."""
        queued = 0
        now = time.time()
        with self.session() as session:
            pending = session.execute(
                select(LtiSubmission, Submission.exercise, Submission.student, Submission.finished_at, LtiLaunch)
                .join(Submission, Submission.id == LtiSubmission.submission_id)
                .join(LtiLaunch, LtiLaunch.id == LtiSubmission.launch_id)
                .where(or_(LtiSubmission.considered == 0, Submission.finished_at > LtiSubmission.considered_finish),
                       Submission.status.in_(("graded", "failed")))
                .limit(200).with_for_update(of=LtiSubmission, skip_locked=True)).all()
            for link, exercise, student, finished_at, launch in pending:
                link.considered, link.considered_finish = 1, finished_at  # a regrade finishes later: again
                if not launch.lineitem:
                    continue
                attempts = session.execute(
                    select(Submission.id, Submission.score, Submission.max_score, Submission.created_at,
                           Submission.finished_at, LtiLaunch)
                    .join(LtiSubmission, LtiSubmission.submission_id == Submission.id)
                    .join(LtiLaunch, LtiLaunch.id == LtiSubmission.launch_id)
                    .where(Submission.student == student, Submission.exercise == exercise,
                           Submission.status.in_(("graded", "failed")), LtiLaunch.lineitem == launch.lineitem)).all()
                # the attempt that counts; of equal scores the earliest (a tie is no improvement to send)
                key = (lambda a: (a.created_at, a.id)) if gradebook == "latest" else \
                    (lambda a: (float(a.score or 0.0), -a.created_at))
                counting = max(attempts, key=key)
                sent = session.scalar(select(LtiScore).where(LtiScore.submission_id == counting.id))
                if counting.id != link.submission_id and sent is not None and \
                        json.loads(sent.body).get("scoreGiven") == float(counting.score or 0.0):
                    continue  # the platform has (or will have) the score that counts
                queued += self._queue_score(session, sent, counting, now)
        return queued

    @staticmethod
    def _queue_score(session: Any, sent: LtiScore | None, attempt: Any, now: float) -> int:
        """Queue `attempt`'s score for its launch's line item; a row it already had (an earlier grade of the
        same submission) is replaced and sent again."""
        user = session.get(LtiUser, attempt.LtiLaunch.user_id)
        body = json.dumps({"userId": user.sub, "scoreGiven": float(attempt.score or 0.0),
                           "scoreMaximum": float(attempt.max_score or 0.0), "activityProgress": "Completed",
                           "gradingProgress": "FullyGraded", "timestamp": iso(attempt.finished_at or now)},
                          separators=(",", ":"))
        if sent is not None:
            sent.body, sent.attempts, sent.next_attempt_at, sent.created_at = body, 0, now, now
            sent.delivered_at = sent.refused_status = sent.last_error = None
            sent.given_up = 0
        else:
            session.add(LtiScore(submission_id=attempt.id, platform_id=attempt.LtiLaunch.platform_id,
                                 lineitem=attempt.LtiLaunch.lineitem, body=body, attempts=0, next_attempt_at=now,
                                 created_at=now, given_up=0))
        return 1

    def due_scores(self, hold_s: float, limit: int = 50) -> list[tuple[int, int, str, str]]:
        """Claim the scores due now: (id, platform id, line item, body), held for `hold_s`."""
        now = time.time()
        with self.session() as session:
            rows = list(session.scalars(
                select(LtiScore).where(LtiScore.delivered_at.is_(None), LtiScore.given_up == 0,
                                       LtiScore.next_attempt_at <= now)
                .order_by(LtiScore.next_attempt_at).limit(limit).with_for_update(skip_locked=True)))
            for row in rows:
                row.next_attempt_at = now + hold_s
            return [(r.id, r.platform_id, r.lineitem, r.body) for r in rows]

    def score_done(self, score_id: int, delivered: bool, refused_status: int | None, error: str | None,
                   backoff_s: float) -> None:
        now = time.time()
        with self.session() as session:
            row = session.get(LtiScore, score_id)
            if row is None:
                return
            row.attempts += 1
            if delivered:
                row.delivered_at, row.last_error = now, None
            elif refused_status is not None:  # the platform said no: recorded, shown, not retried
                row.refused_status, row.given_up, row.last_error = refused_status, 1, (error or "")[:500]
            else:
                row.last_error = (error or "")[:500]
                if now - row.created_at > SCORE_GIVE_UP_S:
                    row.given_up = 1
                else:
                    row.next_attempt_at = now + backoff_s * (2 ** min(row.attempts - 1, 10))

    def scores(self, lineitems: list[str] | None = None) -> list[Any]:
        """Every score row (for the class page and the tests), newest first, with its submission's student."""
        with self.session() as session:
            query = (select(LtiScore, Submission.student, Submission.exercise)
                     .join(Submission, Submission.id == LtiScore.submission_id)
                     .order_by(LtiScore.created_at.desc()))
            if lineitems is not None:
                query = query.where(LtiScore.lineitem.in_(lineitems))
            return list(session.execute(query))

    def refused_scores(self, platform_id: int, context_id: str | None) -> list[Any]:
        """The scores a platform refused (or that were given up) for submissions made in launches of one course
        (context) of it, newest first; none for a launch without a context."""
        if context_id is None:
            return []
        with self.session() as session:
            return list(session.execute(
                select(LtiScore, Submission.student, Submission.exercise)
                .join(Submission, Submission.id == LtiScore.submission_id)
                .join(LtiSubmission, LtiSubmission.submission_id == LtiScore.submission_id)
                .join(LtiLaunch, LtiLaunch.id == LtiSubmission.launch_id)
                .where(LtiScore.platform_id == platform_id, LtiLaunch.platform_id == platform_id,
                       LtiLaunch.context_id == context_id,
                       or_(LtiScore.refused_status.is_not(None), LtiScore.given_up == 1))
                .order_by(LtiScore.created_at.desc())))

    def students_submitted(self, students: list[str], exercise: str | None) -> set[str]:
        with self.session() as session:
            query = select(Submission.student).where(Submission.student.in_(students)).distinct()
            if exercise:
                query = query.where(Submission.exercise == exercise)
            return set(session.scalars(query))
