"""`submit`: the cells `check` grades, sent to `grade serve`; a progress line while queued and running; then
the student view of the report, rendered as `check` renders its own.

Kernel-side and small: the standard library's urllib only (a student's install needs no HTTP client), the
HTTP API v1 of docs/http-api.md. Every way it can go wrong ends in one line for the student: a bad token
(401), a service that cannot be reached, a rate limit (429, with when to try again), a file refused.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

POLL_S = 0.5
HTTP_TIMEOUT_S = 30.0


class SubmitError(Exception):
    """One line for the student; `submit` returns it as its result."""


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def _call(url: str, token: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> Answer:
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET",
                                     headers={**(headers or {}), "Authorization": f"Bearer {token}",
                                              "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            return Answer(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SubmitError(f"cannot reach the grading service at {_origin(url)} ({reason}); check the address "
                          "and your connection, then submit again.") from None


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else url


def _refused(answer: Answer) -> SubmitError:
    body = answer.json()
    said = body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), str) else ""
    said = " ".join(said.split())[:300]
    if answer.status == 401:
        return SubmitError("the service did not accept your token (401): check GRADE_TOKEN or the token "
                           "argument, or ask your instructor for a new one.")
    if answer.status == 429:
        wait = retry_after(answer.headers.get("retry-after"))
        when = f"try again in {wait} s (after {time.strftime('%H:%M:%S', time.localtime(time.time() + wait))})" \
            if wait is not None else "try again in a minute"
        return SubmitError(f"too many submissions for now (429): {when}.")
    return SubmitError(f"the service refused the submission ({answer.status}): {said or 'no reason given'}")


def retry_after(value: str | None) -> int | None:
    """Retry-After's seconds (RFC 9110: a number of seconds or an HTTP date)."""
    if not value:
        return None
    if value.strip().isdigit():
        return int(value.strip())
    from email.utils import parsedate_to_datetime

    try:
        return max(0, int(parsedate_to_datetime(value).timestamp() - time.time()))
    except (TypeError, ValueError):
        return None


def _multipart(exercise: str, file_name: str, content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="exercise"\r\n\r\n{exercise}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file_name}"\r\n'
            "Content-Type: application/x-ipynb+json\r\n\r\n").encode() + content + \
        f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


class Progress:
    """One line that changes in place: a display that is updated in a notebook, `\\r` elsewhere."""

    def __init__(self) -> None:
        self.handle = None
        self.last = ""
        try:
            from IPython import get_ipython
            from IPython.display import display

            if get_ipython() is not None:
                self.handle = display({"text/plain": ""}, raw=True, display_id=True)
        except ImportError:
            pass

    def show(self, line: str) -> None:
        if line == self.last:
            return
        self.last = line
        if self.handle is not None:
            self.handle.update({"text/plain": line}, raw=True)
        else:
            print("\r" + line, end="", flush=True)


def submit(host: Any, request: dict[str, Any], url: str | None, token: str | None, timeout: float) -> Any:
    from grader.notebook.results import Result

    url = (url or os.environ.get("GRADE_URL") or "").rstrip("/")
    token = token or os.environ.get("GRADE_TOKEN")
    if not url:
        return Result({"error": "submit needs the service's address: submit(EX, url=...) or GRADE_URL."})
    if not token:
        return Result({"error": "submit needs your token: submit(EX, url, token=...) or the GRADE_TOKEN "
                                "environment variable (your instructor gives it to you)."})
    progress = Progress()
    try:
        report = _send_and_wait(url, token, request, timeout, progress)
    except SubmitError as exc:
        progress.show("")  # the one line that follows says what happened
        return Result({"error": str(exc)})
    answer = host.ask({"op": "render", "report": report, "defined": request["defined"]})
    return Result({"report": report, **answer}) if not answer.get("error") else Result(answer)


def _send_and_wait(url: str, token: str, request: dict[str, Any], timeout: float, progress: Progress) -> Any:
    exercise = request["exercise"]
    body, content_type = _multipart(exercise, f"{exercise}.ipynb", request["notebook"].encode("utf-8"))
    progress.show(f"{exercise}: sending to {_origin(url)} ...")
    created = _call(f"{url}/api/v1/submissions", token, body,
                    {"Content-Type": content_type, "Idempotency-Key": uuid.uuid4().hex})
    if created.status != 202 or not isinstance(created.json(), dict) or "id" not in created.json():
        raise _refused(created)
    submission = str(created.json()["id"])
    started = time.monotonic()
    while True:
        state = _call(f"{url}/api/v1/submissions/{urllib.parse.quote(submission)}", token)
        if state.status != 200 or not isinstance(state.json(), dict):
            raise _refused(state)
        status = state.json().get("status")
        waited = time.monotonic() - started
        if status in ("graded", "failed"):
            break
        if status == "queued":
            ahead = state.json().get("position")
            where = f", {ahead} ahead of you" if isinstance(ahead, int) else ""
            progress.show(f"{exercise}: queued{where} ({waited:.0f} s)")
        else:
            progress.show(f"{exercise}: running ({waited:.0f} s)")
        if waited > timeout:
            raise SubmitError(f"submission {submission} is accepted but not graded after {timeout:g} s; it "
                              "will be graded: read it later on the service's page.")
        time.sleep(POLL_S)
    report = _call(f"{url}/api/v1/submissions/{urllib.parse.quote(submission)}/report", token)
    if report.status != 200 or not isinstance(report.json(), dict):
        raise SubmitError(f"submission {submission} ended {status}, and its report cannot be read "
                          f"({report.status}); ask your instructor.")
    progress.show(f"{exercise}: {status} in {time.monotonic() - started:.0f} s (submission {submission})")
    return report.json()
