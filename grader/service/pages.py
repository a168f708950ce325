"""The service's two pages: `/` (a student signs in, uploads, reads the feedback as it arrives) and `/class`.

No script and no external resource: plain forms, a cookie holding the token (HttpOnly, SameSite=Strict),
and a page that refreshes itself (a meta refresh) until the report is there, which is then the very page
`grade EX FILE --html` writes. Every page is sent with the `--html` page's Content-Security-Policy (plus
`form-action 'self'`), and everything that comes from a user or a submission goes through `html.esc`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from grader import exercises
from grader.formats import html
from grader.formats.gradebook import number
from grader.report import from_dict

COOKIE = "grade_token"
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
    return {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store"}


def add_routes(app: FastAPI, service: Callable[[], Any]) -> None:
    from grader.service.app import ApiError  # the pages share the API's checks and words

    def who(request: Request) -> Any:
        try:
            return service().authenticate(request.cookies.get(COOKIE))
        except ApiError:
            return None

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home(request: Request) -> Response:
        caller = who(request)
        if caller is None:
            return sign_in_page()
        return home_page(caller, service().store.list(caller, None, None, 50))

    @app.post("/login", include_in_schema=False)
    def login(token: Annotated[str, Form()] = "") -> Response:
        try:
            service().authenticate(token.strip())
        except ApiError as exc:
            return sign_in_page(exc.message, 401)
        response = RedirectResponse("/", 303, headers=security_headers())
        response.set_cookie(COOKIE, token.strip(), httponly=True, samesite="strict", max_age=7 * 24 * 3600)
        return response

    @app.post("/logout", include_in_schema=False)
    def logout() -> Response:
        response = RedirectResponse("/", 303, headers=security_headers())
        response.delete_cookie(COOKIE)
        return response

    @app.post("/submit", include_in_schema=False)
    def submit(request: Request, exercise: Annotated[str, Form()], file: Annotated[UploadFile, File()],
               student: Annotated[str | None, Form()] = None) -> Response:
        caller = who(request)
        if caller is None:
            return sign_in_page("Sign in first.", 401)
        try:
            row, _ = service().submit(caller, exercise, file.filename or "", file.file.read(2 * 1024 * 1024),
                                      student or None, None, str(request.base_url), None)
        except ApiError as exc:
            return home_page(caller, service().store.list(caller, None, None, 50), exc.message, exc.status)
        return RedirectResponse(f"/feedback/{row.id}", 303, headers=security_headers())

    @app.get("/feedback/{submission_id}", response_class=HTMLResponse, include_in_schema=False)
    def feedback(request: Request, submission_id: str) -> Response:
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
        text = html.render(from_dict(json.loads(row.report)))
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
    """The gradebook (best attempt per student and exercise), each exercise's score distribution, and
    the diagnoses found most often (a student counted once per code)."""
    latest: dict[tuple[str, str], tuple[float, float]] = {}
    diagnoses: Counter[tuple[str, str]] = Counter()
    seen: set[tuple[str, str, str]] = set()
    for student, exercise, score, report, _created in service.store.graded():
        graded = from_dict(json.loads(report)) if report else None
        best = latest.get((student, exercise))
        if best is None or (score or 0.0) >= best[0]:
            latest[(student, exercise)] = (score or 0.0, float(graded.max_score) if graded else 0.0)
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
            f"<td>{number(latest[(s, e)][0])}/{number(latest[(s, e)][1])}</td>" if (s, e) in latest else "<td></td>"
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
