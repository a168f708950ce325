"""The LTI endpoints and pages: /lti/login, /lti/launch, /lti/jwks, the pages a launch lands on, deep linking.

Every refusal is a 4xx page with one sentence for the person and no session (launch.Refused). An accepted
launch makes a page session (the pages' own: an opaque id, stored hashed, expiring) and goes through
/lti/start: where the browser kept the session cookie (inside the LMS's iframe that needs `SameSite=None;
Secure`, hence an https public URL), it lands on its page; where the browser blocked it (a third-party
cookie, an http tool), the start page offers to open the grader in a new window, with a one-time ticket
that lives two minutes and is exchanged there, first-party, for a session. The pages' `frame-ancestors`
names the registered platforms' origins, so the LMS may frame them and nobody else may.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import secrets
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from grader.classroom.gradebook import number
from grader.course import exercises
from grader.formats import html
from grader.model.report import from_dict
from grader.service.lti import launch as lti_launch, platform as lti_platform
from grader.service.lti.keys import KeyRing
from grader.service.lti.passback import Passback
from grader.service.lti.store import Launch, LtiStore
from grader.service.pages import (
    COOKIE,
    REFRESH_S,
    SESSION_S,
    STYLE,
    cross_site,
    origin_of,
    set_session_cookie,
)

log = logging.getLogger("grader.service")
ORIGINS_CACHE_S = 5.0  # a platform added by the CLI may frame the pages within this long
MAX_ADDRESSES = 10_000  # client addresses the login rate remembers (the least recent forgotten first)


class AddressRate:
    """At most `limit` calls per `window_s` from one client address (an IPv6 address by its /64, which one
    host usually holds whole), counted in this process's memory, at most MAX_ADDRESSES remembered."""

    def __init__(self, limit: int, window_s: float):
        self.limit, self.window_s = limit, window_s
        self._calls: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, address: str | None) -> int:
        """0 when this call may go on (it is counted), else how many seconds to wait."""
        if self.limit <= 0:
            return 0
        key = address_key(address)
        now = time.monotonic()
        with self._lock:
            calls = self._calls.pop(key, None) or deque()
            while calls and calls[0] <= now - self.window_s:
                calls.popleft()
            self._calls[key] = calls  # the most recent address last
            if len(calls) >= self.limit:
                return max(1, int(calls[0] + self.window_s - now + 0.999))
            calls.append(now)
            while len(self._calls) > MAX_ADDRESSES:
                self._calls.popitem(last=False)
            return 0


def address_key(address: str | None) -> str:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return address or "-"
    if ip.version == 6 and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip.ipv4_mapped or ip) if ip.version == 6 else str(ip)


