"""The service's two pages: `/` (a student signs in, uploads, reads the feedback as it arrives) and `/class`.

No script and no external resource: plain forms, a session cookie (an opaque random id whose hash the
database keeps, expiring, ended by sign-out or by revoking its token; HttpOnly, SameSite=Lax, Secure where
the public URL is https), and a page that refreshes itself (a meta refresh) until the report is there, which is
then the very page `grade EX FILE --html` writes. Every page is sent with the `--html` page's
Content-Security-Policy (plus `form-action 'self'`), and everything that comes from a user or a submission goes
through `html.esc`.

Every state-changing form (/login, /logout, /submit) refuses a cross-site request before it reads the body:
a browser says where a request comes from (`Origin`, `Sec-Fetch-Site`), and only the service's own public
origin is taken. /submit checks the session before it reads the upload. A student (and anyone asking for
`?view=student`) reads the student view of a report (report.student_view).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from grader.classroom.gradebook import number
from grader.course import exercises
from grader.formats import html
from grader.model.report import from_dict

COOKIE = "grade_session"
SESSION_S = 8 * 3600  # a page session's lifetime (signing out or revoking the token ends it sooner)
SAME_SITE_FETCHES = ("same-origin", "none")  # Sec-Fetch-Site values of a request this service's page made
META_CSP = f"{html.CSP}; form-action 'self'; base-uri 'none'"
CSP = f"{META_CSP}; frame-ancestors 'none'"  # frame-ancestors works only as a header
REFRESH_S = 2
STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; color: #1f2328; max-width: 960px; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: .3rem .5rem;
border-bottom: 1px solid #d1d9e0; } th { color: #59636e; font-size: .85rem; }
form { margin: 1rem 0; } label { display: block; margin: .4rem 0; } input, select, button { font: inherit; }
.muted { color: #59636e; } .error { border-left: 4px solid #b3261e; background: #fdf0ef; padding: .5rem 1rem; }
.bar { display: inline-block; height: .8rem; background: #1b7f3b; vertical-align: middle; }
nav { display: flex; gap: 1rem; align-items: center; } nav form { margin: 0; }
"""


def page(title: str, body: str, status: int = 200, refresh: bool = False) -> HTMLResponse:
    meta = f'<meta http-equiv="refresh" content="{REFRESH_S}">' if refresh else ""
    text = (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{META_CSP}">{meta}'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.esc(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>")
    return HTMLResponse(text, status, headers=security_headers())


def security_headers() -> dict[str, str]:
    return {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
            "Cache-Control": "no-store"}


def origin_of(url: str) -> str:
    """A URL's origin as a browser writes it in `Origin`: scheme://host[:port], the scheme's default port left
    out; "" for one that has none."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return ""
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if not host or scheme not in ("http", "https"):
        return ""
    host = f"[{host}]" if ":" in host else host
    shown = "" if port is None or (scheme, port) in (("http", 80), ("https", 443)) else f":{port}"
    return f"{scheme}://{host}{shown}"


def cross_site(request: Request, public_url: str) -> bool:
    """Whether a browser sent this request from another site (a forged form, a login CSRF): its
    `Sec-Fetch-Site` is not same-origin (or none: typed, bookmarked), or its `Origin` is not the public URL's
    (`null`, which a browser sends under some referrer policies, only with a same-origin `Sec-Fetch-Site`).
    A client that sends neither is not a browser acting for a visitor, and carries no visitor's cookie."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site.lower() not in SAME_SITE_FETCHES:
        return True
    origin = request.headers.get("origin")
    if origin is None:
        return False
    if origin.strip().lower() == "null":  # an opaque origin: taken only where the browser vouched same-origin
        return fetch_site is None
    return origin_of(origin) == "" or origin_of(origin) != origin_of(public_url)


def set_session_cookie(response: Response, value: str, public_url: str, same_site: str = "lax") -> None:
    """The page session's cookie: HttpOnly, `SameSite` (Lax for the pages; an LTI launch, framed by the
    platform, will need None, which browsers take only with Secure), Secure where the public URL is https."""
    secure = public_url.lower().startswith("https://") or same_site == "none"
    response.set_cookie(COOKIE, value, max_age=SESSION_S, path="/", httponly=True, secure=secure,
                        samesite=same_site)  # type: ignore[arg-type]


def refused() -> HTMLResponse:
    return page("Refused", '<h1>Refused</h1><p id="error" class="error">This form was sent from another site; '
                           'open the grader\'s own page and try again.</p><p><a href="/">Back</a></p>', 403)


