"""The LTI tool against the red team's attacks: a real `grade serve` subprocess on SQLite and mock platforms
(tests/service/lti_platform.py) on loopback, real HTTP both ways.

- A platform whose JWKS drips or fails holds no launch of another platform, nor the service's threads, and
  forged launches against it fetch its JWKS at most once per interval.
- Two registrations that share an issuer (as every Canvas cloud school's does) have separate users.
- Only course staff roles open the class page, and it shows the refused scores of its own course only.
- Registration takes https URLs only (plain http for a platform on loopback).
"""

from __future__ import annotations

import hashlib
import threading
import time

import pytest
from conftest import SUBMISSIONS
from service_support import Server, call, wait_for

pytest.importorskip("jwt", reason="the service extra is not installed")
pytest.importorskip("fastapi", reason="the service extra is not installed")
from lti_platform import CLAIM, LtiBrowser, MockPlatform, launch_id_of, new_key
from test_lti import feedback_when_graded, grade_cli, upload

pytestmark = [pytest.mark.service]
BUGGY = SUBMISSIONS / "ex03" / "bug_no_zero_grad.py"
MEMBERSHIP = "http://purl.imsglobal.org/vocab/lis/v2/membership"


@pytest.fixture(scope="module")
def tool(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('lti-attacks') / 'service.sqlite3'}"
    server = Server(url, env={"GRADE_SERVICE_RATE": "1000/60", "GRADE_SERVICE_LTI_LOGIN_RATE": "100000/60"}).start()
    platform = MockPlatform(server.url)
    grade_cli("lti", "add-platform", *platform.registration, "--db", url)
    platforms = [platform]
    yield server, platform, platforms
    server.stop()
    for each in platforms:
        each.close()


def another_platform(tool, **options) -> MockPlatform:
    server, _platform, platforms = tool
    issuer = options.pop("issuer", None)
    platform = MockPlatform(server.url, **options)
    platforms.append(platform)
    if issuer:
        platform.issuer = issuer
    grade_cli("lti", "add-platform", *platform.registration, "--db", server.db_url)
    return platform


def forged_launch(browser: LtiBrowser) -> int:
    """A launch anyone can make: a fresh state from /lti/login, a token signed by a key of one's own."""
    state, nonce = browser.state_and_nonce()
    token = browser.platform.sign(browser.platform.claims(nonce), key=ATTACKER_KEY, kid=f"made-up-{nonce[:8]}")
    return browser.post_launch(token, state).status_code


ATTACKER_KEY = new_key()[1]


# ---- F1: the platforms' JWKS

def test_a_jwks_that_drips_holds_neither_another_platform_s_launch_nor_the_service(tool):
    server, _platform, _ = tool
    slow = another_platform(tool, client_id="slow-client")
    slow.jwks_answer = "drip"  # a byte every 5 s for 60 s: never a whole read timeout
    healthy = another_platform(tool, client_id="healthy-client")
    attackers = [LtiBrowser(server.url, slow) for _ in range(20)]
    statuses: list[int] = []

    def attack(browser: LtiBrowser) -> None:
        try:
            statuses.append(forged_launch(browser))
        except Exception:  # noqa: BLE001 - a launch that got no answer at all
            statuses.append(0)

    threads = [threading.Thread(target=attack, args=(b,), daemon=True) for b in attackers]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    wait_for(lambda: slow.jwks_fetches >= 1, 30, "the slow platform's JWKS to be asked for")
    started = time.monotonic()
    teacher = LtiBrowser(server.url, healthy)
    page = teacher.launch(sub="healthy-1")
    took = time.monotonic() - started
    assert page.status_code == 200 and 'type="file"' in page.text, page.text
    # the drip would hold a fetch 60 s; the healthy platform's launch does not wait for it
    assert took < 20, f"a launch on a healthy platform took {took:.0f} s while another platform's JWKS dripped"
    assert call(server.url + "/healthz", timeout=20).status == 200
    for thread in threads:
        thread.join(60)
    elapsed = time.monotonic() - began
    assert len(statuses) == 20 and set(statuses) == {502}, statuses  # "could not read your platform's keys"
    assert slow.jwks_fetches <= 1 + int(elapsed / 5), (slow.jwks_fetches, elapsed)  # one fetch per 5 s at most
    for browser in (*attackers, teacher):
        browser.close()


def test_forged_kids_against_a_failing_jwks_fetch_it_at_most_once_per_interval(tool):
    server, _platform, _ = tool
    failing = another_platform(tool, client_id="failing-client")
    failing.jwks_answer = "error"
    browser = LtiBrowser(server.url, failing)
    started = time.monotonic()
    statuses = [forged_launch(browser) for _ in range(10)]
    elapsed = time.monotonic() - started
    assert set(statuses) == {502}, statuses
    # before: every one of them fetched the JWKS again (the limit held only after a fetch that worked)
    assert failing.jwks_fetches <= 1 + int(elapsed / 5), (failing.jwks_fetches, elapsed)
    failing.jwks_answer = None  # the platform is back: within an interval, its launches are taken again
    time.sleep(5.1)
    assert browser.launch(sub="back-1").status_code == 200
    browser.close()


# ---- F2: registrations that share an issuer

def test_a_registration_sharing_an_issuer_cannot_launch_as_another_registration_s_user(tool):
    from grader.service.config import open_store
    from grader.service.lti.store import LtiStore

    server, platform, _ = tool
    school_b = another_platform(tool, client_id="school-b", issuer=platform.issuer)  # Canvas cloud: one issuer
    a, b = LtiBrowser(server.url, platform), LtiBrowser(server.url, school_b)
    page_a = a.launch(sub="shared-sub")
    page_b = b.launch(sub="shared-sub")  # signed with school B's own key, naming school A's user
    assert page_a.status_code == page_b.status_code == 200, (page_a.text, page_b.text)
    engine, _ = open_store(server.db_url)
    store = LtiStore(engine)
    launch_a, launch_b = store.launch(launch_id_of(page_a.url)), store.launch(launch_id_of(page_b.url))
    engine.dispose()
    assert launch_a.student != launch_b.student and launch_a.token_id != launch_b.token_id
    # the first registration of an issuer keeps the student ids it had
    assert launch_a.student == "lti-" + hashlib.sha256(f"{platform.issuer}\nshared-sub".encode()).hexdigest()[:20]
    # school B's session does not open school A's user's pages
    assert b.http.get(f"{server.url}/lti/page/{launch_id_of(page_a.url)}").status_code == 401
    a.close()
    b.close()


# ---- F3: who is staff

ROLES = {
    "instructor": ([MEMBERSHIP + "#Instructor"], True),
    "teaching-assistant": ([MEMBERSHIP + "/Instructor#TeachingAssistant"], True),
    "content-developer": ([MEMBERSHIP + "#ContentDeveloper"], True),
    "course-administrator": ([MEMBERSHIP + "#Administrator"], True),
    "learner": ([MEMBERSHIP + "#Learner"], False),
    "learner-who-teaches-elsewhere": ([MEMBERSHIP + "#Learner",
                                       "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Instructor"], False),
    "institution-administrator": (["http://purl.imsglobal.org/vocab/lis/v2/institution/person#Administrator"], False),
    "system-administrator": (["http://purl.imsglobal.org/vocab/lis/v2/system/person#Administrator"], False),
    "mentor": ([MEMBERSHIP + "#Mentor"], False),
    "mentor-sub-role": ([MEMBERSHIP + "/Mentor#Advisor"], False),
    "made-up-suffix": (["https://evil.example/roles#Instructor"], False),
}


@pytest.mark.parametrize("case", sorted(ROLES))
def test_only_course_staff_roles_open_the_class_page(tool, case):
    server, platform, _ = tool
    roles, staff = ROLES[case]
    browser = LtiBrowser(server.url, platform)
    page = browser.launch(sub=f"role-{case}", **{CLAIM + "roles": roles})
    browser.close()
    assert page.status_code == 200, page.text
    assert ('id="roster"' in page.text) == staff, page.text
    assert ('type="file"' in page.text) == (not staff), page.text


# ---- F4: the class page is its course's

def test_the_class_page_shows_the_refused_scores_of_its_own_course_only(tool):
    server, platform, _ = tool
    platform.refuse_scores = 422
    try:
        learner = LtiBrowser(server.url, platform)
        page = learner.launch(sub="course-one-learner")
        launch_id = launch_id_of(page.url)
        posts = platform.score_posts
        feedback_when_graded(learner, launch_id, upload(learner, launch_id, BUGGY))
        wait_for(lambda: platform.score_posts > posts, 60, "the score to be offered")
        learner.close()
    finally:
        platform.refuse_scores = None

    def class_page(course: str) -> str:
        teacher = LtiBrowser(server.url, platform)
        page = teacher.launch(role="instructor", sub=f"teacher-{course}",
                              **{CLAIM + "context": {"id": course, "title": f"Course {course}"}})
        teacher.close()
        assert page.status_code == 200 and 'id="roster"' in page.text, page.text
        return page.text

    wait_for(lambda: "Person course-one-learner" in class_page("course-1"), 30, "the refusal to be recorded")
    other = class_page("course-2")
    assert "Person course-one-learner" not in other and 'id="refused"' not in other


# ---- F7: registration URLs

