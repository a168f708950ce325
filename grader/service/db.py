"""The service's tables, its engine and its migrations: the database is the record of every submission.

Times are seconds since the epoch (floats): the same on SQLite and PostgreSQL, and compared in SQL.
`migrate(url)` brings any database to the newest schema with Alembic (the migrations ship in the package).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from sqlalchemy import (
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

DEFAULT_DB_FILE = "grade-service.sqlite3"
SQLITE_BUSY_TIMEOUT_MS = 30_000


class Base(DeclarativeBase):
    pass


class Token(Base):
    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # student | lms | instructor
    student: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)  # `grade token revoke`


class PageSession(Base):
    """A signed-in browser: the cookie holds a random id, this table only its hash. It ends when it expires,
    on sign-out, or when its token is revoked (a lookup joins the token)."""

    __tablename__ = "page_sessions"

    id_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("tokens.id"))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = (Index("ix_page_sessions_token", "token_id"),)


class Submission(Base):
    __tablename__ = "submissions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    exercise: Mapped[str] = mapped_column(String(32))
    student: Mapped[str] = mapped_column(String(128))
    filename: Mapped[str] = mapped_column(String(256))
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    callback_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    base_url: Mapped[str] = mapped_column(Text, default="")
    token_id: Mapped[int] = mapped_column(ForeignKey("tokens.id"))
    idempotency_key: Mapped[str | None] = mapped_column(String(256), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued | running | graded | failed
    priority: Mapped[int] = mapped_column(Integer, default=0)  # 0 new submission, 1 regrade: new ones first
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    queued_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    report: Mapped[str | None] = mapped_column(Text, nullable=True)  # the report's JSON, as `grade` writes it
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        UniqueConstraint("token_id", "idempotency_key", name="uq_submissions_idempotency"),
        Index("ix_submissions_queue", "status", "priority", "queued_at"),
        Index("ix_submissions_student", "student", "exercise", "created_at"),
    )


class Webhook(Base):
    """The outbox: a callback to deliver, written in the same transaction as the report it announces."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    submission_id: Mapped[str] = mapped_column(ForeignKey("submissions.id"))
    url: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float)
    delivered_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    given_up: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("ix_webhooks_due", "delivered_at", "given_up", "next_attempt_at"),)


class Setting(Base):
    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


def default_url() -> str:
    return f"sqlite:///{Path(os.getcwd()) / DEFAULT_DB_FILE}"


def normalise_url(url: str | None) -> URL:
    """`postgresql://...` as written, mapped to the driver installed with the `service` extra (psycopg 3)."""
    parsed = make_url(url or default_url())
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str | None, checkpoints: bool = True) -> Engine:
    """`checkpoints=False` (SQLite): this engine's commits never run the WAL's automatic checkpoint (copying
    the WAL into the database file, and its fsyncs, in whichever commit crosses 1,000 pages); the API
    process answers POSTs on such an engine, and its grading runners' commits checkpoint instead."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        # a pool as large as the thread pool that answers requests (anyio's 40): with SQLAlchemy's 5, a burst
        # of POSTs opened and closed a connection (and ran its pragmas) for every sixth request
        in_memory = parsed.database in (None, "", ":memory:")  # one connection, SQLAlchemy's own pool for it
        engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                                                     "check_same_thread": False},
                               **({} if in_memory else {"pool_size": 40, "max_overflow": 10}))

        @event.listens_for(engine, "connect")
        def _pragmas(connection, record) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            if not checkpoints:
                cursor.execute("PRAGMA wal_autocheckpoint=0")
            cursor.close()

        return engine
    return create_engine(parsed, pool_pre_ping=True, pool_size=10, max_overflow=10, pool_recycle=600,
                         connect_args={"connect_timeout": 5})


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the database to the newest schema (Alembic's `upgrade head`, the scripts shipped in the package).

    SQLite changes a table's constraints by rebuilding it (Alembic's batch mode: a copy, the old table dropped),
    which its foreign keys refuse where other tables refer to it; they are switched off around the migration
    (outside a transaction, the only place that pragma takes effect) and every reference checked before the
    commit, as SQLite's documentation prescribes for schema changes."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(resources.files("grader.service").joinpath("migrations")))
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                if engine.dialect.name == "postgresql":  # two processes starting together: one migrates, one waits
                    connection.exec_driver_sql("SELECT pg_advisory_xact_lock(1402)")
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
                if sqlite and connection.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
                    raise RuntimeError("the migration left a reference to a row that is not there; nothing changed")
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()
