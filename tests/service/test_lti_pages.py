"""The LTI pages in headless Chromium, framed by an LMS of another site: the course page of the mock platform
(on http://localhost:PORT) frames the tool (on http://127.0.0.1:PORT), launches it through the real OIDC
login and form post, and the learner ends up uploading and reading the student view of the report."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from conftest import ROOT
from service_support import Server, wait_for

pytest.importorskip("jwt", reason="the service extra is not installed")
from lti_platform import MockPlatform
from test_lti import grade_cli

pytestmark = [pytest.mark.service, pytest.mark.slow]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
GOOD = ROOT / "solutions" / "ex03.py"


@pytest.fixture(scope="module")
def lms(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('lti-pages') / 'service.sqlite3'}"
    server = Server(url, env={"GRADE_SERVICE_RATE": "1000/60", "GRADE_SERVICE_LTI_LOGIN_RATE": "100000/60"}).start()
    platform = MockPlatform(server.url, host="localhost")
    grade_cli("lti", "add-platform", *platform.registration, "--db", url)
    yield server, platform
    server.stop()
    platform.close()


@pytest.fixture(scope="module")
def chromium():
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (scripts/setup installs it: apt-get install chromium)")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


def graded(window) -> bool:
    """The report is shown: no waiting line (the page reloads itself every 2 s until then)."""
    try:
        window.wait_for_load_state()
        return window.locator("#status").count() == 0 and window.locator("h1").count() > 0
    except Exception:  # noqa: BLE001 - a reload under way
        return False


def course_url(server: Server, platform: MockPlatform) -> str:
    login = f"{server.url}/lti/login?" + urlencode({
        "iss": platform.issuer, "login_hint": "u1", "target_link_uri": f"{server.url}/lti/launch",
        "client_id": platform.client_id, "lti_message_hint": "m"})
    return f"{platform.url}/course?launch={quote(login)}"


def test_a_learner_launched_in_an_lms_iframe_uploads_and_reads_the_feedback(lms, chromium):
    server, platform = lms
    platform.next_claims = {"sub": "u1"}
    context = chromium.new_context()
    problems: list[str] = []
    try:
        page = context.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error"
                and "Failed to load resource" not in m.text else None)
        page.goto(course_url(server, platform))
        frame = page.frame_locator("#tool")
        # the cookie of a site framed by another site is not sent back (SameSite=Lax over http): the fallback
        link = frame.locator("#new-window")
        link.wait_for(timeout=60_000)
        assert "its own window" in frame.locator("#blocked").inner_text()
        with context.expect_page() as opened:
            link.click()
        window = opened.value
        window.wait_for_load_state()
        window.locator('input[type="file"]').wait_for(timeout=30_000)
        assert "ex03" in window.locator("h1").inner_text()
        window.set_input_files('input[type="file"]', str(GOOD))
        window.locator('button[type="submit"]').click()
        window.wait_for_selector("text=← all my attempts", timeout=30_000)
        # the feedback page refreshes itself until the report is there, then shows the student view
        wait_for(lambda: graded(window), 180, "the report in the new window", 1.0)
        assert "ex03" in window.content()
        window.locator("text=← all my attempts").click()
        assert window.locator("#attempts").inner_text().count("graded") == 1
        assert problems == [], problems  # no CSP refusal on the way (the framed pages, the report page)
    finally:
        context.close()


def test_the_tool_s_pages_may_be_framed_only_by_registered_platforms(lms):
    import httpx

    server, platform = lms
    answer = httpx.get(f"{server.url}/lti/start/none?ticket=x", timeout=10)
    policy = answer.headers["content-security-policy"]
    ancestors = policy.split("frame-ancestors", 1)[1].split(";")[0].split()
    assert platform.url in ancestors and "*" not in ancestors and server.url not in ancestors
