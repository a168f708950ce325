"""LTI 1.3 against the mock platform of tests/service/lti_platform.py, side by side in one run.

- Launch: POST /lti/launch to the page it lands on (the 303s followed: /lti/start, /lti/page), on a warm
  `grade serve` whose JWKS cache already holds the platform's key; p50 and p99 of --launches rounds (the
  login before each one, which makes its state and nonce, is not timed). Goal: p99 at most 50 ms.
- Passback: from a report stored (the submission's finished_at) to its score received by the mock platform,
  for --graded real submissions graded one after another; p50. Goal: at most 1 s.
- Burst: --burst graded LTI submissions inserted straight into the database (as many users), until the
  platform has received all their scores: the time, and the token requests made (the access token lives
  --token-lifetime s, renewed 30 s before it expires). Goal: every score, at most one token request per expiry.

    python benchmarks/lti.py [--launches 300] [--graded 10] [--burst 500] [--token-lifetime 120]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "service"))
from lti_platform import LtiBrowser, MockPlatform
from service_support import Server, wait_for


def register(platform: MockPlatform, db_url: str) -> None:
    from click.testing import CliRunner

    from grader.cli.main import main

    result = CliRunner().invoke(main, ["lti", "add-platform", *platform.registration, "--db", db_url])
    assert result.exit_code == 0, result.output


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def launches(server: Server, platform: MockPlatform, rounds: int) -> list[float]:
    browser = LtiBrowser(server.url, platform)
    timings = []
    for index in range(rounds + 20):  # the first 20 warm the service (and fill the JWKS cache)
        state, nonce = browser.state_and_nonce()
        token = platform.sign(platform.claims(nonce, sub=f"bench-{index % 50}"))
        started = time.perf_counter()
        page = browser.follow(browser.post_launch(token, state))
        elapsed = time.perf_counter() - started
        assert page.status_code == 200 and 'type="file"' in page.text, page.text[:300]
        if index >= 20:
            timings.append(elapsed)
    browser.close()
    return timings


def passback(server: Server, platform: MockPlatform, count: int) -> list[float]:
    from sqlalchemy import create_engine, text

    engine = create_engine(server.db_url)
    browser = LtiBrowser(server.url, platform)
    page = browser.launch(sub="passback")
    launch_id = str(page.url).rsplit("/", 1)[-1]
    delays = []
    source = (ROOT / "solutions" / "ex03.py").read_bytes()
    for index in range(count):
        answer = browser.http.post(f"{server.url}/lti/submit/{launch_id}",
                                   files={"file": ("ex03.py", source + f"\n# {index}\n".encode(), "text/x-python")})
        submission = answer.headers["location"].rsplit("/", 1)[-1]
        before = len(platform.scores)

        def finished(submission: str = submission) -> float | None:
            with engine.connect() as connection:
                return connection.execute(text("SELECT finished_at FROM submissions WHERE id = :id"),
                                          {"id": submission}).scalar()

        stored = wait_for(finished, 300, "the report", 0.05)
        # GRADE_SERVICE_GRADEBOOK=latest: every newer attempt counts and sends its score
        wait_for(lambda b=before: len(platform.scores) > b, 60, "the score", 0.01)
        delays.append(platform.scores[-1]["at"] - stored)
    browser.close()
    engine.dispose()
    return delays


def burst(server: Server, platform: MockPlatform, count: int) -> tuple[float, int]:
    from grader.service.config import open_store
    from grader.service.db import Submission
    from grader.service.lti.store import LtiStore

    engine, _ = open_store(server.db_url)
    store = LtiStore(engine)
    (registered,) = [p for p in store.platforms() if p.issuer == platform.issuer]
    rows = []
    for index in range(count):
        user_id, student, token_id = store.user(registered.issuer, registered.client_id, f"burst-{index}",
                                                f"Burst {index}")
        launch = store.add_launch(registered.id, user_id, "learner", "LtiResourceLinkRequest", "course-1", None,
                                  "ex03", f"{platform.url}/lineitems/ex03/lineitem", None, None)
        rows.append((uuid.uuid4().hex, student, token_id, launch))
    tokens_before, scores_before = len(platform.token_requests), len(platform.scores)
    started = time.time()
    with store.session() as session:
        for submission_id, student, token_id, _launch in rows:
            now = time.time()
            session.add(Submission(id=submission_id, exercise="ex03", student=student, filename="ex03.py",
                                   sha256="0" * 64, content=b"", base_url="", token_id=token_id, status="graded",
                                   score=7.0, max_score=10.0, created_at=now, queued_at=now, finished_at=now))
    for submission_id, _student, _token, launch in rows:
        store.link_submission(submission_id, launch)
    wait_for(lambda: len(platform.scores) - scores_before >= count, 300, f"{count} scores", 0.05)
    elapsed = time.time() - started
    engine.dispose()
    return elapsed, len(platform.token_requests) - tokens_before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launches", type=int, default=300)
    parser.add_argument("--graded", type=int, default=10)
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--token-lifetime", type=int, default=120)
    arguments = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="grade-lti-bench-"))
    db_url = f"sqlite:///{folder / 'service.sqlite3'}"
    server = Server(db_url, env={"GRADE_SERVICE_RATE": "100000/60", "GRADE_SERVICE_LTI_LOGIN_RATE": "100000/60",
                                   "GRADE_SERVICE_GRADEBOOK": "latest"}).start()
    platform = MockPlatform(server.url)
    platform.token_lifetime = arguments.token_lifetime
    try:
        register(platform, db_url)
        timings = launches(server, platform, arguments.launches)
        delays = passback(server, platform, arguments.graded)
        elapsed, token_requests = burst(server, platform, arguments.burst)
    finally:
        server.stop()
        platform.close()
    expiries = max(1, math.ceil(elapsed / max(1, arguments.token_lifetime - 30)))
    print(f"load average {os.getloadavg()[0]:.1f} (1 min) at the end")
    launch_p99 = percentile(timings, 0.99) * 1000
    passback_p50 = statistics.median(delays)
    print(f"launch (POST /lti/launch to page, {len(timings)} rounds): p50 {statistics.median(timings) * 1000:.1f} ms, "
          f"p99 {launch_p99:.1f} ms  (goal p99 <= 50 ms: {'met' if launch_p99 <= 50 else 'NOT met'})")
    print(f"passback (report stored to score received, {len(delays)} submissions): p50 {passback_p50:.3f} s, "
          f"max {max(delays):.3f} s  (goal p50 <= 1 s: {'met' if passback_p50 <= 1 else 'NOT met'})")
    print(f"burst ({arguments.burst} graded submissions): every score received in {elapsed:.1f} s "
          f"({arguments.burst / elapsed:.0f}/s), {token_requests} token request(s) for at most {expiries} "
          f"expir{'y' if expiries == 1 else 'ies'} of a {arguments.token_lifetime} s token  "
          f"(goal: {'met' if token_requests <= expiries else 'NOT met'})")


if __name__ == "__main__":
    main()
