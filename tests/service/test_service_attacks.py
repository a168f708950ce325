"""The service attacked as a hostile client would, against a real `grade serve` (issue 21's holes): each test
here failed on the code before its defence.

- a student reading its own report, its feedback page, or an lms asking `?view=student`, gets no hidden
  check's message, diagnosis or inputs, and no `hidden_output`;
- an Idempotency-Key reused for another student answers 409 and stores nothing, also when the POSTs race
  (SQLite and PostgreSQL); the same request again answers its current status;
- a cross-site sign-in is refused; the page cookie is a session, not the API token, HttpOnly, SameSite=Lax
  and Secure under an https public URL; sign-out and token revocation end it; /submit wants the session
  before it reads a body;
- one callback receiver that answers a byte every few seconds does not hold back another's callback;
- a student id with a trailing newline is refused; links are made from --public-url, never from Host.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import ROOT, SUBMISSIONS
from service_support import Server, call, multipart, token, wait_for

from grader.model.report import validation_errors

pytest.importorskip("fastapi", reason="the service extra is not installed")
pytestmark = [pytest.mark.service, pytest.mark.slow]

SOLUTION = (ROOT / "solutions" / "ex03.py").read_bytes()
PUBLIC = "https://grader.example.org/course"
ORIGIN = "https://grader.example.org"
# A submission that fails the hidden checks (with a diagnosis) and prints the arguments it is called with:
# before the fix a student read the hidden checks' learning rates and epoch counts in `hidden_output`.
SPY = (SUBMISSIONS / "ex03" / "bug_no_zero_grad.py").read_bytes() + b"""

_train = train


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    print(f"SPY learning_rate={learning_rate} n_iters={n_iters} x={list(x)[:3]}")
    return _train(x, y, w, learning_rate, n_iters)
"""


class PublicServer(Server):
    """`grade serve --public-url URL`."""

    def __init__(self, db_url: str, public_url: str | None = None, **kwargs):
        super().__init__(db_url, **kwargs)
        self.public_url = public_url

    def start(self, wait: bool = True) -> Server:
        import subprocess

        command = [sys.executable, "-m", "grader.cli", "serve", "--port", str(self.port), "--db", self.db_url,
                   "--jobs", str(self.jobs)] + (["--public-url", self.public_url] if self.public_url else [])
        self.process = subprocess.Popen(command, cwd=self.cwd, env=self.env, stdout=self.log, stderr=self.log)
        if wait:
            wait_for(self.healthy, 120, f"the service on {self.url} to be healthy ({self.log.name})", 0.5)
        return self


class Site:
    def __init__(self, server: PublicServer):
        self.server = server
        self.instructor = token(server.db_url, "instructor")
        self.lms = token(server.db_url, "lms")
        self.alice = token(server.db_url, "student", "alice")
        self.bob = token(server.db_url, "student", "bob")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'service.sqlite3'}"
    server = PublicServer(url, PUBLIC, env={"GRADE_SERVICE_WEBHOOK_TIMEOUT_S": "4"})
    site = Site(server)
    server.start()
    yield site
    server.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def any_db(request, tmp_path_factory):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'service.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres").new_database()
    server = PublicServer(url)
    site = Site(server)
    server.start()
    yield site
    server.stop()


def submitted(answer) -> str:
    assert answer.status == 202, answer.body
    return answer.json()["id"]


def hidden_checks(report: dict) -> list[dict]:
    return [c for c in report["checks"] if c["visibility"] == "hidden"]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a 303 comes back as it is: its Set-Cookie is what the test reads


def page_call(url: str, method: str = "GET", data: bytes | None = None, headers: dict[str, str] | None = None):
    """A request as a browser sends it to the pages, without following redirects."""
    from service_support import Answer

    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.build_opener(_NoRedirect).open(request, timeout=30) as response:
            return Answer(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read())


def sign_in(server: Server, secret: str, origin: str | None = ORIGIN) -> str:
    """POST /login as a browser on the site's own page would; returns the Set-Cookie header."""
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "same-origin"}
    if origin:
        headers["Origin"] = origin
    answer = page_call(server.url + "/login", "POST", data=urllib.parse.urlencode({"token": secret}).encode(),
                       headers=headers)
    assert answer.status == 303, answer.body
    return answer.headers["set-cookie"]


def cookie_value(set_cookie: str) -> str:
    parsed = SimpleCookie()
    parsed.load(set_cookie)
    return parsed["grade_session"].value