class Lti:
    """What the LTI routes share: the store, the keys, the platforms' JWKS, tokens, and the score outbox."""

    def __init__(self, service: Any):
        self.service = service
        self.store = LtiStore(service.engine)
        self.keys = KeyRing(self.store.sessions)
        self.http = lti_platform.client()
        self.jwks = lti_platform.JwksCache()
        self.tokens = lti_platform.Tokens(self.http, self.keys)
        self.passback = Passback(self, service.config.gradebook, service.config.timing.webhook_backoff_s)
        self.logins = AddressRate(service.config.lti_login_limit, service.config.lti_login_window_s)
        self._origins: tuple[float, str] = (0.0, "")
        self._lock = threading.Lock()

    def start(self) -> None:
        self.passback.start()

    def close(self) -> None:
        self.passback.close()
        self.http.close()

    @property
    def public_url(self) -> str:
        return self.service.public_url

    def frame_ancestors(self) -> str:
        """The registered platforms' origins (their issuer's, their auth URL's and the --frame-origin ones given
        at registration: Canvas cloud frames from the institution's own domain), read again every few seconds."""
        until, value = self._origins
        if until > time.monotonic():
            return value
        with self._lock:
            origins = sorted({o for p in self.store.platforms()
                              for o in (origin_of(p.issuer), origin_of(p.auth_url), *p.frame_origins) if o})
            value = " ".join(origins) or "'none'"
            self._origins = (time.monotonic() + ORIGINS_CACHE_S, value)
            return value

    def headers(self, script_nonce: str | None = None, form_action: str = "'self'") -> dict[str, str]:
        script = f"; script-src 'nonce-{script_nonce}'" if script_nonce else ""
        return {"Content-Security-Policy": f"{html.CSP}{script}; form-action {form_action}; base-uri 'none'; "
                                           f"frame-ancestors {self.frame_ancestors()}",
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "Cache-Control": "no-store"}

    def page(self, title: str, body: str, status: int = 200, refresh: bool = False, **csp: Any) -> HTMLResponse:
        meta = f'<meta http-equiv="refresh" content="{REFRESH_S}">' if refresh else ""
        text = (f'<!doctype html><html lang="en"><head><meta charset="utf-8">{meta}'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">'
                f"<title>{html.esc(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>")
        return HTMLResponse(text, status, headers=self.headers(**csp))

    def refusal(self, status: int, message: str) -> HTMLResponse:
        """A refused launch: one line for a person, no session, no detail for a prober."""
        return self.page("Not signed in", f'<h1>The grader could not sign you in</h1>'
                                          f'<p id="error" class="error">{html.esc(message)}</p>', status)


