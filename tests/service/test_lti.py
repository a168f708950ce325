"""LTI 1.3 against real parts: a real `grade serve` subprocess on SQLite, the mock platform of
tests/lti_platform.py on loopback (its own keys, JWKS, auth, token, score and membership endpoints), real HTTP
both ways. The platform is registered with `grade lti add-platform` while the service already runs."""

from __future__ import annotations

import json
import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import ROOT, SUBMISSIONS
from service_support import Server, call, token, wait_for

pytest.importorskip("jwt", reason="the service extra is not installed")
pytest.importorskip("fastapi", reason="the service extra is not installed")
from lti_platform import CLAIM, DL, LtiBrowser, MockPlatform, launch_id_of, new_key

pytestmark = [pytest.mark.service]
GOOD = ROOT / "solutions" / "ex03.py"
BUGGY = SUBMISSIONS / "ex03" / "bug_no_zero_grad.py"


def grade_cli(*arguments: str) -> str:
    from click.testing import CliRunner

    from grader.cli.main import main

    result = CliRunner().invoke(main, list(arguments))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def tool(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('lti') / 'service.sqlite3'}"
    server = Server(url, env={"GRADE_SERVICE_RATE": "1000/60", "GRADE_SERVICE_LTI_LOGIN_RATE": "100000/60"}).start()
    platform = MockPlatform(server.url)
    grade_cli("lti", "add-platform", *platform.registration, "--db", url, "--public-url", server.url)
    yield server, platform
    server.stop()
    platform.close()


@pytest.fixture
def browser(tool):
    server, platform = tool
    platform.next_claims = {}
    platform.down, platform.refuse_scores = False, None
    client = LtiBrowser(server.url, platform)
    yield client
    client.close()


def upload(browser: LtiBrowser, launch_id: str, path) -> str:
    answer = browser.http.post(f"{browser.tool_url}/lti/submit/{launch_id}",
                               files={"file": ("ex03.py", path.read_bytes(), "text/x-python")})
    assert answer.status_code == 303, answer.text
    return answer.headers["location"].rsplit("/", 1)[-1]


def feedback_when_graded(browser: LtiBrowser, launch_id: str, submission_id: str) -> str:
    def graded() -> str | None:
        page = browser.http.get(f"{browser.tool_url}/lti/feedback/{launch_id}/{submission_id}")
        assert page.status_code == 200, page.text
        return None if 'id="status"' in page.text else page.text

    return wait_for(graded, 180, "the submission to be graded", 0.5)


def scores_for(platform: MockPlatform, sub: str) -> list[dict]:
    with platform.lock:
        return [s for s in platform.scores if s["body"]["userId"] == sub]


# ---- registration and keys

def test_registration_prints_the_urls_and_never_a_private_key(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.sqlite3'}"
    platform = MockPlatform("https://grader.example.edu")
    try:
        added = grade_cli("lti", "add-platform", *platform.registration, "--db", url,
                          "--public-url", "https://grader.example.edu/")
        assert "https://grader.example.edu/lti/login" in added and "https://grader.example.edu/lti/jwks" in added
        assert "https://grader.example.edu/lti/launch" in added
        listed = grade_cli("lti", "list", "--db", url)
        assert platform.issuer in listed and "dep-1" in listed
        grade_cli("lti", "add-platform", *platform.registration, "--db", url, "--frame-origin",
                  "https://school.instructure.com/courses/1")
        listed = grade_cli("lti", "list", "--db", url)
        rows = [line for line in listed.splitlines() if line.startswith("1\t")]
        assert len(rows) == 1 and rows[0].endswith("\thttps://school.instructure.com")
        rotated = grade_cli("lti", "rotate-key", "--db", url)
        for output in (added, listed, rotated):
            assert "PRIVATE" not in output and "BEGIN" not in output
        assert "removed" in grade_cli("lti", "remove", "1", "--db", url)
        assert "no platform" in grade_cli("lti", "list", "--db", url)
    finally:
        platform.close()


def test_add_platform_refuses_a_url_that_is_not_one(tmp_path):
    from click.testing import CliRunner

    from grader.cli.main import main

    result = CliRunner().invoke(main, ["lti", "add-platform", "--issuer", "x", "--client-id", "c", "--deployment-id",
                                       "d", "--auth-url", "ftp://x", "--token-url", "http://t", "--jwks-url", "http://j",
                                       "--db", f"sqlite:///{tmp_path / 'x.sqlite3'}"])
    assert result.exit_code == 2 and "--auth-url" in result.output and "Traceback" not in result.output


def test_the_jwks_publishes_the_current_and_the_previous_key_until_the_next_rotation(tool):
    server, _ = tool
    before = {k["kid"] for k in browser_json(server.url + "/lti/jwks")["keys"]}
    grade_cli("lti", "rotate-key", "--db", server.db_url)
    time.sleep(5.5)  # the service reads its keys again every 5 s
    after = browser_json(server.url + "/lti/jwks")["keys"]
    assert before < {k["kid"] for k in after} and len(after) == 2
    assert all(k["kty"] == "RSA" and k["alg"] == "RS256" and "d" not in k for k in after)


def browser_json(url: str) -> dict:
    import httpx

    return httpx.get(url, timeout=10).json()


# ---- the whole path

def test_a_learner_launches_uploads_reads_the_student_view_and_the_score_reaches_the_gradebook(tool, browser):
    server, platform = tool
    page = browser.launch(sub="u1")
    assert page.status_code == 200, page.text
    assert "ex03" in page.text and 'type="file"' in page.text and "Student 1" in page.text
    assert "frame-ancestors " + platform.url in page.headers["content-security-policy"]
    launch_id = launch_id_of(page.url)
    submission = upload(browser, launch_id, GOOD)
    report_page = feedback_when_graded(browser, launch_id, submission)
    assert "ex03" in report_page
    received = wait_for(lambda: scores_for(platform, "u1"), 30, "the score at the platform")
    assert len(received) == 1
    score = received[0]
    assert score["path"] == "/lineitems/ex03/lineitem/scores"
    assert score["content_type"] == "application/vnd.ims.lis.v1.score+json"
    body = score["body"]
    assert set(body) == {"userId", "scoreGiven", "scoreMaximum", "activityProgress", "gradingProgress", "timestamp"}
    assert body["activityProgress"] == "Completed" and body["gradingProgress"] == "FullyGraded"
    assert 0 < body["scoreGiven"] <= body["scoreMaximum"]
    good = [r for r in platform.token_requests if "claims" in r]
    assert good and good[0]["form"]["scope"] == "https://purl.imsglobal.org/spec/lti-ags/scope/score"
    # the earlier attempts are on the exercise page
    again = browser.http.get(f"{server.url}/lti/page/{launch_id}")
    assert submission in again.text and 'id="attempts"' in again.text
    from grader.classroom.gradebook import number

    assert f"{number(body['scoreGiven'])}/{number(body['scoreMaximum'])}" in again.text  # the score it was given


def test_a_regrade_sends_the_new_score_to_the_platform(tool, browser):
    """An instructor's regrade (after fixing a check, say) grades the submission again; its score reaches the LMS
    again (it was sent once only: the link was marked considered for good)."""
    server, platform = tool
    page = browser.launch(sub="u-regrade")
    launch_id = launch_id_of(page.url)
    submission = upload(browser, launch_id, BUGGY)
    feedback_when_graded(browser, launch_id, submission)
    first = wait_for(lambda: scores_for(platform, "u-regrade"), 30, "the first score at the platform")
    assert len(first) == 1
    instructor = token(server.db_url, "instructor")
    import hashlib

    student = "lti-" + hashlib.sha256(f"{platform.issuer}\nu-regrade".encode()).hexdigest()[:20]  # its service id
    answer = call(server.url + "/api/v1/regrade", "POST", instructor, json.dumps({"student": student}).encode(),
                  {"Content-Type": "application/json"})
    assert answer.status == 202 and json.loads(answer.body) == {"queued": 1}, answer.body
    scores = wait_for(lambda: len(scores_for(platform, "u-regrade")) >= 2 and scores_for(platform, "u-regrade"),
                      60, "the regraded score at the platform")
    assert len(scores) == 2 and scores[1]["body"]["scoreGiven"] == scores[0]["body"]["scoreGiven"]
    assert scores[1]["body"]["timestamp"] > scores[0]["body"]["timestamp"]


# ---- the certification-style matrix: every bad launch is a 4xx page with one line and no session

def _b64(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _altered(platform: MockPlatform, claims: dict) -> str:
    """A validly signed token whose payload is then changed (sub) without signing it again."""
    header, _payload, signature = platform.sign(claims).split(".")
    return ".".join([header, _b64(json.dumps({**claims, "sub": "someone-else"}).encode()), signature])


def _none(platform: MockPlatform, claims: dict) -> str:
    return ".".join([_b64(json.dumps({"alg": "none", "typ": "JWT", "kid": platform.kid}).encode()),
                     _b64(json.dumps(claims).encode()), ""])


def _hs256_with_the_public_key(platform: MockPlatform, claims: dict) -> str:
    """The algorithm confusion attack: HMAC keyed with the platform's public key (which anyone can fetch)."""
    import hashlib
    import hmac

    from cryptography.hazmat.primitives import serialization

    public = platform.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = ".".join([_b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": platform.kid}).encode()),
                              _b64(json.dumps(claims).encode())])
    return signing_input + "." + _b64(hmac.new(public, signing_input.encode(), hashlib.sha256).digest())


def _without(claims: dict, name: str) -> dict:
    return {k: v for k, v in claims.items() if k != name}


NOW = int(time.time())
MATRIX = {
    # case: (how the token is made from (platform, claims), the claims' change, status, words of the refusal)
    "bad-signature": (lambda p, c: p.sign(c, key=new_key()[1]), None, 401, "signature does not match"),
    "unknown-kid": (lambda p, c: p.sign(c, key=new_key()[1], kid="no-such-kid"), None, 401, "does not publish"),
    "alg-none": (_none, None, 401, "RS256"),
    "alg-hs256-public-key": (_hs256_with_the_public_key, None, 401, "RS256"),
    "expired": (None, lambda c: {**c, "iat": c["iat"] - 900, "exp": c["iat"] - 600}, 401, "expired"),
    "future-iat": (None, lambda c: {**c, "iat": c["iat"] + 600, "exp": c["exp"] + 900}, 401, "future"),
    "wrong-aud": (None, lambda c: {**c, "aud": "another-tool"}, 401, "another tool"),
    "several-aud-no-azp": (None, lambda c: {**c, "aud": [c["aud"], "another-tool"]}, 401, "another tool"),
    "wrong-azp": (None, lambda c: {**c, "azp": "another-tool"}, 401, "another tool"),
    "wrong-iss": (None, lambda c: {**c, "iss": "https://evil.example"}, 401, "another platform"),
    "unknown-deployment": (None, lambda c: {**c, CLAIM + "deployment_id": "dep-other"}, 403, "deployment"),
    "wrong-version": (None, lambda c: {**c, CLAIM + "version": "1.1.0"}, 400, "not LTI 1.3.0"),
    "missing-version": (None, lambda c: _without(c, CLAIM + "version"), 400, "not LTI 1.3.0"),
    "unknown-message-type": (None, lambda c: {**c, CLAIM + "message_type": "LtiSubmissionReviewRequest"}, 400,
                             "kind of launch"),
    "missing-sub": (None, lambda c: _without(c, "sub"), 400, "who you are"),
    "empty-sub": (None, lambda c: {**c, "sub": ""}, 400, "who you are"),
    "missing-roles": (None, lambda c: _without(c, CLAIM + "roles"), 400, "role"),
    "missing-resource-link": (None, lambda c: _without(c, CLAIM + "resource_link"), 400, "resource_link.id"),
    "wrong-nonce": (None, lambda c: {**c, "nonce": "not-the-one-issued"}, 401, "nonce"),
    "missing-exp": (None, lambda c: _without(c, "exp"), 401, "exp"),
    "altered-after-signing": (_altered, None, 401, "signature does not match"),
}


@pytest.mark.parametrize("case", sorted(MATRIX))
def test_a_bad_launch_is_refused_with_one_line_and_no_session(tool, browser, case):
    _server, platform = tool
    make, change, status, words = MATRIX[case]
    state, nonce = browser.state_and_nonce()
    claims = platform.claims(nonce)
    claims = change(claims) if change else claims
    fetches = platform.jwks_fetches
    answer = browser.post_launch((make or (lambda p, c: p.sign(c)))(platform, claims), state)
    assert answer.status_code == status, answer.text
    assert_refusal(answer, words)
    if case == "unknown-kid":  # the JWKS is fetched again for a kid it does not hold (at most once per 5 s)
        assert platform.jwks_fetches >= fetches
    assert browser.http.get(f"{browser.tool_url}/lti/start/x").status_code == 401  # no session either


def assert_refusal(answer, words: str) -> None:
    assert "set-cookie" not in answer.headers
    message = re.search(r'<p id="error" class="error">([^<]*)</p>', answer.text)
    assert message, answer.text
    line = message.group(1)
    assert words in line and "\n" not in line and "Traceback" not in answer.text, line


def test_a_replayed_token_is_refused_with_a_fresh_state_and_with_its_own(tool, browser):
    _server, platform = tool
    state, nonce = browser.state_and_nonce()
    token = platform.sign(platform.claims(nonce))
    first = browser.post_launch(token, state)
    assert first.status_code == 303 and "set-cookie" in first.headers
    replay_same_state = LtiBrowser(browser.tool_url, platform)
    answer = replay_same_state.post_launch(token, state)
    assert answer.status_code == 400
    assert_refusal(answer, "already used")
    fresh_state, _ = replay_same_state.state_and_nonce()
    answer = replay_same_state.post_launch(token, fresh_state)
    assert answer.status_code == 401
    assert_refusal(answer, "nonce")
    replay_same_state.close()


def test_a_state_the_tool_never_issued_is_refused(tool, browser):
    _server, platform = tool
    _state, nonce = browser.state_and_nonce()
    answer = browser.post_launch(platform.sign(platform.claims(nonce)), "made-up-state")
    assert answer.status_code == 400
    assert_refusal(answer, "expired or was already used")


def test_a_login_from_an_unregistered_platform_or_client_is_a_400_page(tool, browser):
    for params in ({"iss": "https://unknown.example"}, {"client_id": "someone-else"}):
        answer = browser.login(**params)
        assert answer.status_code == 400
        assert_refusal(answer, "not registered")
    answer = browser.login(login_hint="")
    assert answer.status_code == 400


def test_the_login_redirect_carries_what_the_contract_lists(tool, browser):
    from urllib.parse import parse_qs, urlsplit

    _server, platform = tool
    answer = browser.login()
    location = urlsplit(answer.headers["location"])
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{platform.url}/auth"
    assert query["scope"] == "openid" and query["response_type"] == "id_token"
    assert query["response_mode"] == "form_post" and query["prompt"] == "none"
    assert query["client_id"] == platform.client_id and query["login_hint"] == "hint-1"
    assert query["lti_message_hint"] == "m-1" and query["redirect_uri"] == f"{browser.tool_url}/lti/launch"
    state2, nonce2 = browser.state_and_nonce()
    assert query["state"] != state2 and query["nonce"] != nonce2


# ---- deep linking, the class page, the new-window fallback

def deep_link(browser: LtiBrowser, exercise: str = "ex02") -> tuple[str, str]:
    """Launch a deep-linking request and choose `exercise`: (the return URL, the JWT) the page posts."""
    page = browser.launch(role="deep-link")
    assert page.status_code == 200 and f'id="choose-{exercise}"' in page.text, page.text
    answer = browser.http.post(f"{browser.tool_url}/lti/deep-link",
                               data={"launch": launch_id_of(page.url), "exercise": exercise})
    assert answer.status_code == 200, answer.text
    action = re.search(r'<form id="return" method="post" action="([^"]+)">', answer.text).group(1)
    token = re.search(r'name="JWT" value="([^"]+)"', answer.text).group(1)
    nonce = re.search(r'<script nonce="([^"]+)">', answer.text).group(1)
    csp = answer.headers["content-security-policy"]
    assert f"'nonce-{nonce}'" in csp and f"form-action {browser.platform.url}" in csp
    return action, token


def test_deep_linking_answers_a_signed_response_with_the_exercise_and_its_gradebook_column(tool, browser):
    from grader.course import exercises

    _server, platform = tool
    action, token = deep_link(browser, "ex02")
    assert action == f"{platform.url}/deep-link-return"
    header = json.loads(__import__("base64").urlsafe_b64decode(token.split(".")[0] + "=="))
    claims = platform.verify_tool_jwt(token, audience=platform.issuer)  # signed by a key in the tool's /lti/jwks
    assert header["alg"] == "RS256" and header["kid"]
    assert claims["iss"] == platform.client_id and claims["aud"] == platform.issuer
    assert claims[CLAIM + "message_type"] == "LtiDeepLinkingResponse" and claims[CLAIM + "version"] == "1.3.0"
    assert claims[CLAIM + "deployment_id"] == platform.deployment_id
    assert claims[DL + "data"] == "opaque-csrf-data-42"
    (item,) = claims[DL + "content_items"]
    spec = exercises.load("ex02")
    assert item["type"] == "ltiResourceLink" and item["title"] == spec.title
    assert item["url"] == f"{browser.tool_url}/lti/launch" and item["custom"] == {"exercise": "ex02"}
    assert item["lineItem"] == {"scoreMaximum": float(sum(c.points for c in spec.checks)), "label": spec.title,
                                "resourceId": "ex02"}


def test_an_independent_platform_implementation_accepts_the_deep_link_response(tool, browser):
    """lti1p3platform (another project's platform code, tests only) validates our JWT against our JWKS."""
    pytest.importorskip("lti1p3platform")
    from lti1p3platform.ltiplatform import LTI1P3PlatformConfAbstract
    from lti1p3platform.registration import Registration

    _server, platform = tool
    _action, token = deep_link(browser, "ex03")

    class Platform(LTI1P3PlatformConfAbstract):
        def init_platform_config(self, **kwargs):
            pass

        def get_registration_by_params(self, **kwargs):
            return (Registration().set_iss(platform.issuer).set_client_id(platform.client_id)
                    .set_deployment_id(platform.deployment_id).set_tool_key_set_url(f"{browser.tool_url}/lti/jwks"))

    other = Platform()
    other.get_registration()
    items = other.validate_deeplinking_resp({"JWT": token})
    assert items[0]["custom"] == {"exercise": "ex03"}
    # and the same library refuses the JWT once it is altered
    with pytest.raises(Exception):  # noqa: B017 - whatever it raises: not accepted
        head, body, signature = token.split(".")
        other.validate_deeplinking_resp({"JWT": ".".join([head, body[:-4] + "AAAA", signature])})


def test_a_deep_link_choice_is_refused_to_anyone_but_the_launch_s_session(tool, browser):
    page = browser.launch(role="deep-link")
    stranger = LtiBrowser(browser.tool_url, browser.platform)
    answer = stranger.http.post(f"{browser.tool_url}/lti/deep-link",
                                data={"launch": launch_id_of(page.url), "exercise": "ex02"})
    assert answer.status_code == 401 and "JWT" not in answer.text
    forged = browser.http.post(f"{browser.tool_url}/lti/deep-link", headers={"Origin": "https://evil.example"},
                               data={"launch": launch_id_of(page.url), "exercise": "ex02"})
    assert forged.status_code == 403 and "JWT" not in forged.text
    stranger.close()


def test_the_instructor_sees_the_whole_paged_roster_and_who_has_not_submitted(tool, browser):
    _server, platform = tool
    learner = LtiBrowser(browser.tool_url, platform)
    page = learner.launch(sub="u2")
    upload(learner, launch_id_of(page.url), BUGGY)
    learner.close()
    before = len(platform.membership_pages)
    page = browser.launch(role="instructor", sub="teacher")
    assert page.status_code == 200, page.text
    assert "Deep Learning 101" in page.text and 'id="roster"' in page.text
    assert len(platform.membership_pages) - before == 3  # 6 members, 2 a page: Link rel="next" followed twice
    for i in range(1, 6):
        assert f"Student {i}" in page.text
    assert "Ada Teacher" not in page.text  # instructors are not listed as missing
    assert re.search(r'<tr class="submitted"><td>Person u2|<tr class="submitted"><td>Student 2', page.text)
    missing = int(re.search(r'<p id="missing">(\d+) of 5', page.text).group(1))
    assert 1 <= missing <= 4
    # the LMS instructor's session is the class page of *this* course, not the service's instructor token
    assert browser.http.get(f"{browser.tool_url}/class").status_code == 403
    assert "lti-" not in browser.http.get(f"{browser.tool_url}/api/v1/gradebook.csv").text


def test_where_the_cookie_is_blocked_a_one_time_ticket_opens_the_grader_in_a_new_window(tool, browser):
    _server, platform = tool
    platform.next_claims = {"sub": "u3"}
    answer = browser.login()
    form = browser.http.get(answer.headers["location"])
    fields = dict(re.findall(r'name="(id_token|state)" value="([^"]*)"', form.text))
    launched = browser.post_launch(fields["id_token"], fields["state"])
    assert launched.status_code == 303
    browser.http.cookies.clear()  # what a browser that blocks third-party cookies does with it
    start = browser.http.get(httpx_url(browser, launched.headers["location"]))
    assert start.status_code == 200 and 'id="new-window"' in start.text and 'target="_blank"' in start.text
    link = re.search(r'id="new-window" href="([^"]+)"', start.text).group(1)
    window = LtiBrowser(browser.tool_url, platform)  # the new, first-party window
    landed = window.follow(window.http.get(httpx_url(window, link)))
    assert landed.status_code == 200 and 'type="file"' in landed.text
    assert window.http.get(httpx_url(window, link)).status_code == 400  # once only
    window.close()


def httpx_url(browser: LtiBrowser, location: str) -> str:
    import httpx

    return str(httpx.URL(browser.tool_url).join(location))


def test_behind_an_https_public_url_the_launch_s_cookie_is_samesite_none_and_secure(tmp_path):
    """The launch route itself (in-process, no grading): inside an LMS iframe only SameSite=None; Secure works."""
    from fastapi.testclient import TestClient

    from grader.service.app import create_app
    from grader.service.config import Config

    url = f"sqlite:///{tmp_path / 'https.sqlite3'}"
    public = "https://grader.example.edu"
    platform = MockPlatform(public)
    try:
        grade_cli("lti", "add-platform", *platform.registration, "--db", url)
        app = create_app(Config(db_url=url, public_url=public))
        client = TestClient(app, base_url=public)  # no lifespan: no runners, nothing graded
        login = client.get("/lti/login", follow_redirects=False, params={
            "iss": platform.issuer, "login_hint": "h", "target_link_uri": public + "/lti/launch",
            "client_id": platform.client_id})
        query = {k: v[0] for k, v in parse_qs(urlsplit(login.headers["location"]).query).items()}
        assert query["redirect_uri"] == public + "/lti/launch"
        state, nonce = query["state"], query["nonce"]
        answer = client.post("/lti/launch", data={"id_token": platform.sign(platform.claims(nonce)), "state": state},
                             follow_redirects=False)
        assert answer.status_code == 303, answer.text
        cookie = answer.headers["set-cookie"].lower()
        assert "samesite=none" in cookie and "secure" in cookie and "httponly" in cookie
        app.state.service.close()
    finally:
        platform.close()


# ---- which scores count, and faults

@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
@pytest.mark.parametrize("gradebook", ["best", "latest"])
def test_one_score_per_graded_submission_that_counts(tmp_path, request, gradebook, database):
    """The outbox in the store: graded rows inserted directly; best sends only improvements, latest every newer
    attempt; each submission is considered once, whatever is asked again. On SQLite and PostgreSQL."""
    from grader.service.config import open_store
    from grader.service.db import Submission
    from grader.service.lti.store import LtiStore

    url = f"sqlite:///{tmp_path / 's.sqlite3'}" if database == "sqlite" else \
        request.getfixturevalue("postgres").new_database()
    engine, _store = open_store(url)
    lti = LtiStore(engine)
    platform = lti.add_platform("https://lms", "c", "d", "https://lms/a", "https://lms/t", "https://lms/j")
    user_id, student, token_id = lti.user("https://lms", "c", "sub-1", "Ada")
    launch = lti.add_launch(platform.id, user_id, "learner", "LtiResourceLinkRequest", "ctx", None, "ex03",
                            "https://lms/li/1", None, None)
    sent = []
    for n, score in enumerate([5.0, 3.0, 7.0, 7.0, 2.0]):
        with lti.session() as session:
            session.add(Submission(id=f"s{n}", exercise="ex03", student=student, filename="ex03.py", sha256="x",
                                   content=b"", base_url="", token_id=token_id, status="graded", score=score,
                                   max_score=10.0, created_at=100.0 + n, queued_at=100.0 + n, finished_at=200.0 + n))
        lti.link_submission(f"s{n}", launch)
        lti.enqueue_scores(gradebook)
        lti.enqueue_scores(gradebook)  # asked again: nothing more
        sent = [json.loads(row[0].body)["scoreGiven"] for row in reversed(lti.scores())]
    assert sent == ([5.0, 7.0] if gradebook == "best" else [5.0, 3.0, 7.0, 7.0, 2.0])
    due = lti.due_scores(hold_s=60)
    assert len(due) == len(sent) and lti.due_scores(hold_s=60) == []  # claimed: held from other processes
    lti.score_done(due[0][0], True, None, None, 0.5)
    lti.score_done(due[1][0], False, 422, "HTTP 422: the line item is closed", 0.5)
    rows = {row[0].id: row[0] for row in lti.scores()}
    assert rows[due[0][0]].delivered_at and rows[due[1][0]].refused_status == 422 and rows[due[1][0]].given_up
    engine.dispose()


def test_a_refused_score_is_recorded_shown_to_the_instructor_and_not_retried(tool, browser):
    _server, platform = tool
    platform.refuse_scores = 422
    page = browser.launch(sub="u4")
    launch_id = launch_id_of(page.url)
    posts = platform.score_posts
    feedback_when_graded(browser, launch_id, upload(browser, launch_id, BUGGY))
    wait_for(lambda: platform.score_posts > posts, 30, "the score to be offered")
    time.sleep(3)  # several backoff periods (0.5 s, doubling): a retry would have come
    assert platform.score_posts == posts + 1 and not scores_for(platform, "u4")
    platform.refuse_scores = None
    teacher = LtiBrowser(browser.tool_url, platform)
    page = teacher.launch(role="instructor", sub="teacher")
    assert 'id="refused"' in page.text and "422" in page.text and "Person u4" in page.text
    teacher.close()


def test_scores_wait_for_a_platform_that_is_down_and_arrive_once_when_it_is_back(tool, browser):
    _server, platform = tool
    platform.down = True
    page = browser.launch(sub="u5")
    launch_id = launch_id_of(page.url)
    feedback_when_graded(browser, launch_id, upload(browser, launch_id, GOOD))
    wait_for(lambda: platform.down_hits > 0, 30, "a first try")
    time.sleep(2)
    assert not scores_for(platform, "u5")
    platform.down = False
    wait_for(lambda: scores_for(platform, "u5"), 60, "the score once the platform is back")
    time.sleep(2)
    assert len(scores_for(platform, "u5")) == 1


def test_best_attempt_only_a_better_submission_sends_a_score(tool, browser):
    _server, platform = tool
    page = browser.launch(sub="u6")
    launch_id = launch_id_of(page.url)
    feedback_when_graded(browser, launch_id, upload(browser, launch_id, GOOD))
    wait_for(lambda: scores_for(platform, "u6"), 30, "the first score")
    feedback_when_graded(browser, launch_id, upload(browser, launch_id, BUGGY))
    time.sleep(2)
    assert len(scores_for(platform, "u6")) == 1  # the worse attempt does not count (GRADE_SERVICE_GRADEBOOK=best)


def test_a_platform_that_rotates_its_key_is_followed_and_the_tool_s_old_key_verifies_until_retired(tool, browser):
    server, platform = tool
    _action, before = deep_link(browser, "ex03")  # signed by the tool's current key
    time.sleep(5.1)  # the JWKS is fetched again for an unknown kid at most every 5 s
    old = (platform.kid, platform.key)
    platform.kid, platform.key = new_key()  # the platform rotates: its JWKS now holds only the new key
    try:
        page = browser.launch(sub="u1")
        assert page.status_code == 200, page.text
    finally:
        platform.kid, platform.key = old
    grade_cli("lti", "rotate-key", "--db", server.db_url)
    time.sleep(5.5)
    platform.verify_tool_jwt(before, audience=platform.issuer)  # the previous key is still published
    page = browser.launch(sub="u7")
    launch_id = launch_id_of(page.url)
    feedback_when_graded(browser, launch_id, upload(browser, launch_id, GOOD))
    wait_for(lambda: scores_for(platform, "u7"), 30, "a score after the rotation")
    grade_cli("lti", "rotate-key", "--db", server.db_url)  # the key that signed `before` is retired now
    time.sleep(5.5)
    with pytest.raises(StopIteration):
        platform.verify_tool_jwt(before, audience=platform.issuer)


def test_a_service_killed_between_grading_and_passback_still_delivers_the_score_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'kill.sqlite3'}"
    server = Server(url, env={"GRADE_SERVICE_RATE": "1000/60", "GRADE_SERVICE_LTI_LOGIN_RATE": "100000/60"}).start()
    platform = MockPlatform(server.url)
    platform.down = True  # the score cannot leave before the kill
    try:
        grade_cli("lti", "add-platform", *platform.registration, "--db", url)
        browser = LtiBrowser(server.url, platform)
        page = browser.launch(sub="k1")
        launch_id = launch_id_of(page.url)
        feedback_when_graded(browser, launch_id, upload(browser, launch_id, GOOD))
        wait_for(lambda: platform.down_hits > 0, 30, "a first try")
        server.kill9()
        platform.down = False
        server.start()
        wait_for(lambda: scores_for(platform, "k1"), 60, "the score after the restart")
        time.sleep(2)
        assert len(scores_for(platform, "k1")) == 1
        browser.close()
    finally:
        server.stop()
        platform.close()