# ---- 1. the student view

def test_a_student_reads_no_hidden_detail_through_the_api_or_the_feedback_page(site):
    server = site.server
    sid = submitted(server.submit(site.alice, "ex03", SPY))
    server.wait_finished(site.alice, [sid])
    full = server.get(f"/api/v1/submissions/{sid}/report", site.lms).json()
    secrets = {line.strip() for line in full["hidden_output"].splitlines()
               if "SPY" in line and line.strip() not in full["output"]}
    assert secrets  # the hidden checks' arguments, printed: the attack has something to steal
    assert any(c["diagnosis"] for c in hidden_checks(full))
    mine = server.get(f"/api/v1/submissions/{sid}/report", site.alice).json()
    forced = server.get(f"/api/v1/submissions/{sid}/report?view=full", site.alice).json()
    as_student = server.get(f"/api/v1/submissions/{sid}/report?view=student", site.lms).json()
    for report in (mine, forced, as_student):
        assert validation_errors(report) == []
        assert "hidden_output" not in report
        assert not [line for line in secrets if line in json.dumps(report)]
        hidden = hidden_checks(report)
        assert [(c["status"], c["score"], c["max_score"]) for c in hidden] == \
            [(c["status"], c["score"], c["max_score"]) for c in hidden_checks(full)]
        # a hidden check's name is its author's account of its inputs ("lr 0.02, 30 epochs"): the student reads
        # the function it calls and its number
        assert [c["name"] for c in hidden] == [f"train: hidden check {n}" for n in range(1, len(hidden) + 1)]
        assert not [c["name"] for c in hidden_checks(full) if c["name"] in json.dumps(report)]
        for check in hidden:
            assert check["diagnosis"] is None and check.get("explanation") is None
            assert check["message"].endswith("details are not shown.")
    assert (mine["score"], mine["max_score"]) == (full["score"], full["max_score"])

    cookie = cookie_value(sign_in(server, site.alice))
    page = call(server.url + f"/feedback/{sid}", headers={"Cookie": f"grade_session={cookie}"})
    assert page.status == 200
    text = page.body.decode()
    assert not [line for line in secrets if line in text]
    assert text.count("details are not shown.") == len(hidden_checks(full))
    for check in hidden_checks(full):
        assert check["message"] not in text and check["name"] not in text

# Code that runs with the hidden inputs in hand writes them into the result channel as a result's key, twice:
# the parent rejects the run, and before the fix its complaint ("message 9 repeats the result for <key> on
# cpu") was the report's `error`, which the student view showed as it was.
CHANNEL_SPY = (SUBMISSIONS / "ex03" / "bug_no_zero_grad.py").read_bytes() + b"""

import json as _json
import os as _os
import sys as _sys

_train = train


def _hidden_channel():
    frame = _sys._getframe()
    while frame is not None:  # the harness's run(): `later` holds the hidden calls once they were handed over
        if frame.f_code.co_name == "run" and frame.f_locals.get("later") and "channel" in frame.f_locals:
            return frame.f_locals["channel"]
        frame = frame.f_back
    return None


def train(x, y, w=0.0, learning_rate=0.01, n_iters=100):
    channel = _hidden_channel()
    if channel is not None:
        line = _json.dumps({"type": "result", "key": f"STOLEN lr={learning_rate} n={n_iters}",
                            "device": "cpu"}).encode() + b"\\n"
        _os.write(channel.fd, line + line)
    return _train(x, y, w, learning_rate, n_iters)
"""


def test_hidden_inputs_written_into_the_channel_do_not_reach_the_student_in_the_error(site):
    server = site.server
    sid = submitted(server.submit(site.alice, "ex03", CHANNEL_SPY))
    server.wait_finished(site.alice, [sid])
    full = server.get(f"/api/v1/submissions/{sid}/report", site.lms).json()
    assert full["status"] == "rejected" and "STOLEN lr=" in full["error"]  # the attack has something to steal
    mine = server.get(f"/api/v1/submissions/{sid}/report", site.alice).json()
    as_student = server.get(f"/api/v1/submissions/{sid}/report?view=student", site.lms).json()
    for report in (mine, as_student):
        assert validation_errors(report) == []
        assert "STOLEN" not in json.dumps(report)
        assert report["status"] == "rejected" and "rejected your results" in report["error"]
    cookie = cookie_value(sign_in(server, site.alice))
    page = call(server.url + f"/feedback/{sid}", headers={"Cookie": f"grade_session={cookie}"})
    assert page.status == 200 and "STOLEN" not in page.body.decode()