@pytest.mark.parametrize("url, taken", [
    ("https://lms.example.edu/jwks", True), ("http://127.0.0.1:9/jwks", True), ("http://localhost:9/jwks", True),
    ("http://[::1]:9/jwks", True), ("http://lms.example.edu/jwks", False), ("http://127.0.0.1.nip.io/jwks", False),
])
def test_registration_takes_https_urls_only_except_on_loopback(tmp_path, url, taken):
    from click.testing import CliRunner

    from grader.cli.main import main

    for option in ("--jwks-url", "--token-url", "--auth-url"):
        urls = {"--auth-url": "https://lms.example.edu/auth", "--token-url": "https://lms.example.edu/token",
                "--jwks-url": "https://lms.example.edu/jwks", option: url}
        result = CliRunner().invoke(main, ["lti", "add-platform", "--issuer", "https://lms.example.edu", "--client-id",
                                           "c", "--deployment-id", "d", *[x for kv in urls.items() for x in kv],
                                           "--db", f"sqlite:///{tmp_path / 'x.sqlite3'}"])
        if taken:
            assert result.exit_code == 0, result.output
        else:
            assert result.exit_code == 2 and option in result.output and "https://" in result.output, result.output
            errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
            assert "Traceback" not in result.output and len(errors) == 1, result.output



# ---- F5: login states

def test_one_address_cannot_pile_up_login_states(tmp_path):
    from sqlalchemy import func, select

    from grader.service.config import open_store
    from grader.service.lti.models import LtiLogin

    url = f"sqlite:///{tmp_path / 'logins.sqlite3'}"
    server = Server(url, env={"GRADE_SERVICE_LTI_LOGIN_RATE": "5/60"}).start()
    platform = MockPlatform(server.url)
    browser = LtiBrowser(server.url, platform)
    try:
        grade_cli("lti", "add-platform", *platform.registration, "--db", url)
        answers = [browser.login() for _ in range(12)]  # an unauthenticated GET, each a row before
        assert [a.status_code for a in answers] == [302] * 5 + [429] * 7, [a.status_code for a in answers]
        refused = answers[-1]
        assert 1 <= int(refused.headers["retry-after"]) <= 60 and "set-cookie" not in refused.headers
        assert "Too many sign-ins" in refused.text and "Traceback" not in refused.text
        engine, _ = open_store(url)
        with engine.connect() as connection:
            assert connection.execute(select(func.count()).select_from(LtiLogin)).scalar() == 5
        engine.dispose()
    finally:
        browser.close()
        server.stop()
        platform.close()

@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_the_migration_gives_each_existing_user_its_registration_and_keeps_its_student_id(request, tmp_path,
                                                                                          database):
    from sqlalchemy import text

    from grader.service.db import make_engine, migrate

    url = (request.getfixturevalue("postgres").new_database() if database == "postgresql"
           else f"sqlite:///{tmp_path / 'old.sqlite3'}")
    engine = make_engine(url)
    migrate(engine, "0005")  # a database from before: users keyed on (issuer, sub)
    with engine.begin() as c:
        c.execute(text("INSERT INTO tokens (token_sha256, role, student, created_at) VALUES "
                       "('h1', 'student', 'lti-a', 0), ('h2', 'student', 'lti-b', 0), ('h3', 'student', 'lti-c', 0)"))
        token_ids = [r[0] for r in c.execute(text("SELECT id FROM tokens ORDER BY id"))]
        c.execute(text("INSERT INTO lti_platforms (issuer, client_id, deployment_id, auth_url, token_url, jwks_url, "
                       "created_at) VALUES ('https://lms', 'first', 'd', 'a', 't', 'j', 0), "
                       "('https://lms', 'second', 'd', 'a', 't', 'j', 1)"))
        platform_ids = [r[0] for r in c.execute(text("SELECT id FROM lti_platforms ORDER BY id"))]
        c.execute(text("INSERT INTO lti_users (issuer, sub, student, token_id) VALUES "
                       f"('https://lms', 's1', 'lti-a', {token_ids[0]}), "
                       f"('https://lms', 's2', 'lti-b', {token_ids[1]}), "
                       f"('https://gone', 's3', 'lti-c', {token_ids[2]})"))
        user_ids = [r[0] for r in c.execute(text("SELECT id FROM lti_users ORDER BY id"))]
        c.execute(text("INSERT INTO lti_launches (id, platform_id, user_id, kind, message_type, created_at) VALUES "
                       f"('l1', {platform_ids[1]}, {user_ids[1]}, 'learner', 'LtiResourceLinkRequest', 0)"))
    migrate(engine)
    with engine.begin() as c:
        rows = [tuple(r) for r in c.execute(text("SELECT client_id, sub, student FROM lti_users ORDER BY id"))]
        # s2 launched through the second registration; s1 never launched: its issuer's first registration
        assert rows == [("first", "s1", "lti-a"), ("second", "s2", "lti-b"), ("", "s3", "lti-c")]
        c.execute(text("INSERT INTO tokens (token_sha256, role, student, created_at) VALUES ('h4', 'student', "
                       "'lti-d', 0)"))
        # another registration's s1
        c.execute(text("INSERT INTO lti_users (issuer, client_id, sub, student, token_id) SELECT 'https://lms', "
                       "'second', 's1', 'lti-d', id FROM tokens WHERE token_sha256 = 'h4'"))
    if database == "sqlite":  # the migration ran with SQLite's foreign keys off: they are on again
        with pytest.raises(Exception, match="FOREIGN KEY"), engine.begin() as c:
            c.execute(text("INSERT INTO lti_launches (id, platform_id, user_id, kind, message_type, created_at) "
                           f"VALUES ('l2', {platform_ids[0]}, 99999, 'learner', 'x', 0)"))
    engine.dispose()


