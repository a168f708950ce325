"""The queue in the database, on SQLite and a real PostgreSQL: order, leases, attempts, concurrent claims."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import ROOT

pytest.importorskip("sqlalchemy", reason="the service extra is not installed")
from grader.execution.executor import LocalExecutor
from grader.lms import validate
from grader.model.report import validation_errors
from grader.service.config import open_store
from grader.service.dispatcher import Dispatcher
from grader.service.store import MAX_ATTEMPTS, Principal

pytestmark = pytest.mark.service
SOLUTION = (ROOT / "solutions" / "ex03.py").read_bytes()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres").new_database()
    engine, store = open_store(url)
    yield store
    engine.dispose()


def add(store, principal, student: str) -> str:
    row, _ = store.add_submission(principal, "ex03", student, "ex03.py", SOLUTION, None, "http://x/", None)
    return row.id


@pytest.fixture
def lms(store):
    token = store.add_token("lms", None)
    return store.principal(token)


def report_for(store, sid: str) -> dict:
    return {"score": 15.0, "max_score": 15.0, "id": sid}


def test_new_submissions_are_served_ahead_of_regrades(store, lms):
    old = add(store, lms, "a")
    claimed = store.claim("me", 30)
    assert claimed.id == old
    assert store.finish(old, "me", "graded", report_for(store, old), "s")
    assert store.regrade("ex03", None) == 1  # queued again, now the oldest in the queue
    new = add(store, lms, "b")
    assert [store.claim("me", 30).id, store.claim("me", 30).id] == [new, old]
    assert store.claim("me", 30) is None


def test_only_the_lease_holder_stores_a_result(store, lms):
    sid = add(store, lms, "a")
    store.claim("first", -1)  # a lease that has already run out: its process is gone
    [stale] = store.expired()
    assert store.requeue(stale, "lease expired")
    assert store.claim("second", 30).attempts == 2
    assert not store.finish(sid, "first", "graded", report_for(store, sid), "s")  # too late: not ours any more
    assert store.finish(sid, "second", "graded", report_for(store, sid), "s")
    assert not store.finish(sid, "second", "graded", report_for(store, sid), "s")  # stored once


def test_concurrent_claimers_never_take_the_same_job(store, lms):
    ids = {add(store, lms, f"s{i}") for i in range(40)}
    taken: list[str] = []
    lock = threading.Lock()

    def claimer(name: str) -> None:
        while (claimed := store.claim(name, 30)) is not None:
            with lock:
                taken.append(claimed.id)

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == sorted(ids)


def test_a_job_whose_lease_keeps_expiring_ends_failed_with_a_valid_report(store, lms):
    sid = add(store, lms, "a")
    with LocalExecutor(1, device="cpu") as executor:  # no job reaches it: the leases expire first
        dispatcher = Dispatcher(store, executor, "secret")
        for attempt in range(1, MAX_ATTEMPTS + 1):
            claimed = store.claim(f"dead-{attempt}", -1)
            assert claimed.attempts == attempt
            [stale] = store.expired()
            dispatcher._expired(stale)
        row = store.get(sid, Principal(0, "lms", None))
    assert (row.status, row.attempts) == ("failed", MAX_ATTEMPTS)
    import json

    report = json.loads(row.report)
    assert validation_errors(report) == [] and validate.report_meaning(report) == [] and report["score"] == 0
    assert f"{MAX_ATTEMPTS} times" in report["error"] and report["submission"]["path"] == "ex03.py"


def test_a_lost_database_is_waited_for_not_fatal(tmp_path):
    """The dispatcher's retry wraps any database call: it keeps trying until the call succeeds."""
    engine, store = open_store(f"sqlite:///{tmp_path / 's.sqlite3'}")
    with LocalExecutor(1, device="cpu") as executor:
        dispatcher = Dispatcher(store, executor, "secret")
        calls = []

        def flaky():
            calls.append(time.monotonic())
            if len(calls) < 3:
                raise ConnectionError("database went away")
            return "answered"

        assert dispatcher._retrying("test", flaky, wait=0.01) == "answered"
        assert len(calls) == 3 and dispatcher.database_ok
    engine.dispose()


def test_a_page_session_is_stored_hashed_expires_ends_and_dies_with_its_token(store):
    from sqlalchemy import select

    from grader.service.db import PageSession

    secret = store.add_token("student", "alice")
    alice = store.principal(secret)
    session = store.new_session(alice.token_id, 60)
    assert store.session_principal(session) == alice
    assert store.session_principal(session + "x") is None and store.session_principal(secret) is None
    with store.engine.connect() as connection:
        stored = [r[0] for r in connection.execute(select(PageSession.id_sha256))]
    assert session not in stored and len(stored) == 1  # only its hash
    assert store.session_principal(store.new_session(alice.token_id, -1)) is None  # expired
    store.end_session(session)  # signed out
    assert store.session_principal(session) is None
    other = store.new_session(alice.token_id, 60)
    store.revoke_token(secret)
    assert store.session_principal(other) is None


def test_the_migrations_make_the_tables_the_models_describe(store):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import grader.service.lti.models  # noqa: F401 - the LTI tables join Base.metadata
    from grader.service.db import Base

    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []
