"""The service's pages in a real headless Chromium (Debian's chromium, driven by Playwright), and the API
fuzzed from its own OpenAPI document (schemathesis). One `grade serve` on SQLite for the module."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import ROOT, SUBMISSIONS, full_marks
from service_support import Server, token

pytest.importorskip("fastapi", reason="the service extra is not installed")
pytestmark = [pytest.mark.service, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BUGGY = SUBMISSIONS / "ex03" / "bug_no_zero_grad.py"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('pages') / 'service.sqlite3'}"
    server = Server(url, env={"GRADE_SERVICE_RATE": "1000/60"})
    tokens = {"student": token(url, "student", "alice"), "instructor": token(url, "instructor"),
              "lms": token(url, "lms")}
    server.start()
    yield server, tokens
    server.stop()


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (scripts/setup installs it: apt-get install chromium)")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


def watched_page(browser, origin: str):
    """A page that records every request that leaves the service's origin, and every console error."""
    context = browser.new_context()
    page = context.new_page()
    outside: list[str] = []
    problems: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(origin) or r.url.startswith("data:") else
            outside.append(r.url))
    # a 401 or 403 answer is logged as "Failed to load resource"; anything else (a CSP refusal) is a problem
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" and "Failed to load resource"
            not in m.text else None)
    return context, page, outside, problems


def test_a_student_signs_in_uploads_and_reads_the_feedback_as_it_arrives(site, browser, tmp_path):
    server, tokens = site
    context, page, outside, problems = watched_page(browser, server.url)
    try:
        response = page.goto(server.url + "/")
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp
        page.fill("input[name=token]", "gr_wrong")
        page.click("button[type=submit]")
        assert "not known" in page.text_content("#error")
        page.fill("input[name=token]", tokens["student"])
        page.click("button[type=submit]")
        assert "Signed in as alice" in page.text_content("nav")
        upload = tmp_path / "<img src=x onerror=alert(1)>.py"  # the name is shown on the feedback page: escaped
        upload.write_bytes(BUGGY.read_bytes())
        page.select_option("select[name=exercise]", "ex03")
        page.set_input_files("input[name=file]", str(upload))
        page.click("form[action='/submit'] button[type=submit]")
        assert "/feedback/" in page.url
        page.wait_for_selector(".score .big", timeout=120_000)  # the page refreshes itself until the report
        assert page.text_content(".score .big").split() == ["6", "/", full_marks("ex03")]
        assert "grad-not-zeroed" in page.content()
        assert page.locator("img[src=x]").count() == 0  # the file name was not turned into markup
        assert "&lt;img src=x onerror=alert(1)&gt;.py" in page.content()
        page.goto(server.url + "/")
        assert f"6/{full_marks('ex03')}" in page.text_content("table")
        assert outside == [] and problems == []
        assert page.goto(server.url + "/class").status == 403  # a student is not an instructor
    finally:
        context.close()


def test_the_instructor_sees_the_class(site, browser):
    server, tokens = site
    ids = [server.submit(tokens["lms"], "ex03", path.read_bytes(), student=f"c{i}").json()["id"]
           for i, path in enumerate([BUGGY, ROOT / "solutions" / "ex03.py", BUGGY])]
    server.wait_finished(tokens["lms"], ids)
    context, page, outside, problems = watched_page(browser, server.url)
    try:
        page.goto(server.url + "/")
        page.fill("input[name=token]", tokens["instructor"])
        page.click("button[type=submit]")
        page.click("text=Class view")
        gradebook = page.text_content("#gradebook")
        assert "c0" in gradebook and "c1" in gradebook and f"{full_marks('ex03')}/{full_marks('ex03')}" in gradebook
        diagnoses = page.text_content("#diagnoses")
        assert "grad-not-zeroed" in diagnoses
        # each score opens that attempt's report: c1's solution at full marks, c0's bug with its diagnosis
        page.click("#gradebook tr:has(td:text-is('c1')) a")
        assert f"/feedback/{ids[1]}" in page.url
        assert page.text_content(".score .big").split() == [full_marks("ex03"), "/", full_marks("ex03")]
        page.go_back()
        page.click("#gradebook tr:has(td:text-is('c0')) a")
        assert f"/feedback/{ids[0]}" in page.url and "grad-not-zeroed" in page.content()
        assert outside == [] and problems == []
    finally:
        context.close()


def _caller(headers):
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    def call(case):
        # Every check but one: whether a schema-valid upload is accepted depends on the token's role (an lms
        # token must name the student) and on the file's name (.py or .ipynb), which the schema cannot say.
        case.call_and_validate(headers=headers, timeout=30, excluded_checks=[positive_data_acceptance])

    return call


def test_the_api_holds_to_its_openapi_document_under_fuzzing(site):
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings

    server, tokens = site
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    failures: list[str] = []
    for role in ("student", "instructor"):
        headers = {"Authorization": f"Bearer {tokens[role]}"}
        for operation in schema.get_all_operations():
            operation = operation.ok()

            run = settings(max_examples=8, deadline=None, database=None, suppress_health_check=list(HealthCheck))(
                given(case=operation.as_strategy())(_caller(headers)))
            try:
                run()
            except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report them all
                failures.append(f"{role} {operation.method.upper()} {operation.path}: {exc}"[:2000])
    assert failures == []