def add_routes(app: FastAPI, service: Callable[[], Any]) -> None:
    from grader.service.schemas import ApiError  # the pages share the API's checks and words

    def who(request: Request) -> Any:
        """The signed-in principal of this browser's session cookie, or None."""
        raw = request.cookies.get(COOKIE)
        if not raw or len(raw) > 200:
            return None
        return service().store.session_principal(raw)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home(request: Request) -> Response:
        caller = who(request)
        if caller is None:
            return sign_in_page()
        return home_page(caller, service().store.list(caller, None, None, 50))

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        if cross_site(request, service().public_url):
            return refused()  # before the body is read
        try:
            form = await request.form(max_files=0, max_fields=4)
            token = form.get("token")
            await form.close()
        except Exception:  # noqa: BLE001 - Starlette's MultiPartException, a broken stream: the body is at fault
            return sign_in_page("That was not a sign-in form.", 400)
        token = token.strip() if isinstance(token, str) else ""
        try:
            principal = await run_in_threadpool(service().authenticate, token)
        except ApiError as exc:
            return sign_in_page(exc.message, 401)
        session = await run_in_threadpool(service().store.new_session, principal.token_id, SESSION_S)
        response = RedirectResponse("/", 303, headers=security_headers())
        set_session_cookie(response, session, service().public_url)
        return response

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request) -> Response:
        if cross_site(request, service().public_url):
            return refused()
        raw = request.cookies.get(COOKIE)
        if raw and len(raw) <= 200:
            service().store.end_session(raw)
        response = RedirectResponse("/", 303, headers=security_headers())
        response.delete_cookie(COOKIE, path="/")
        return response

    @app.post("/submit", include_in_schema=False)
    async def submit(request: Request) -> Response:
        if cross_site(request, service().public_url):
            return refused()
        caller = await run_in_threadpool(who, request)  # the session first: no body is read for a stranger
        if caller is None:
            return sign_in_page("Sign in first.", 401)
        try:
            form = await request.form(max_files=1, max_fields=8)
        except Exception:  # noqa: BLE001 - the body is at fault
            return sign_in_page("That was not an upload form.", 400)
        try:
            exercise, student, upload = form.get("exercise"), form.get("student"), form.get("file")
            if not isinstance(exercise, str) or not isinstance(upload, UploadFile) \
                    or (student is not None and not isinstance(student, str)):
                rows = await run_in_threadpool(service().store.list, caller, None, None, 50)
                return home_page(caller, rows, "Choose an exercise and a file.", 422)
            content = await upload.read(2 * 1024 * 1024)
            filename = upload.filename or ""
        finally:
            await form.close()
        try:
            row, _ = await run_in_threadpool(service().submit, caller, exercise, filename, content,
                                             student or None, None, None)
        except ApiError as exc:
            rows = await run_in_threadpool(service().store.list, caller, None, None, 50)
            return home_page(caller, rows, exc.message, exc.status)
        return RedirectResponse(f"/feedback/{row.id}", 303, headers=security_headers())

    @app.get("/feedback/{submission_id}", response_class=HTMLResponse, include_in_schema=False)
    def feedback(request: Request, submission_id: str, view: str | None = None) -> Response:
        caller = who(request)
        if caller is None:
            return sign_in_page("Sign in first.", 401)
        row = service().store.get(submission_id, caller)
        if row is None:
            return page("Not found", '<h1>No such submission</h1><p><a href="/">Back</a></p>', 404)
        if row.status not in ("graded", "failed") or not row.report:
            waiting = "waiting for a worker" if row.status == "queued" else "being graded now"
            return page("Grading…", f'<h1>{html.esc(row.exercise)}: {html.esc(row.status)}</h1>'
                                    f'<p id="status">Your submission is {waiting}. This page refreshes itself '
                                    f'every {REFRESH_S} s.</p><p><a href="/">Back</a></p>', refresh=True)
        text = html.render(from_dict(json.loads(service().report_for(caller, row.report, view))))
        text = text.replace("<body>", '<body><p><a href="/">← all my submissions</a></p>', 1)
        return HTMLResponse(text, headers=security_headers())

    @app.get("/class", response_class=HTMLResponse, include_in_schema=False)
    def class_page(request: Request) -> Response:
        caller = who(request)
        if caller is None:
            return sign_in_page("Sign in with an instructor token.", 401)
        if caller.role != "instructor":
            return page("Forbidden", '<h1>The class view is for instructors</h1><p><a href="/">Back</a></p>', 403)
        return class_view(service())


def sign_in_page(message: str | None = None, status: int = 200) -> HTMLResponse:
    error = f'<p class="error" id="error">{html.esc(message)}</p>' if message else ""
    return page("Sign in", f"""<h1>Sign in to the grader</h1>{error}
<form method="post" action="/login"><label>Your token <input name="token" type="password" autocomplete="off"
required size="50"></label><button type="submit">Sign in</button></form>
<p class="muted">Your instructor gives you a token (made with <code>grade token add</code>).</p>""", status)