# ---- the score that counts after a regrade or a tie (the third red team)

class Learner:
    """A real store (SQLite, migrated) and one LTI learner's launch at one line item, with graded attempts."""

    def __init__(self, tmp_path):
        from grader.service.db import make_engine, migrate
        from grader.service.lti.store import LtiStore

        engine = make_engine(f"sqlite:///{tmp_path / 'scores.sqlite3'}")
        migrate(engine)
        self.lti = LtiStore(engine)
        platform = self.lti.add_platform("https://lms.example", "cid", "dep", "https://lms.example/auth",
                                         "https://lms.example/token", "https://lms.example/jwks")
        user, self.student, self.token = self.lti.user(platform.issuer, "cid", "learner-1", "Ada")
        self.launch = self.lti.add_launch(platform.id, user, "learner", "LtiResourceLinkRequest", "ctx", "Course",
                                          "ex02", "https://lms.example/lineitems/1", None, None)
        self.now = time.time()
        self.ids: list[str] = []

    def attempt(self, score: float) -> str:
        from grader.service.db import Submission

        sid, at = f"{len(self.ids):032d}", self.now + 5 * len(self.ids)
        with self.lti.session() as session:
            session.add(Submission(id=sid, exercise="ex02", student=self.student, filename="ex02.py",
                                   sha256="0" * 64, content=b"", base_url="", token_id=self.token, status="graded",
                                   created_at=at, queued_at=at, finished_at=at + 1, score=score, max_score=14.0))
        self.lti.link_submission(sid, self.launch)
        self.ids.append(sid)
        return sid

    def regrade(self, scores: dict[str, float]) -> None:
        from sqlalchemy import update

        from grader.service.db import Submission

        with self.lti.session() as session:
            for sid, score in scores.items():
                session.execute(update(Submission).where(Submission.id == sid)
                                .values(score=score, finished_at=self.now + 100))

    def queued(self) -> list[tuple[str, float]]:
        """(submission, score) of every score row, the newest queued last."""
        import json

        from grader.service.lti.models import LtiScore

        with self.lti.session() as session:
            rows = session.query(LtiScore).order_by(LtiScore.created_at, LtiScore.id).all()
            return [(r.submission_id, json.loads(r.body)["scoreGiven"]) for r in rows]


def test_a_regrade_that_ties_the_best_sends_the_score_that_now_counts(tmp_path):
    learner = Learner(tmp_path)
    first = learner.attempt(10.0)
    assert learner.lti.enqueue_scores("best") == 1
    second = learner.attempt(6.0)
    assert learner.lti.enqueue_scores("best") == 0  # 6 does not beat 10
    learner.regrade({first: 6.0, second: 6.0})  # a fixed check: both score 6 now
    assert learner.lti.enqueue_scores("best") >= 1
    assert learner.queued()[-1][1] == 6.0  # the LMS no longer keeps the 10 (a tie sent nothing)


def test_a_regrade_that_lowers_the_best_sends_the_next_best(tmp_path):
    learner = Learner(tmp_path)
    first = learner.attempt(10.0)
    learner.lti.enqueue_scores("best")
    second = learner.attempt(8.0)
    learner.lti.enqueue_scores("best")
    learner.regrade({first: 6.0})
    learner.lti.enqueue_scores("best")
    assert learner.queued()[-1] == (second, 8.0)


def test_two_first_attempts_that_tie_send_one_score(tmp_path):
    learner = Learner(tmp_path)
    learner.attempt(7.0)
    learner.attempt(7.0)  # both graded before the outbox ran
    assert learner.lti.enqueue_scores("best") == 1  # it sent none: neither beat the other
    assert [score for _, score in learner.queued()] == [7.0]
