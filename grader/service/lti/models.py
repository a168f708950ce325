"""The LTI tables: registered platforms, the tool's keys, logins in flight, LTI users, launches, tickets, scores.

Secrets (a login's state, a launch ticket) are stored as their SHA-256 only. The tool's private keys are the
one secret kept as is: they sign what the tool sends to the platforms, so the database holding them is as
sensitive as the webhook secret it already keeps.
"""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from grader.service.db import Base


class LtiPlatform(Base):
    """One registered deployment of a platform (`grade lti add-platform`); several may share an issuer."""

    __tablename__ = "lti_platforms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    issuer: Mapped[str] = mapped_column(String(512))
    client_id: Mapped[str] = mapped_column(String(256))
    deployment_id: Mapped[str] = mapped_column(String(256))
    auth_url: Mapped[str] = mapped_column(Text)
    token_url: Mapped[str] = mapped_column(Text)
    jwks_url: Mapped[str] = mapped_column(Text)
    frame_origins: Mapped[str | None] = mapped_column(Text, nullable=True)  # more origins that frame the tool
    created_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (UniqueConstraint("issuer", "client_id", "deployment_id", name="uq_lti_platforms"),)


class LtiKey(Base):
    """The tool's RSA keys: the newest unretired one signs; every unretired one is published in /lti/jwks."""

    __tablename__ = "lti_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    private_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    retired_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class LtiLogin(Base):
    """An OIDC login in flight: its state (hashed) and nonce, single-use and expiring."""

    __tablename__ = "lti_logins"

    state_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64))
    issuer: Mapped[str] = mapped_column(String(512))
    client_id: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    used_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class LtiUser(Base):
    """A person an LMS launched: a stable student id per (platform issuer, client id, sub), and the token row its page
    sessions hang on (a student token nobody holds: its hash is of a random value never kept). An LMS
    instructor signs in with it too: what the class page shows comes from the launch (its context and
    roster), never from a service-wide instructor token."""

    __tablename__ = "lti_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    issuer: Mapped[str] = mapped_column(String(512))
    client_id: Mapped[str] = mapped_column(String(256))  # the registration: several may share an issuer
    sub: Mapped[str] = mapped_column(String(256))
    student: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str | None] = mapped_column(String(256), nullable=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("tokens.id"))  # a student token: never more, whatever the role

    __table_args__ = (UniqueConstraint("issuer", "client_id", "sub", name="uq_lti_users_registration"),)


class LtiLaunch(Base):
    """What one accepted launch said: who, where (context, line item, roster URL), and as what."""

    __tablename__ = "lti_launches"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("lti_platforms.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("lti_users.id"))
    kind: Mapped[str] = mapped_column(String(16))  # learner | instructor | deep-link
    message_type: Mapped[str] = mapped_column(String(64))
    context_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    context_title: Mapped[str | None] = mapped_column(Text, nullable=True)
    exercise: Mapped[str | None] = mapped_column(String(32), nullable=True)
    lineitem: Mapped[str | None] = mapped_column(Text, nullable=True)
    memberships_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    deep_link: Mapped[str | None] = mapped_column(Text, nullable=True)  # the deep_linking_settings claim, JSON
    created_at: Mapped[float] = mapped_column(Float)


class LtiTicket(Base):
    """A one-time, short-lived ticket that a launch's "open in a new window" link exchanges for a session."""

    __tablename__ = "lti_tickets"

    ticket_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    launch_id: Mapped[str] = mapped_column(ForeignKey("lti_launches.id", ondelete="CASCADE"))
    expires_at: Mapped[float] = mapped_column(Float)
    used_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class LtiSubmission(Base):
    """A submission made in an LTI launch (the launch says where its score goes)."""

    __tablename__ = "lti_submissions"

    submission_id: Mapped[str] = mapped_column(ForeignKey("submissions.id"), primary_key=True)
    launch_id: Mapped[str] = mapped_column(ForeignKey("lti_launches.id", ondelete="CASCADE"))
    considered: Mapped[int] = mapped_column(Integer, default=0)  # 1 once its score was queued or found not to count
    # the finish time of the grade it considered: a regrade finishes later, and its score is considered again
    considered_finish: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = (Index("ix_lti_submissions_considered", "considered"),)


class LtiScore(Base):
    """The outbox of scores for the platforms' gradebooks: one row per graded submission that counts."""

    __tablename__ = "lti_scores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    submission_id: Mapped[str] = mapped_column(ForeignKey("submissions.id"), unique=True)
    platform_id: Mapped[int] = mapped_column(Integer)
    lineitem: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)  # the score's JSON, as posted
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float)
    delivered_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    refused_status: Mapped[int | None] = mapped_column(Integer, nullable=True)  # a 4xx answer: not retried
    given_up: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("ix_lti_scores_due", "delivered_at", "given_up", "next_attempt_at"),)
