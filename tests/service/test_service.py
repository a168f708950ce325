"""The grading service against real parts: `grade serve` processes on SQLite and on a real PostgreSQL server,
real warm workers, real HTTP. Each test runs on both databases, except those about PostgreSQL itself."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import ROOT, SUBMISSIONS, full_marks
from service_support import Server, call, multipart, token, wait_for

from grader.course import exercises
from grader.grading import pipeline as grading
from grader.lms import validate
from grader.model.report import from_dict, student_dict, to_dict, validation_errors

pytest.importorskip("fastapi", reason="the service extra is not installed")
pytestmark = [pytest.mark.service, pytest.mark.slow]

SOLUTION = (ROOT / "solutions" / "ex03.py").read_bytes()
BUGGY = (SUBMISSIONS / "ex03" / "bug_no_zero_grad.py").read_bytes()
LIMITS = grading.Limits(timeout=30)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'service.sqlite3'}"
    return request.getfixturevalue("postgres").new_database()


class Class:
    """A running service with tokens for each role."""

    def __init__(self, server: Server):
        self.server = server
        db = server.db_url
        self.instructor = token(db, "instructor")
        self.lms = token(db, "lms")
        self.alice = token(db, "student", "alice")
        self.bob = token(db, "student", "bob")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def service(request, tmp_path_factory):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'service.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres").new_database()
    server = Server(url, env={"GRADE_SERVICE_RATE": "4/600"})
    service = Class(server)  # the tokens exist before the server starts, as in a real set-up
    server.start()
    yield service
    server.stop()


def submitted(answer) -> str:
    assert answer.status == 202, answer.body
    return answer.json()["id"]


def test_a_submission_is_stored_graded_and_its_report_is_the_one_grade_writes(service, workers, tmp_path):
    server = service.server
    answer = server.submit(service.alice, "ex03", BUGGY, file_name="ex03.py")
    assert answer.status == 202
    created = answer.json()
    assert set(created) == {"id", "status", "exercise", "student", "sha256", "created_at"}
    assert (created["status"], created["exercise"], created["student"]) == ("queued", "ex03", "alice")
    assert created["sha256"] == hashlib.sha256(BUGGY).hexdigest()
    state = server.wait_finished(service.alice, [created["id"]])[created["id"]]
    assert state["status"] == "graded" and state["attempts"] == 1
    assert state["started_at"] and state["finished_at"]
    report = server.get(f"/api/v1/submissions/{created['id']}/report", service.lms).json()
    assert validation_errors(report) == [] and validate.report_meaning(report) == []
    # the student reads the student view of that same report (hidden checks' details withheld)
    own = server.get(f"/api/v1/submissions/{created['id']}/report", service.alice).json()
    assert own == student_dict(from_dict(report)) and validation_errors(own) == []
    path = tmp_path / "ex03.py"
    path.write_bytes(BUGGY)
    local = to_dict(grading.grade("ex03", path, device="auto", worker=workers.get("ex03")))
    assert (report["score"], report["max_score"]) == (local["score"], local["max_score"]) == (state["score"],
                                                                                              state["max_score"])
    assert [(c["name"], c["status"], c["diagnosis"]) for c in report["checks"]] == \
        [(c["name"], c["status"], c["diagnosis"]) for c in local["checks"]]
    assert report["submission"]["path"] == "ex03.py"


def test_tokens_roles_and_visibility(service):
    server = service.server
    for bad in (None, "gr_not-a-token"):
        answer = server.get("/api/v1/submissions", bad)
        assert answer.status == 401 and set(answer.json()) == {"error"}
    mine = submitted(server.submit(service.alice, "ex03", SOLUTION))
    assert server.get(f"/api/v1/submissions/{mine}", service.bob).status == 404
    assert server.get(f"/api/v1/submissions/{mine}/report", service.bob).status == 404
    assert mine not in {s["id"] for s in server.get("/api/v1/submissions", service.bob).json()}
    assert mine in {s["id"] for s in server.get("/api/v1/submissions?student=alice", service.lms).json()}
    assert server.get(f"/api/v1/submissions/{mine}", service.lms).status == 200
    # a student submits as itself only; an lms token must name the student
    assert server.submit(service.bob, "ex03", SOLUTION, student="alice").status == 403
    answer = server.submit(service.lms, "ex03", SOLUTION)
    assert answer.status == 422 and "student" in answer.json()["error"]
    assert server.get("/api/v1/gradebook.csv", service.lms).status == 403
    assert server.get("/api/v1/gradebook.csv", service.alice).status == 403


def test_a_revoked_token_signs_no_one_in_and_the_list_says_so(service):
    from click.testing import CliRunner

    from grader.cli.main import main

    server, db = service.server, service.server.db_url
    fresh = token(db, "lms")
    result = CliRunner().invoke(main, ["token", "revoke", fresh, "--db", db])
    assert result.exit_code == 0 and result.stdout.startswith("revoked token "), result.output
    number = result.stdout.split()[2]
    answer = server.get("/api/v1/submissions", fresh)
    assert answer.status == 401 and "revoked" in answer.json()["error"]
    listed = CliRunner().invoke(main, ["token", "list", "--db", db])
    assert listed.exit_code == 0 and fresh not in listed.stdout
    lines = {line.split("\t")[0]: line.split("\t") for line in listed.stdout.splitlines()}
    assert lines[number][1] == "lms" and lines[number][4].startswith("revoked ")
    assert all(cells[4] == "active" for key, cells in lines.items() if key != number)
    assert CliRunner().invoke(main, ["token", "revoke", number, "--db", db]).exit_code == 0  # again: still revoked
    unknown = CliRunner().invoke(main, ["token", "revoke", "gr_never-issued", "--db", db])
    assert unknown.exit_code == 2 and "no such token" in unknown.output
    assert server.get("/api/v1/submissions", service.lms).status == 200  # the others still sign in


def test_bad_submissions_get_one_line_errors(service):
    server = service.server
    unknown = server.submit(service.lms, "ex99", SOLUTION, student="dora")
    assert unknown.status == 422 and "ex99" in unknown.json()["error"]
    huge = server.submit(service.lms, "ex03", b"#" * (1024 * 1024 + 1), student="dora")
    assert huge.status == 413 and "1024 KiB" in huge.json()["error"]
    wrong = server.submit(service.lms, "ex03", SOLUTION, student="dora", file_name="ex03.exe")
    assert wrong.status == 422
    injected = server.submit(service.lms, "ex03", SOLUTION, student="=HYPERLINK(1)")
    assert injected.status == 422
    post = server.url + "/api/v1/submissions"
    body, kind = multipart({"student": "dora"}, "ex03.py", SOLUTION)  # no exercise
    no_exercise = call(post, "POST", service.lms, body, {"Content-Type": kind})
    assert no_exercise.status == 422 and no_exercise.json()["error"] == "exercise: Field required"
    body, kind = multipart({"exercise": "ex03", "student": "dora"}, "", b"")  # a browser's empty file input
    no_file = call(post, "POST", service.lms, body, {"Content-Type": kind})
    assert no_file.status == 422 and no_file.json()["error"] == "file: Field required"
    text = call(post, "POST", service.lms, b"exercise=ex03&student=dora&file=x%3D1",
                {"Content-Type": "application/x-www-form-urlencoded"})
    assert text.status == 422 and "file part" in text.json()["error"]
    broken = call(post, "POST", service.lms, b"--nope\r\nnot a form", {"Content-Type": "multipart/form-data"})
    assert broken.status == 400 and "multipart/form-data" in broken.json()["error"]
    for answer in (unknown, huge, wrong, injected, no_exercise, no_file, text, broken):
        assert list(answer.json()) == ["error"] and "\n" not in answer.json()["error"]
    assert not any(s["student"] == "dora" for s in server.get("/api/v1/submissions", service.lms).json())


def test_the_same_idempotency_key_answers_the_same_submission(service):
    server = service.server
    before = len(server.get("/api/v1/submissions?student=erin", service.lms).json())
    first = submitted(server.submit(service.lms, "ex03", SOLUTION, student="erin", key="lms-attempt-42"))
    again = submitted(server.submit(service.lms, "ex03", SOLUTION, student="erin", key="lms-attempt-42"))
    assert first == again
    assert len(server.get("/api/v1/submissions?student=erin", service.lms).json()) == before + 1


def test_a_student_over_the_rate_limit_gets_429_with_retry_after(service):
    server = service.server
    for _ in range(4):
        submitted(server.submit(service.lms, "ex03", SOLUTION, student="frank"))
    answer = server.submit(service.lms, "ex03", SOLUTION, student="frank")
    assert answer.status == 429
    assert int(answer.headers["retry-after"]) > 0
    assert "frank" in answer.json()["error"]
    submitted(server.submit(service.lms, "ex03", SOLUTION, student="gina"))  # the others are not held up


def test_regrade_queue_gradebook_metrics_health(service):
    server = service.server
    ids = [submitted(server.submit(service.lms, "ex03", body, student="hank")) for body in (BUGGY, SOLUTION)]
    server.wait_finished(service.lms, ids)
    assert server.regrade(service.lms, {"student": "hank"}).status == 403
    answer = server.regrade(service.instructor, {"student": "hank", "exercise": "ex03"})
    assert answer.status == 202 and answer.json() == {"queued": 2}
    assert server.regrade(service.instructor, {"exercise": "nope"}).status == 422
    states = server.wait_finished(service.lms, ids)
    assert {s["status"] for s in states.values()} == {"graded"}
    queue = server.get("/api/v1/queue", service.alice).json()
    assert set(queue) == {"counts", "oldest_queued_age_s", "workers"}
    assert set(queue["counts"]) == {"queued", "running", "graded", "failed"}
    assert queue["counts"]["graded"] >= 2 and queue["workers"] == 1
    gradebook = server.get("/api/v1/gradebook.csv", service.instructor)
    assert gradebook.status == 200 and gradebook.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(gradebook.body.decode())))
    assert list(rows[0]) == ["student", *exercises.exercise_ids(), "total", "max_total", "status"]
    hank = next(r for r in rows if r["student"] == "hank")
    assert hank["ex03"] == full_marks("ex03")  # the best attempt
    metrics = server.get("/metrics", None).body.decode()
    assert 'grade_submissions{status="graded"}' in metrics and "grade_grading_seconds_bucket" in metrics
    assert "grade_queue_depth" in metrics and "grade_workers 1.0" in metrics
    assert server.get("/healthz", None).json() == {"ok": True}


def test_the_openapi_document_names_every_endpoint(service):
    document = service.server.get("/openapi.json", None).json()
    paths = document["paths"]
    assert {"/api/v1/submissions", "/api/v1/submissions/{submission_id}", "/api/v1/submissions/{submission_id}/report",
            "/api/v1/gradebook.csv", "/api/v1/regrade", "/api/v1/queue", "/healthz", "/metrics"} <= set(paths)
    post = paths["/api/v1/submissions"]["post"]
    assert {"202", "401", "413", "422", "429"} <= set(post["responses"])
    assert "multipart/form-data" in post["requestBody"]["content"]


# ---- faults

class Receiver:
    """A loopback webhook receiver that fails the first `failures` posts with 500."""

    def __init__(self, failures: int):
        self.failures = failures
        self.posts: list[tuple[bytes, str | None, int]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = 500 if len(receiver.posts) < receiver.failures else 204
                receiver.posts.append((body, self.headers.get("X-Grade-Signature"), status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/hook"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.http.shutdown()


def test_a_webhook_that_fails_twice_lands_on_the_third_attempt_across_a_restart(db_url):
    receiver = Receiver(failures=2)
    server = Server(db_url)
    try:
        lms = token(db_url, "lms")
        server.start()
        sid = submitted(server.submit(lms, "ex03", BUGGY, student="ivan", callback_url=receiver.url))
        wait_for(lambda: len(receiver.posts) >= 1, 120, "the first callback")
        server.kill9()  # the outbox is in the database: the retries go on after a restart
        server.start()
        wait_for(lambda: len(receiver.posts) >= 3, 60, "the third callback")
        time.sleep(1.5)
        assert [status for _, _, status in receiver.posts] == [500, 500, 204]  # delivered once it answered 2xx
        body, signature, _ = receiver.posts[-1]
        expected = "sha256=" + hmac.new(b"test-secret", body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(signature, expected)
        data = json.loads(body)
        assert set(data) == {"id", "status", "score", "max_score", "report_url", "exercise", "student", "graded_at"}
        assert (data["exercise"], data["student"]) == ("ex03", "ivan")
        assert (data["id"], data["status"], data["max_score"]) == (sid, "graded", 16.0)
        assert data["report_url"].endswith(f"/api/v1/submissions/{sid}/report")
        assert validation_errors(server.get(data["report_url"].split(server.url, 1)[1], lms).json()) == []
    finally:
        server.stop()
        receiver.close()


def test_kill_9_with_a_queue_then_restart_grades_every_accepted_submission_once(db_url):
    slow = b"import time\ntime.sleep(0.4)\n" + SOLUTION
    server = Server(db_url)
    try:
        lms = token(db_url, "lms")
        server.start()
        ids = [submitted(server.submit(lms, "ex03", slow + f"\n# {i}\n".encode(), student=f"s{i:02d}"))
               for i in range(10)]
        wait_for(lambda: server.get("/api/v1/queue", lms).json()["counts"]["graded"] >= 2, 120, "two graded")
        server.kill9()
        server.start()  # the same database; the killed process's lease runs out and its job is requeued
        states = server.wait_finished(lms, ids)
        assert {s["status"] for s in states.values()} == {"graded"}
        assert {s["score"] for s in states.values()} == {16.0}
        attempts = sorted(s["attempts"] for s in states.values())
        assert attempts[:-1] == [1] * (len(ids) - 1) and attempts[-1] in (1, 2)  # at most the one it was grading
        listed = server.get("/api/v1/submissions?limit=1000", lms).json()
        assert sorted(s["id"] for s in listed) == sorted(ids)  # nothing lost, nothing doubled
    finally:
        server.stop()


def test_a_submission_that_kills_its_worker_each_time_ends_failed_with_a_report(db_url):
    sleeper = b"import time\ntime.sleep(20)\n" + SOLUTION
    server = Server(db_url)
    try:
        lms = token(db_url, "lms")
        server.start()
        sid = submitted(server.submit(lms, "ex03", sleeper, student="mallory"))

        def state() -> dict:
            return server.get(f"/api/v1/submissions/{sid}", lms).json()

        kills = 0
        while state()["status"] not in ("graded", "failed"):
            assert kills < 3, f"a fourth attempt after three workers killed: {state()}"
            # Running in the database is not yet running in a child: the runner may still be starting the
            # zygote that replaces the one killed before. Kill once the job's child is there, in its sleep.
            wait_for(lambda: server.busy_zygotes() or state()["status"] in ("graded", "failed"), 120,
                     f"attempt {kills + 1}'s child")
            if state()["status"] in ("graded", "failed"):
                break
            time.sleep(0.5)
            for pid in server.zygotes():
                os.kill(pid, signal.SIGKILL)
            kills += 1
            wait_for(lambda k=kills: state()["attempts"] > k or state()["status"] in ("graded", "failed"), 120,
                     f"attempt {kills} to end")
        final = server.wait_finished(lms, [sid], 60)[sid]
        assert (final["status"], final["attempts"]) == ("failed", 3)  # bounded: no requeue loop, no grade
        report = server.get(f"/api/v1/submissions/{sid}/report", lms).json()
        assert validation_errors(report) == [] and validate.report_meaning(report) == []
        assert report["score"] == 0 and report["error"]
        later = submitted(server.submit(lms, "ex03", SOLUTION, student="nina"))  # the service still grades
        assert server.wait_finished(lms, [later])[later]["score"] == 16.0
    finally:
        server.stop()


def test_a_submission_whose_runner_dies_each_time_is_failed_never_ok(db_url):
    """The failed-after-N path that builds a report without a run (the lease ran out three times): its report
    says the grader failed, never `ok`, so no gradebook shows a clean row for a submission never graded."""
    sleeper = b"import time\ntime.sleep(60)\n" + SOLUTION
    server = Server(db_url)
    try:
        lms = token(db_url, "lms")
        server.start()
        sid = submitted(server.submit(lms, "ex03", sleeper, student="oscar"))

        def state() -> dict:
            return server.get(f"/api/v1/submissions/{sid}", lms).json()

        for attempt in range(1, 4):
            wait_for(lambda a=attempt: state()["attempts"] == a and server.busy_zygotes(), 180,
                     f"attempt {attempt} running in a child")
            [runner] = server.runners()
            os.kill(runner, signal.SIGKILL)  # its lease runs out: requeued, and failed after the third
            wait_for(lambda r=runner: server.runners() and server.runners() != [r], 60, "a new runner")
        final = server.wait_finished(lms, [sid], 120)[sid]
        assert (final["status"], final["attempts"]) == ("failed", 3)
        report = server.get(f"/api/v1/submissions/{sid}/report", lms).json()
        assert validation_errors(report) == [] and validate.report_meaning(report) == []
        assert report["status"] == "grader-failure" and report["score"] == 0 and report["error"]
        assert not report["full_marks"]
        gradebook = server.get("/api/v1/gradebook.csv", token(db_url, "instructor")).body.decode("utf-8")
        [row] = [r for r in csv.DictReader(io.StringIO(gradebook)) if r["student"] == "oscar"]
        assert "ex03: grader-failure" in row["status"]  # not a clean row
    finally:
        server.stop()


def test_the_service_recovers_when_postgresql_stops_and_starts_under_it(postgres):
    url = postgres.new_database()
    server = Server(url)
    try:
        lms = token(url, "lms")
        server.start()
        first = submitted(server.submit(lms, "ex03", SOLUTION, student="olga"))
        server.wait_finished(lms, [first])
        postgres.stop()
        try:
            down = server.submit(lms, "ex03", SOLUTION, student="olga")
            assert down.status in (401, 503) or down.status >= 500  # never a 202 that is not stored
            assert "error" in down.json()
            assert server.get("/healthz", None).status == 503
            time.sleep(2)  # the background loops meet the missing database too
        finally:
            postgres.start()
        wait_for(server.healthy, 60, "the service to be healthy again")
        ids = [submitted(server.submit(lms, "ex03", body, student="olga")) for body in (SOLUTION, BUGGY)]
        states = server.wait_finished(lms, ids)
        assert [states[i]["score"] for i in ids] == [float(full_marks("ex03")), 6.0]
        assert server.process.poll() is None  # the same process, never restarted
    finally:
        server.stop()


def test_two_services_on_one_postgresql_share_the_queue_and_grade_nothing_twice(postgres):
    url = postgres.new_database()
    lms = token(url, "lms")
    servers = [Server(url), Server(url)]
    try:
        for server in servers:
            server.start(wait=False)
        for server in servers:
            wait_for(server.healthy, 120, "both services")
        ids = [submitted(servers[i % 2].submit(lms, "ex03", SOLUTION + f"\n# {i}\n".encode(), student=f"p{i:02d}"))
               for i in range(12)]
        states = servers[0].wait_finished(lms, ids)
        assert {s["status"] for s in states.values()} == {"graded"}
        assert {s["attempts"] for s in states.values()} == {1}  # each claimed exactly once
    finally:
        for server in servers:
            server.stop()


def test_the_cli_answers_an_unreachable_scheduler_and_a_bad_database_in_one_line(tmp_path):
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = subprocess.run([sys.executable, "-m", "grader.cli", "serve", "--scheduler", f"tcp://127.0.0.1:{port}"],
                            capture_output=True, text=True, cwd=tmp_path, check=False)
    assert result.returncode == 3, result.stderr  # the grader cannot grade at all: CONTRACT's exit 3
    assert "Dask scheduler" in result.stderr and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    result = subprocess.run([sys.executable, "-m", "grader.cli", "token", "add", "--role", "lms", "--db",
                             "nonsense://x"], capture_output=True, text=True, cwd=tmp_path, check=False)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    result = subprocess.run([sys.executable, "-m", "grader.cli", "token", "add", "--role", "student"],
                            capture_output=True, text=True, cwd=tmp_path, check=False)
    assert result.returncode == 2 and "--student" in result.stderr
    assert not list(Path(tmp_path).glob("*.sqlite3"))


# ---- the grading runners (grade serve grades in processes of its own)

def test_a_runner_killed_mid_job_is_replaced_and_its_job_graded_once(db_url):
    import os
    import signal

    receiver = Receiver(failures=0)
    slow = b"import time\ntime.sleep(3)\n" + SOLUTION
    server = Server(db_url)
    try:
        lms = token(db_url, "lms")
        server.start()
        [runner] = server.runners()
        sid = submitted(server.submit(lms, "ex03", slow, student="rita", callback_url=receiver.url))
        wait_for(lambda: server.get(f"/api/v1/submissions/{sid}", lms).json()["status"] == "running", 120,
                 "the job to run")
        time.sleep(1.0)  # inside the child's sleep
        os.kill(runner, signal.SIGKILL)
        wait_for(lambda: server.runners() and server.runners() != [runner], 60, "a new runner")
        state = server.wait_finished(lms, [sid], 120)[sid]
        full = float(full_marks("ex03"))
        assert (state["status"], state["score"], state["attempts"]) == ("graded", full, 2)  # requeued once
        wait_for(lambda: receiver.posts, 60, "the callback")
        time.sleep(1.5)
        assert len(receiver.posts) == 1  # one report, announced once
        assert server.get("/healthz", None).json() == {"ok": True}
    finally:
        server.stop()
        receiver.close()


def test_runners_stop_with_the_service_whether_killed_or_terminated(tmp_path):
    import signal

    from service_support import alive, descendants

    url = f"sqlite:///{tmp_path / 'service.sqlite3'}"
    lms = token(url, "lms")
    sleeper = b"import time\ntime.sleep(60)\n" + SOLUTION
    for ending in ("SIGKILL", "SIGTERM"):
        server = Server(url, jobs=2)
        try:
            server.start()
            sid = submitted(server.submit(lms, "ex03", sleeper + ending.encode(), student="sam"))
            wait_for(lambda s=sid, srv=server: srv.get(f"/api/v1/submissions/{s}", lms).json()["status"]
                     == "running", 120, "the job to run")
            runners = server.runners()
            below = [pid for pid, _ in descendants(server.process.pid)]
            assert len(runners) == 2 and len(below) > 2  # two runners, their zygotes, the running child
            if ending == "SIGKILL":
                server.kill9()
            else:
                server.process.terminate()
                assert server.process.wait(timeout=40) in (0, -signal.SIGTERM)  # uvicorn re-raises it when done
            wait_for(lambda b=below: not any(alive(pid) for pid in b), 40, f"no process left after {ending}")
            # the job it was grading went back to the queue at once (handed back, the attempt not counted)
            server.start()
            state = server.get(f"/api/v1/submissions/{sid}", lms).json()
            assert state["status"] in ("queued", "running") and state["attempts"] <= 1
        finally:
            server.stop()