# ---- 2. idempotency

def test_a_key_reused_for_another_student_answers_409_and_stores_nothing(any_db):
    server, lms = any_db.server, any_db.lms
    first = submitted(server.submit(lms, "ex03", SOLUTION, student="kim", key="attempt-1"))
    for other in ({"student": "lee"}, {"student": "kim", "file": SOLUTION + b"\n# another file\n"}):
        answer = server.submit(lms, "ex03", other.get("file", SOLUTION), student=other["student"], key="attempt-1")
        assert answer.status == 409, answer.body
        assert list(answer.json()) == ["error"] and "Idempotency-Key" in answer.json()["error"]
    assert server.get("/api/v1/submissions?student=lee", lms).json() == []
    assert [s["id"] for s in server.get("/api/v1/submissions?student=kim", lms).json()] == [first]


def test_the_same_key_again_answers_the_current_status_not_a_stale_queued(any_db):
    server, lms = any_db.server, any_db.lms
    sid = submitted(server.submit(lms, "ex03", SOLUTION, student="max", key="attempt-2"))
    server.wait_finished(lms, [sid])
    again = server.submit(lms, "ex03", SOLUTION, student="max", key="attempt-2")
    assert again.status == 202
    assert (again.json()["id"], again.json()["status"]) == (sid, "graded")