def home_page(caller: Any, rows: list[Any], message: str | None = None, status: int = 200) -> HTMLResponse:
    options = "".join(f'<option value="{html.esc(e)}">{html.esc(e)}</option>' for e in exercises.exercise_ids())
    student_field = "" if caller.role == "student" else \
        '<label>Student <input name="student" required></label>'
    error = f'<p class="error" id="error">{html.esc(message)}</p>' if message else ""
    lines = "".join(
        f'<tr><td><a href="/feedback/{html.esc(r.id)}">{html.esc(r.exercise)}</a></td><td>{html.esc(r.student)}</td>'
        f'<td>{html.esc(r.status)}</td><td>{_score(r)}</td></tr>' for r in rows)
    table = (f"<table><tr><th>exercise</th><th>student</th><th>status</th><th>score</th></tr>{lines}</table>"
             if rows else '<p class="muted">No submissions yet.</p>')
    who = html.esc(caller.student or caller.role)
    class_link = ' <a href="/class">Class view</a>' if caller.role == "instructor" else ""
    return page("Submit", f"""<nav><strong>Signed in as {who}</strong>{class_link}
<form method="post" action="/logout"><button type="submit">Sign out</button></form></nav>
<h1>Submit your work</h1>{error}
<form method="post" action="/submit" enctype="multipart/form-data">
<label>Exercise <select name="exercise">{options}</select></label>{student_field}
<label>File (.py or .ipynb) <input type="file" name="file" accept=".py,.ipynb" required></label>
<button type="submit">Submit</button></form>
<h2>Your submissions</h2>{table}""", status)


def _score(row: Any) -> str:
    if row.status not in ("graded", "failed") or row.score is None:
        return ""
    return f"{number(row.score)}/{number(row.max_score)}"


def class_view(service: Any) -> HTMLResponse:
    """The gradebook (best attempt per student and exercise, each score linking to that attempt's report
    page), each exercise's score distribution, and the diagnoses found most often (a student counted once per
    code)."""
    latest: dict[tuple[str, str], tuple[float, float]] = {}
    best_id: dict[tuple[str, str], str] = {}
    diagnoses: Counter[tuple[str, str]] = Counter()
    seen: set[tuple[str, str, str]] = set()
    for student, exercise, score, report, _created, submission_id in service.store.graded():
        graded = from_dict(json.loads(report)) if report else None
        best = latest.get((student, exercise))
        if best is None or (score or 0.0) >= best[0]:
            latest[(student, exercise)] = (score or 0.0, float(graded.max_score) if graded else 0.0)
            best_id[(student, exercise)] = submission_id
        for check in graded.checks if graded else ():
            code = check.diagnosis
            if code and (student, exercise, code) not in seen:
                seen.add((student, exercise, code))
                diagnoses[(exercise, code)] += 1
    ids = sorted({e for _, e in latest})
    students = sorted({s for s, _ in latest})
    head = "".join(f"<th>{html.esc(e)}</th>" for e in ids)
    rows = "".join(
        f"<tr><td>{html.esc(s)}</td>" + "".join(
            f'<td><a href="/feedback/{html.esc(best_id[(s, e)])}">{number(latest[(s, e)][0])}/'
            f'{number(latest[(s, e)][1])}</a></td>' if (s, e) in latest else "<td></td>"
            for e in ids) + "</tr>" for s in students)
    distribution = ""
    for exercise in ids:
        scores = Counter(v[0] for (s, e), v in latest.items() if e == exercise)
        most = max(scores.values())
        bars = "".join(f'<tr><td>{number(score)}</td><td><span class="bar" style="width:{int(200 * n / most)}px">'
                       f'</span> {n}</td></tr>' for score, n in sorted(scores.items()))
        distribution += f"<h3>{html.esc(exercise)}</h3><table><tr><th>score</th><th>students</th></tr>{bars}</table>"
    most = max(diagnoses.values(), default=1)
    histogram = "".join(
        f'<tr><td>{html.esc(e)}</td><td><code>{html.esc(code)}</code></td><td><span class="bar" '
        f'style="width:{int(200 * n / most)}px"></span> {n}</td></tr>' for (e, code), n in diagnoses.most_common(15))
    return page("Class", f"""<nav><a href="/">Submit</a> <a href="/api/v1/gradebook.csv">gradebook.csv
(needs the API token)</a></nav><h1>The class</h1>
<h2>Gradebook (best attempt)</h2><table id="gradebook"><tr><th>student</th>{head}</tr>{rows}</table>
<h2>Score distribution</h2>{distribution or '<p class="muted">Nothing graded yet.</p>'}
<h2>Most frequent diagnoses</h2><table id="diagnoses"><tr><th>exercise</th><th>diagnosis</th><th>students</th></tr>
{histogram}</table>""")