def add_routes(app: FastAPI, service: Callable[[], Any]) -> None:
    from grader.service.schemas import ApiError

    lti = Lti(service())
    app.state.lti = lti
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Any):  # the service's own start-up, then the score outbox's loop
        async with inner(application) as state:
            lti.start()
            try:
                yield state
            finally:
                lti.close()

    app.router.lifespan_context = lifespan

    def signed_in(request: Request, launch_id: str) -> tuple[Launch, Any] | None:
        """The launch and this browser's principal, where its session is the launch's user's."""
        raw = request.cookies.get(COOKIE)
        if not raw or len(raw) > 200 or len(launch_id) > 64:
            return None
        launch = lti.store.launch(launch_id)
        principal = service().store.session_principal(raw) if launch else None
        if launch is None or principal is None or principal.token_id != launch.token_id:
            return None
        return launch, principal

    def not_signed_in() -> HTMLResponse:
        return lti.refusal(401, "Your grader session has ended or belongs to someone else. Open the assignment "
                                "from your course again.")

    # ---- registration and login
    @app.get("/lti/jwks", include_in_schema=False)
    def jwks() -> JSONResponse:
        return JSONResponse(lti.keys.jwks(), headers={"Cache-Control": "max-age=300"})

    @app.api_route("/lti/login", methods=["GET", "POST"], include_in_schema=False)
    async def login(request: Request) -> Response:
        wait = lti.logins.take(request.client.host if request.client else None)
        if wait:  # each login is a row in the database: one address cannot pile them up
            refused = lti.refusal(429, f"Too many sign-ins from your network just now; try again in {wait} s.")
            refused.headers["Retry-After"] = str(wait)
            return refused
        params = {k: v for k, v in request.query_params.items()}
        if request.method == "POST":
            try:
                form = await request.form(max_files=0, max_fields=16)
                params.update({k: v for k, v in form.items() if isinstance(v, str)})
                await form.close()
            except Exception:  # noqa: BLE001 - the body is at fault
                return lti.refusal(400, "This sign-in from your course is not a readable form.")
        params = {k: v[:2000] for k, v in params.items()}
        try:
            target = await run_in_threadpool(lti_launch.login_redirect, lti.store, params,
                                             f"{lti.public_url}/lti/launch")
        except lti_launch.Refused as exc:
            return lti.refusal(exc.status, exc.message)
        return RedirectResponse(target, 302, headers=lti.headers())

    @app.post("/lti/launch", include_in_schema=False)
    async def launch(request: Request) -> Response:
        try:
            form = await request.form(max_files=0, max_fields=16)
            id_token, state = form.get("id_token"), form.get("state")
            await form.close()
        except Exception:  # noqa: BLE001 - the body is at fault
            return lti.refusal(400, "This launch is not a readable form. Open the assignment from your course again.")
        try:
            accepted = await run_in_threadpool(lti_launch.validate, lti.store, lti.jwks,
                                               id_token if isinstance(id_token, str) else "",
                                               state if isinstance(state, str) else "")
        except lti_launch.Refused as exc:
            log.info("LTI launch refused (%d): %s", exc.status, exc.message)
            return lti.refusal(exc.status, exc.message)
        launch_id, ticket, session = await run_in_threadpool(accept, accepted)
        response = RedirectResponse(f"/lti/start/{launch_id}?ticket={ticket}", 303, headers=lti.headers())
        https = lti.public_url.lower().startswith("https://")
        set_session_cookie(response, session, lti.public_url, same_site="none" if https else "lax")
        return response

    def accept(accepted: lti_launch.Accepted) -> tuple[str, str, str]:
        claims, platform = accepted.claims, accepted.platform
        c = lti_launch.CLAIM
        deep_linking = accepted.message_type == lti_launch.DEEP_LINKING
        kind = "deep-link" if deep_linking else "instructor" if accepted.instructor else "learner"
        name = claims.get("name") or " ".join(str(claims.get(k, "")) for k in ("given_name", "family_name")).strip()
        context = claims.get(c + "context") if isinstance(claims.get(c + "context"), dict) else {}
        custom = claims.get(c + "custom") if isinstance(claims.get(c + "custom"), dict) else {}
        exercise = custom.get("exercise") if custom.get("exercise") in exercises.exercise_ids() else None
        ags = claims.get(lti_launch.AGS_CLAIM) if isinstance(claims.get(lti_launch.AGS_CLAIM), dict) else {}
        nrps = claims.get(lti_launch.NRPS_CLAIM) if isinstance(claims.get(lti_launch.NRPS_CLAIM), dict) else {}
        lineitem = ags.get("lineitem") if isinstance(ags.get("lineitem"), str) else None
        members = nrps.get("context_memberships_url") if isinstance(nrps.get("context_memberships_url"), str) else None
        settings = claims.get(lti_launch.DL_CLAIM + "deep_linking_settings") if deep_linking else None
        return lti.store.accept(  # the user, the launch, its ticket and the session: one transaction
            platform.issuer, platform.client_id, claims["sub"], str(name)[:256] or None, SESSION_S,
            platform_id=platform.id, kind=kind, message_type=accepted.message_type,
            context_id=str(context.get("id"))[:256] if context.get("id") else None,
            context_title=str(context.get("title") or "")[:500] or None, exercise=exercise, lineitem=lineitem,
            memberships_url=members, deep_link=settings)

    # ---- landing: the session cookie, or the new-window fallback
    @app.get("/lti/start/{launch_id}", include_in_schema=False)
    def start(request: Request, launch_id: str, ticket: str = "") -> Response:
        if signed_in(request, launch_id) is not None:
            if ticket:
                lti.store.use_ticket(ticket[:200])  # not needed: the cookie came through
            return RedirectResponse(f"/lti/page/{launch_id}", 303, headers=lti.headers())
        if not ticket or len(ticket) > 200:
            return not_signed_in()
        return lti.page("Open the grader", f"""<h1>Open the grader in a new window</h1>
<p id="blocked">Your browser keeps the grader from signing you in inside the course page (it blocks cookies of
other sites there). Open it in its own window instead; the link works once, for two minutes.</p>
<p><a id="new-window" href="/lti/ticket/{html.esc(ticket)}" target="_blank" rel="noopener">Open the grader in a
new window</a></p>""")

    @app.get("/lti/ticket/{ticket}", include_in_schema=False)
    def exchange(ticket: str) -> Response:
        launch_id = lti.store.use_ticket(ticket[:200]) if len(ticket) <= 200 else None
        launch = lti.store.launch(launch_id) if launch_id else None
        if launch is None:
            return lti.refusal(400, "This link has expired or was already used. Open the assignment from your "
                                    "course again.")
        session = service().store.new_session(launch.token_id, SESSION_S)
        response = RedirectResponse(f"/lti/page/{launch.id}", 303, headers=lti.headers())
        set_session_cookie(response, session, lti.public_url)  # first-party now: SameSite=Lax
        return response

    # ---- the pages
    @app.get("/lti/page/{launch_id}", include_in_schema=False)
    def landing(request: Request, launch_id: str) -> Response:
        found = signed_in(request, launch_id)
        if found is None:
            return not_signed_in()
        launch, principal = found
        if launch.kind == "deep-link":
            return deep_link_page(launch)
        if launch.kind == "instructor":
            return class_page(launch)
        return learner_page(launch, principal)

    def learner_page(launch: Launch, principal: Any, message: str | None = None, status: int = 200) -> HTMLResponse:
        who = html.esc(launch.name or launch.student)
        if launch.exercise is None:
            return lti.page("No exercise", f"<p>Signed in as {who}</p><h1>This assignment names no exercise</h1>"
                                           '<p id="error" class="error">Ask your instructor to choose the exercise '
                                           "again (deep linking) or to set the custom parameter exercise=exNN.</p>",
                            409)
        title, _max = exercise_facts(launch.exercise)
        rows = service().store.list(principal, launch.exercise, None, 50)
        lines = "".join(
            f'<tr><td><a href="/lti/feedback/{launch.id}/{html.esc(r.id)}">{html.esc(_when(r.created_at))}</a></td>'
            f"<td>{html.esc(r.status)}</td><td>{_score(r)}</td></tr>" for r in rows)
        table = (f'<table id="attempts"><tr><th>submitted</th><th>status</th><th>score</th></tr>{lines}</table>'
                 if rows else '<p class="muted" id="attempts">No attempts yet.</p>')
        error = f'<p class="error" id="error">{html.esc(message)}</p>' if message else ""
        return lti.page(title, f"""<nav><strong>Signed in as {who}</strong></nav>
<h1>{html.esc(launch.exercise)}: {html.esc(title)}</h1>{error}
<form method="post" action="/lti/submit/{launch.id}" enctype="multipart/form-data">
<label>Your file (.py or .ipynb) <input type="file" name="file" accept=".py,.ipynb" required></label>
<button type="submit">Submit</button></form>
<h2>Your attempts</h2>{table}""", status)

    @app.post("/lti/submit/{launch_id}", include_in_schema=False)
    async def submit(request: Request, launch_id: str) -> Response:
        if cross_site(request, lti.public_url):
            return lti.refusal(403, "This form was sent from another site; open the assignment from your course.")
        found = await run_in_threadpool(signed_in, request, launch_id)  # before the body is read
        if found is None:
            return not_signed_in()
        launch, principal = found
        if launch.kind != "learner" or launch.exercise is None:
            return lti.refusal(403, "Submitting is for learners launched into an exercise.")
        try:
            form = await request.form(max_files=1, max_fields=4)
        except Exception:  # noqa: BLE001 - the body is at fault
            return await run_in_threadpool(learner_page, launch, principal, "That was not an upload form.", 400)
        try:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                return await run_in_threadpool(learner_page, launch, principal, "Choose a file.", 422)
            content = await upload.read(2 * 1024 * 1024)
            filename = upload.filename or ""
        finally:
            await form.close()
        try:
            row, _ = await run_in_threadpool(service().submit, principal, launch.exercise, filename, content,
                                             None, None, None)
        except ApiError as exc:
            return await run_in_threadpool(learner_page, launch, principal, exc.message, exc.status)
        await run_in_threadpool(lti.store.link_submission, row.id, launch.id)
        return RedirectResponse(f"/lti/feedback/{launch.id}/{row.id}", 303, headers=lti.headers())

    @app.get("/lti/feedback/{launch_id}/{submission_id}", include_in_schema=False)
    def feedback(request: Request, launch_id: str, submission_id: str) -> Response:
        found = signed_in(request, launch_id)
        if found is None:
            return not_signed_in()
        launch, principal = found
        row = service().store.get(submission_id, principal)
        if row is None:
            return lti.page("Not found", f'<h1>No such attempt</h1><p><a href="/lti/page/{launch.id}">Back</a></p>',
                            404)
        back = f'<p><a href="/lti/page/{launch.id}">← all my attempts</a></p>'
        if row.status not in ("graded", "failed") or not row.report:
            waiting = "waiting for a worker" if row.status == "queued" else "being graded now"
            return lti.page("Grading…", f'{back}<h1>{html.esc(row.exercise)}: {html.esc(row.status)}</h1>'
                                        f'<p id="status">Your submission is {waiting}. This page refreshes itself '
                                        f"every {REFRESH_S} s.</p>", refresh=True)
        # the student view, always, here: an LTI page is a student's page whoever opened it
        text = html.render(from_dict(json.loads(service().report_for(principal, row.report, "student"))))
        text = text.replace("<body>", f"<body>{back}", 1)
        return HTMLResponse(text, headers=lti.headers())

    def class_page(launch: Launch) -> HTMLResponse:
        platform = lti.store.platform(launch.platform_id)
        roster_note, members = "", []
        if launch.memberships_url and platform is not None:
            try:
                members = lti_platform.roster(lti.http, lti.tokens, platform, launch.memberships_url)
            except lti_platform.PlatformError as exc:
                roster_note = (f'<p class="error" id="roster-error">The course roster could not be read: '
                               f"{html.esc(exc)}.</p>")
        else:
            roster_note = '<p class="muted">This launch offers no roster (Names and Role Provisioning Services).</p>'
        known = lti.store.names(platform.issuer, platform.client_id) if platform else {}
        learners = [m for m in members if not m.get("roles") or any("Learner" in str(r) for r in m.get("roles", []))]
        students = [known[m["user_id"]][0] for m in learners if m.get("user_id") in known]
        submitted = lti.store.students_submitted(students, launch.exercise)
        lines, missing = [], 0
        for member in learners:
            sub = str(member.get("user_id", ""))
            student = known.get(sub, (None, None))[0]
            done = student in submitted
            missing += 0 if done else 1
            lines.append(f'<tr class="{"submitted" if done else "missing"}"><td>{html.esc(member.get("name") or sub)}'
                         f'</td><td>{html.esc(student or "never launched")}</td>'
                         f'<td>{"submitted" if done else "<strong>not submitted</strong>"}</td></tr>')
        roster = (f'<table id="roster"><tr><th>name</th><th>grader id</th><th>'
                  f'{html.esc(launch.exercise or "any exercise")}</th></tr>{"".join(lines)}</table>'
                  f'<p id="missing">{missing} of {len(learners)} have not submitted.</p>') if members else ""
        refused = lti.store.refused_scores(launch.platform_id, launch.context_id)  # this course's only
        names = lti.store.display_names([r[1] for r in refused])
        refused_rows = "".join(
            f"<tr><td>{html.esc(names.get(student, student))}</td><td>{html.esc(exercise)}</td>"
            f"<td>{html.esc(score.refused_status or 'gave up')}</td><td>{html.esc(score.last_error or '')}</td></tr>"
            for score, student, exercise in refused)
        scores = (f'<h2>Scores the course refused</h2><table id="refused"><tr><th>student</th><th>exercise</th>'
                  f"<th>status</th><th>why</th></tr>{refused_rows}</table>") if refused else ""
        title = launch.context_title or launch.context_id or "this course"
        return lti.page("Class", f"""<nav><strong>Instructor: {html.esc(launch.name or launch.student)}</strong></nav>
<h1>{html.esc(title)}</h1>{roster_note}{roster}{scores}""")

    def deep_link_page(launch: Launch) -> HTMLResponse:
        items = "".join(
            f'<form method="post" action="/lti/deep-link"><input type="hidden" name="launch" value="{launch.id}">'
            f'<input type="hidden" name="exercise" value="{html.esc(e)}">'
            f'<button type="submit" id="choose-{html.esc(e)}">'
            f"{html.esc(e)}: {html.esc(exercise_facts(e)[0])}</button></form>" for e in exercises.exercise_ids())
        return lti.page("Choose an exercise", f"<h1>Choose the exercise for this assignment</h1>{items}")

    @app.post("/lti/deep-link", include_in_schema=False)
    async def deep_link(request: Request) -> Response:
        if cross_site(request, lti.public_url):
            return lti.refusal(403, "This form was sent from another site; open the course's tool picker again.")
        try:
            form = await request.form(max_files=0, max_fields=4)
            launch_id, exercise = form.get("launch"), form.get("exercise")
            await form.close()
        except Exception:  # noqa: BLE001
            return lti.refusal(400, "That was not a choice of exercise.")
        if not isinstance(launch_id, str) or not isinstance(exercise, str):
            return lti.refusal(400, "That was not a choice of exercise.")
        found = await run_in_threadpool(signed_in, request, launch_id)
        if found is None or found[0].kind != "deep-link" or not found[0].deep_link:
            return not_signed_in()
        if exercise not in exercises.exercise_ids():
            return lti.refusal(422, f"There is no exercise {exercise[:40]!r}.")
        return await run_in_threadpool(deep_link_response, found[0], exercise)

    def deep_link_response(launch: Launch, exercise: str) -> HTMLResponse:
        platform = lti.store.platform(launch.platform_id)
        settings = launch.deep_link or {}
        title, max_score = exercise_facts(exercise)
        c, dl = lti_launch.CLAIM, lti_launch.DL_CLAIM
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": platform.client_id, "aud": platform.issuer, "iat": now, "exp": now + 600,
            "nonce": uuid.uuid4().hex,
            c + "deployment_id": platform.deployment_id, c + "message_type": "LtiDeepLinkingResponse",
            c + "version": "1.3.0",
            dl + "content_items": [{
                "type": "ltiResourceLink", "title": title, "url": f"{lti.public_url}/lti/launch",
                "custom": {"exercise": exercise},
                "lineItem": {"scoreMaximum": max_score, "label": title, "resourceId": exercise}}],
        }
        if "data" in settings:
            claims[dl + "data"] = settings["data"]
        token = lti.keys.sign(claims)
        target = str(settings["deep_link_return_url"])
        nonce = secrets.token_urlsafe(16)
        return lti.page("Returning to your course", f"""<h1>{html.esc(title)} chosen</h1>
<form id="return" method="post" action="{html.esc(target)}"><input type="hidden" name="JWT" value="{html.esc(token)}">
<button type="submit">Return to the course</button></form>
<script nonce="{nonce}">document.getElementById("return").submit();</script>""",
                        script_nonce=nonce, form_action=origin_of(target) or "'none'")


@functools.lru_cache(maxsize=64)
def exercise_facts(exercise: str) -> tuple[str, float]:
    """(title, maximum score) of an exercise; loading its spec costs ~10 ms, and the course does not change
    while the service runs."""
    spec = exercises.load(exercise)
    return spec.title, float(sum(check.points for check in spec.checks))


def _when(seconds: float) -> str:
    from grader.service.store import iso

    return iso(seconds).replace("T", " ")[:19] + " UTC"


def _score(row: Any) -> str:
    if row.status not in ("graded", "failed") or row.score is None:
        return ""
    return f"{number(row.score)}/{number(row.max_score)}"