def test_racing_posts_with_one_key_store_one_submission_and_refuse_the_others(any_db):
    server, lms = any_db.server, any_db.lms
    students = [f"racer{i}" for i in range(8)]
    answers: dict[str, object] = {}
    barrier = threading.Barrier(len(students))

    def post(student: str) -> None:
        barrier.wait()
        answers[student] = server.submit(lms, "ex03", SOLUTION, student=student, key="race-1")

    threads = [threading.Thread(target=post, args=(s,)) for s in students]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    statuses = sorted(a.status for a in answers.values())
    assert statuses == [202] + [409] * (len(students) - 1), [a.body for a in answers.values()]
    stored = [s for s in server.get("/api/v1/submissions?limit=1000", lms).json() if s["student"] in students]
    [winner] = [s for s, a in answers.items() if a.status == 202]
    assert [s["student"] for s in stored] == [winner]
    # the same request racing itself: one submission, every answer naming it
    same: list = []

    def again() -> None:
        same.append(server.submit(lms, "ex03", SOLUTION, student="twin", key="race-2"))

    threads = [threading.Thread(target=again) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert {a.status for a in same} == {202} and len({a.json()["id"] for a in same}) == 1
    assert len(server.get("/api/v1/submissions?student=twin", lms).json()) == 1


# ---- 3. sessions and cross-site forms

def test_a_cross_site_sign_in_is_refused(site):
    server = site.server
    body = urllib.parse.urlencode({"token": site.bob}).encode()
    for headers in ({"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
                    {"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"},
                    {"Origin": server.url}):  # the listening address is not the public origin
        answer = page_call(server.url + "/login", "POST", data=body,
                      headers={"Content-Type": "application/x-www-form-urlencoded", **headers})
        assert answer.status == 403, headers
        assert "set-cookie" not in answer.headers
    # what a browser sends from the service's own page: the public origin, or `null` where its referrer policy
    # hides the origin but Sec-Fetch-Site vouches for it
    for headers in ({"Origin": ORIGIN}, {"Origin": ORIGIN + ":443", "Sec-Fetch-Site": "same-origin"},
                    {"Origin": "null", "Sec-Fetch-Site": "same-origin"}):
        answer = page_call(server.url + "/login", "POST", data=body,
                           headers={"Content-Type": "application/x-www-form-urlencoded", **headers})
        assert answer.status == 303 and "grade_session=" in answer.headers["set-cookie"], headers


def test_the_page_cookie_is_a_revocable_session_not_the_token(site, tmp_path):
    server = site.server
    set_cookie = sign_in(server, site.bob)
    value = cookie_value(set_cookie)
    attributes = set_cookie.lower()
    assert site.bob not in set_cookie and value.startswith("gs_")
    assert "httponly" in attributes and "samesite=lax" in attributes and "secure" in attributes
    cookie = {"Cookie": f"grade_session={value}"}
    assert "Signed in as bob" in call(server.url + "/", headers=cookie).body.decode()
    # the token itself in the cookie signs no one in
    page = call(server.url + "/", headers={"Cookie": f"grade_session={site.bob}"}).body.decode()
    assert "Sign in to the grader" in page
    # /submit wants the session before it reads a body: a stranger's broken upload is answered "sign in"
    stranger = call(server.url + "/submit", "POST", data=b"--x\r\nbroken", headers={
        "Content-Type": "multipart/form-data; boundary=x", "Origin": ORIGIN})
    assert stranger.status == 401 and "Sign in first" in stranger.body.decode()
    # a cross-site upload with a real session is refused, and stores nothing
    body, kind = multipart({"exercise": "ex03"}, "ex03.py", SOLUTION)
    before = len(server.get("/api/v1/submissions?student=bob", site.lms).json())
    forged = call(server.url + "/submit", "POST", data=body, headers={
        **cookie, "Content-Type": kind, "Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"})
    assert forged.status == 403
    assert len(server.get("/api/v1/submissions?student=bob", site.lms).json()) == before
    # signing out ends the session on the server, not just in this browser
    out = page_call(server.url + "/logout", "POST", data=b"", headers={**cookie, "Origin": ORIGIN})
    assert out.status == 303
    assert "Sign in to the grader" in call(server.url + "/", headers=cookie).body.decode()
    # revoking the token ends its sessions too
    carol = token(server.db_url, "student", "carol")
    carol_cookie = {"Cookie": f"grade_session={cookie_value(sign_in(server, carol))}"}
    assert "Signed in as carol" in call(server.url + "/", headers=carol_cookie).body.decode()
    from click.testing import CliRunner

    from grader.cli.main import main

    assert CliRunner().invoke(main, ["token", "revoke", carol, "--db", server.db_url]).exit_code == 0
    assert "Sign in to the grader" in call(server.url + "/", headers=carol_cookie).body.decode()


def test_without_an_https_public_url_the_cookie_is_not_secure(any_db):
    set_cookie = sign_in(any_db.server, any_db.alice, origin=any_db.server.url).lower()
    assert "httponly" in set_cookie and "samesite=lax" in set_cookie and "secure" not in set_cookie


# ---- 4. callbacks and links

class DripReceiver:
    """Answers a callback one byte every `every` seconds, for `total` seconds (a receiver that stalls)."""

    def __init__(self, every: float = 2.0, total: float = 90.0):
        self.started = threading.Event()
        self.finished = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                receiver.started.set()
                began = time.monotonic()
                try:
                    self.wfile.write(b"H")
                    while time.monotonic() - began < total:
                        self.wfile.flush()
                        time.sleep(every)
                        self.wfile.write(b"T")
                    receiver.finished.set()
                except OSError:
                    pass  # the grader hung up: its deadline passed

            def log_message(self, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/hook"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.http.shutdown()


class Receiver:
    def __init__(self):
        self.posts: list[tuple[dict, dict]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append((json.loads(body), dict(self.headers)))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/hook"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.http.shutdown()


def test_a_stalling_receiver_does_not_hold_back_another_receivers_callback(site):
    server = site.server
    slow, fast = DripReceiver(), Receiver()
    try:
        submitted(server.submit(site.lms, "ex03", SOLUTION, student="sam", callback_url=slow.url))
        wait_for(slow.started.is_set, 120, "the stalling receiver to be called")
        sid = submitted(server.submit(site.lms, "ex03", SOLUTION, student="tia", callback_url=fast.url))
        wait_for(lambda: fast.posts, 60, "the other receiver's callback")  # the drip alone would take 90 s
        assert not slow.finished.is_set()
        body, headers = fast.posts[0]
        assert (body["id"], body["exercise"], body["student"]) == (sid, "ex03", "tia")
        assert body["graded_at"].endswith("Z") and headers["X-Grade-Delivery"]
    finally:
        slow.close()
        fast.close()


def raw_post(server: Server, path: str, host: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """An HTTP request with a forged Host header (urllib would send the real one)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
        head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        connection.sendall(head.encode() + b"\r\n" + body)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    return status, answer.split(b"\r\n\r\n", 1)[1]


def test_links_come_from_the_public_url_never_from_a_forged_host(site):
    server = site.server
    receiver = Receiver()
    try:
        body, kind = multipart({"exercise": "ex03", "student": "uma", "callback_url": receiver.url}, "ex03.py",
                               SOLUTION)
        status, answer = raw_post(server, "/api/v1/submissions", "evil.example", body,
                                  {"Content-Type": kind, "Authorization": f"Bearer {site.lms}"})
        assert status == 202, answer
        sid = json.loads(answer)["id"]
        wait_for(lambda: receiver.posts, 120, "the callback")
        data, _headers = receiver.posts[0]
        assert data["report_url"] == f"{PUBLIC}/api/v1/submissions/{sid}/report"
        assert {"id", "status", "score", "max_score", "report_url", "exercise", "student", "graded_at"} <= set(data)
    finally:
        receiver.close()


def test_one_delivery_keeps_its_id_on_every_retry(site):
    attempts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            attempts.append(self.headers["X-Grade-Delivery"])
            self.send_response(503 if len(attempts) < 3 else 204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        submitted(site.server.submit(site.lms, "ex03", SOLUTION, student="vic",
                                     callback_url=f"http://127.0.0.1:{http.server_address[1]}/"))
        wait_for(lambda: len(attempts) >= 3, 120, "three attempts")
        assert len(set(attempts)) == 1 and attempts[0]
    finally:
        http.shutdown()


# ---- 5. ids and the queue

def test_a_student_id_with_a_trailing_newline_is_refused(site):
    server = site.server
    answer = server.submit(site.lms, "ex03", SOLUTION, student="alice\n")
    assert answer.status == 422 and list(answer.json()) == ["error"]
    assert not any(s["student"] != s["student"].strip()
                   for s in server.get("/api/v1/submissions?limit=1000", site.lms).json())


def test_a_queued_submission_says_how_many_are_ahead(site):
    server = site.server
    slow = b"import time\ntime.sleep(2)\n" + SOLUTION
    ids = [submitted(server.submit(site.lms, "ex03", slow, student=f"q{i}")) for i in range(4)]
    states = [server.get(f"/api/v1/submissions/{i}", site.lms).json() for i in ids]
    queued = [s for s in states if s["status"] == "queued"]
    assert queued, states
    positions = [s["position"] for s in queued]
    assert positions == sorted(positions) and all(p >= 0 for p in positions)
    # each job sleeps 2 s and the states are read in milliseconds: at most one claim falls between the reads
    assert len(queued) >= 2 and queued[-1]["position"] >= len(queued) - 2 and queued[-1]["position"] > 0
    server.wait_finished(site.lms, ids)
    assert server.get(f"/api/v1/submissions/{ids[-1]}", site.lms).json()["position"] is None


def test_a_public_url_that_is_not_http_is_refused_in_one_line(tmp_path):
    from click.testing import CliRunner

    from grader.cli.main import main

    for bad in ("ftp://grader.example.org", "https://grader.example.org/\nevil", "grader.example.org",
                "https://grader.example.org:99999"):
        result = CliRunner().invoke(main, ["serve", "--db", f"sqlite:///{tmp_path / 'x.sqlite3'}",
                                           "--public-url", bad])
        assert result.exit_code == 2 and "--public-url" in result.output and "Traceback" not in result.output


def test_a_nul_byte_in_a_filename_id_or_query_is_bad_input_not_a_database_outage(any_db):
    # PostgreSQL refuses a NUL byte in a text column: before the fix each of these answered 503 "the database
    # is not answering" with Retry-After (a client retries for ever), and the service logged a database error.
    server, alice, lms = any_db.server, any_db.alice, any_db.lms
    body, content_type = multipart({"exercise": "ex03"}, "nul\x00name.py", SOLUTION)
    answer = call(server.url + "/api/v1/submissions", "POST", alice, body, {"Content-Type": content_type})
    assert answer.status == 202, answer.body
    stored = server.get(f"/api/v1/submissions/{answer.json()['id']}", alice)
    assert stored.status == 200, stored.body
    for path, caller, status in (("/api/v1/submissions/%00", alice, 404),
                                 ("/api/v1/submissions/%00/report", alice, 404),
                                 ("/api/v1/submissions?student=%00", lms, 200),
                                 ("/api/v1/submissions?exercise=ex03%00", alice, 200)):
        answer = server.get(path, caller)
        assert answer.status == status, (path, answer.body)
        assert answer.status == 404 or answer.json() == []
