"""The service's configuration (`grade serve`'s options and GRADE_SERVICE_* variables) and its token administration.

What the CLI calls before (or instead of) starting the service: read the configuration once, open the store,
add, list and revoke tokens."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError

from grader.grading import pipeline as grading
from grader.service.db import make_engine, migrate
from grader.service.dispatcher import Timing
from grader.service.store import Store

MAX_FILE_BYTES = 1024 * 1024  # 1 MiB: larger uploads are answered 413


MAX_BODY_BYTES = MAX_FILE_BYTES + 64 * 1024  # the file plus the form's other fields


STUDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")  # whole ids only (fullmatch); safe in CSV and URLs


PRINCIPAL_CACHE_S = 60.0


IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,200}")  # fullmatch


CALLBACK_URL = re.compile(r"^https?://[^\s/]+")


CALLBACK_URL_MAX = 2000


PUBLIC_URL = re.compile(r"https?://[^\s/?#]+(/[^\s?#]*)?")  # fullmatch


DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"  # `grade serve` passes its own --host and --port instead


@dataclass(frozen=True)
class Config:
    db_url: str | None = None
    jobs: int = 1
    rate_limit: int = 10  # submissions per student per window (regrades not counted)
    rate_window_s: float = 60.0
    lti_login_limit: int = 60  # LTI logins (/lti/login) per client address per window; 0: no limit
    lti_login_window_s: float = 60.0
    gradebook: str = "best"  # "best" | "latest" attempt in /api/v1/gradebook.csv
    timing: Timing = field(default_factory=Timing)
    limits: grading.Limits = field(default_factory=grading.Limits)
    device: str = "auto"
    scheduler: str | None = None  # grade on this Dask cluster (one runner holds its `jobs` slots)
    runner_nice: int = 5  # the runners' niceness above this process's: under load the API answers first
    public_url: str | None = None  # the address the outside world uses: every link is made from it, never Host

    @classmethod
    def from_environment(cls, **given: Any) -> Config:
        rate = os.environ.get("GRADE_SERVICE_RATE", "")  # "N/SECONDS", e.g. "10/60"
        extra: dict[str, Any] = {"timing": Timing.from_environment()}
        if rate:
            count, _, window = rate.partition("/")
            extra.update(rate_limit=int(count), rate_window_s=float(window or 60))
        logins = os.environ.get("GRADE_SERVICE_LTI_LOGIN_RATE", "")  # "N/SECONDS" as well
        if logins:
            count, _, window = logins.partition("/")
            extra.update(lti_login_limit=int(count), lti_login_window_s=float(window or 60))
        if os.environ.get("GRADE_SERVICE_GRADEBOOK") in ("best", "latest"):
            extra["gradebook"] = os.environ["GRADE_SERVICE_GRADEBOOK"]
        if os.environ.get("GRADE_SERVICE_RUNNER_NICE", "").lstrip("-").isdigit():
            extra["runner_nice"] = int(os.environ["GRADE_SERVICE_RUNNER_NICE"])
        return cls(**{**extra, **given})


class ConfigurationError(ValueError):
    """The service cannot start: a bad database URL, or a database that does not answer."""


def open_store(db_url: str | None, checkpoints: bool = True) -> tuple[Any, Store]:
    """The engine and store for a URL, migrated to the newest schema; ConfigurationError when it cannot be."""
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        engine = make_engine(db_url, checkpoints)
        migrate(engine)
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise ConfigurationError(f"--db {db_url!r} is not a database URL this service can use ({exc}).") from None
    except (OperationalError, DBAPIError) as exc:
        raise ConfigurationError(f"the database at --db {db_url!r} did not answer: "
                                 f"{str(exc).splitlines()[0][:200]}") from None
    return engine, Store(engine)


def add_token(db_url: str | None, role: str, student: str | None) -> str:
    engine, store = open_store(db_url)
    try:
        return store.add_token(role, student)
    finally:
        engine.dispose()


def list_tokens(db_url: str | None) -> list[Any]:
    engine, store = open_store(db_url)
    try:
        return store.tokens()
    finally:
        engine.dispose()


def revoke_token(db_url: str | None, token_or_id: str) -> Any:
    engine, store = open_store(db_url)
    try:
        return store.revoke_token(token_or_id)
    finally:
        engine.dispose()


def public_url(given: str | None) -> str:
    """The public URL without its trailing slash; ValueError for one that is not an http(s) URL."""
    url = (given or DEFAULT_PUBLIC_URL).strip()
    try:
        from urllib.parse import urlsplit

        fits = bool(PUBLIC_URL.fullmatch(url)) and urlsplit(url).hostname is not None and (
            urlsplit(url).port is None or urlsplit(url).port > 0)
    except ValueError:  # a port that is not one
        fits = False
    if not fits:
        raise ValueError(f"--public-url {given!r} is not an http:// or https:// URL (e.g. https://grader.example.org).")
    return url.rstrip("/")
