"""A mock LTI 1.3 platform for the tests: its own RSA keys and JWKS on loopback, an OIDC auth endpoint that
answers the tool's login with a signed id_token form post, a token endpoint that verifies the tool's client
assertion against the tool's own /lti/jwks, line-item score and membership endpoints that record what they
receive. Real HTTP both ways; nothing leaves 127.0.0.1.

And `LtiBrowser`: a scripted browser (httpx, its own cookie jar) that walks the login and launch as a
browser would, for the tests that need no Chromium.
"""

from __future__ import annotations

import html
import json
import re
import secrets
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"
AGS = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"
SCORE_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"


def new_key() -> tuple[str, Any]:
    return secrets.token_hex(8), rsa.generate_private_key(public_exponent=65537, key_size=2048)


class MockPlatform:
    def __init__(self, tool_url: str | None = None, client_id: str = "grader-client", deployment_id: str = "dep-1",
                 host: str = "127.0.0.1"):
        self.tool_url = tool_url  # set once the tool is up (the token endpoint reads the tool's JWKS there)
        self.client_id = client_id
        self.deployment_id = deployment_id
        self.kid, self.key = new_key()
        self.lock = threading.Lock()
        self.scores: list[dict[str, Any]] = []  # (line item path, body, headers) of every score received
        self.token_requests: list[dict[str, Any]] = []
        self.jwks_fetches = 0
        self.jwks_answer: str | None = None  # None: the keys; "error": HTTP 500; "drip": a byte every 5 s for 60 s
        self.score_posts = 0  # every POST to a scores endpoint, taken or not
        self.down_hits = 0  # calls to the token or score endpoint answered 503 (while `down`)
        self.membership_pages: list[str] = []
        self.issued: dict[str, tuple[str, float]] = {}  # access token -> (scope, until)
        self.down = False  # the token and score endpoints answer 503
        self.refuse_scores: int | None = None  # the score endpoint answers this 4xx
        self.token_lifetime = 3600
        self.members = [{"user_id": f"u{i}", "name": f"Student {i}", "roles": [LEARNER]} for i in range(1, 6)]
        self.members.append({"user_id": "teacher", "name": "Ada Teacher", "roles": [INSTRUCTOR]})
        self.page_size = 2
        self.next_claims: dict[str, Any] = {}  # what the auth endpoint puts in its next id_tokens
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        # `host` names the platform in its URLs (it listens on 127.0.0.1 whatever it is): "localhost" makes it
        # another *site* than a tool on 127.0.0.1, as an LMS is, for the browser's cookie rules
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self.issuer = self.url
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    # ---- what the tool is registered with
    @property
    def registration(self) -> list[str]:
        return ["--issuer", self.issuer, "--client-id", self.client_id, "--deployment-id", self.deployment_id,
                "--auth-url", f"{self.url}/auth", "--token-url", f"{self.url}/token", "--jwks-url", f"{self.url}/jwks"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ---- making id_tokens
    def claims(self, nonce: str, role: str = "learner", exercise: str | None = "ex03", sub: str = "u1",
               lineitem: str | None = "/lineitems/ex03/lineitem", **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer, "aud": self.client_id, "sub": sub, "iat": now, "exp": now + 300, "nonce": nonce,
            "name": {"u1": "Student 1"}.get(sub, f"Person {sub}"),
            CLAIM + "deployment_id": self.deployment_id, CLAIM + "version": "1.3.0",
            CLAIM + "message_type": "LtiResourceLinkRequest",
            CLAIM + "roles": [INSTRUCTOR if role == "instructor" else LEARNER],
            CLAIM + "resource_link": {"id": "rl-1", "title": "Exercise 3"},
            CLAIM + "context": {"id": "course-1", "title": "Deep Learning 101"},
            CLAIM + "target_link_uri": f"{self.tool_url}/lti/launch",
            NRPS: {"context_memberships_url": f"{self.url}/memberships", "service_versions": ["2.0"]},
        }
        if exercise:
            claims[CLAIM + "custom"] = {"exercise": exercise}
        if lineitem:
            claims[AGS] = {"scope": [SCORE_SCOPE], "lineitem": self.url + lineitem}
        if role == "deep-link":
            claims[CLAIM + "roles"] = [INSTRUCTOR]
            claims[CLAIM + "message_type"] = "LtiDeepLinkingRequest"
            del claims[CLAIM + "resource_link"]
            claims[DL + "deep_linking_settings"] = {
                "deep_link_return_url": f"{self.url}/deep-link-return", "accept_types": ["ltiResourceLink"],
                "accept_presentation_document_targets": ["iframe", "window"], "data": "opaque-csrf-data-42"}
        claims.update(extra)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(self, claims: dict[str, Any], key: Any = None, kid: str | None = None, alg: str = "RS256") -> str:
        return jwt.encode(claims, key or self.key, algorithm=alg, headers={"kid": kid or self.kid})

    def jwks(self) -> dict[str, Any]:
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**public, "kid": self.kid, "alg": "RS256", "use": "sig"}]}

    # ---- the tool's keys, as the platform sees them
    def verify_tool_jwt(self, token: str, audience: str) -> dict[str, Any]:
        header = jwt.get_unverified_header(token)
        keys = httpx.get(f"{self.tool_url}/lti/jwks", timeout=10).json()["keys"]
        key = next(k for k in keys if k["kid"] == header["kid"])
        return jwt.decode(token, jwt.PyJWK(key, algorithm="RS256").key, algorithms=["RS256"], audience=audience)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def answer(self, status: int, body: bytes | str, content_type: str = "application/json",
                       headers: dict[str, str] | None = None) -> None:
                data = body.encode() if isinstance(body, str) else body
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if parts.path == "/jwks":
                    with platform.lock:
                        platform.jwks_fetches += 1
                    if platform.jwks_answer == "error":
                        return self.answer(500, "{}")
                    if platform.jwks_answer == "drip":
                        return self.drip()
                    return self.answer(200, json.dumps(platform.jwks()))
                if parts.path == "/auth":
                    return self.auth(query)
                if parts.path == "/memberships":
                    return self.memberships(query)
                if parts.path == "/course":  # a course page that frames the tool (the browser tests)
                    return self.answer(200, platform.course_page(query.get("launch", "")), "text/html")
                return self.answer(404, "{}")

            def drip(self) -> None:
                """A JWKS that never quite comes: one byte every 5 s, 60 s in all (each read well within any
                per-read timeout)."""
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "100")
                self.end_headers()
                try:
                    for _ in range(12):
                        self.wfile.write(b" ")
                        self.wfile.flush()
                        time.sleep(5)
                except OSError:  # the tool gave up on it
                    pass

            def auth(self, query: dict[str, str]) -> None:
                expected = {"scope": "openid", "response_type": "id_token", "response_mode": "form_post",
                            "prompt": "none", "client_id": platform.client_id}
                wrong = [k for k, v in expected.items() if query.get(k) != v]
                if wrong or not query.get("nonce") or not query.get("state") or not query.get("login_hint"):
                    return self.answer(400, json.dumps({"error": "invalid_request", "wrong": wrong}))
                claims = platform.claims(query["nonce"], **platform.next_claims)
                token = platform.sign(claims)
                action = html.escape(query["redirect_uri"])
                page = (f'<!doctype html><html><body><form id="f" method="post" action="{action}">'
                        f'<input type="hidden" name="id_token" value="{token}">'
                        f'<input type="hidden" name="state" value="{html.escape(query["state"])}"></form>'
                        '<script>document.getElementById("f").submit()</script></body></html>')
                return self.answer(200, page, "text/html")

            def memberships(self, query: dict[str, str]) -> None:
                if not platform.authorised(self.headers.get("Authorization", ""),
                                           "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"):
                    return self.answer(401, "{}")
                page = int(query.get("page", "0"))
                with platform.lock:
                    platform.membership_pages.append(self.path)
                size = platform.page_size
                chunk = platform.members[page * size:(page + 1) * size]
                headers = {}
                if (page + 1) * size < len(platform.members):
                    headers["Link"] = f'<{platform.url}/memberships?page={page + 1}>; rel="next"'
                body = {"id": f"{platform.url}/memberships", "context": {"id": "course-1"}, "members": chunk}
                return self.answer(200, json.dumps(body), "application/vnd.ims.lti-nrps.v2.membershipcontainer+json",
                                   headers)

            def do_POST(self) -> None:
                parts = urlsplit(self.path)
                data = self.body()
                if parts.path == "/token":
                    return self.token(data)
                if parts.path.endswith("/scores"):
                    return self.score(parts.path, data)
                if parts.path == "/deep-link-return":
                    form = {k: v[0] for k, v in parse_qs(data.decode()).items()}
                    with platform.lock:
                        platform.deep_link_returns.append(form)
                    return self.answer(200, "<!doctype html><p id=done>Content item received</p>", "text/html")
                return self.answer(404, "{}")

            def token(self, data: bytes) -> None:
                if platform.down:
                    with platform.lock:
                        platform.down_hits += 1
                    return self.answer(503, "{}")
                form = {k: v[0] for k, v in parse_qs(data.decode()).items()}
                record = {"form": form, "at": time.time()}
                try:
                    assert form.get("grant_type") == "client_credentials"
                    assert form.get("client_assertion_type") == \
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                    claims = platform.verify_tool_jwt(form["client_assertion"], f"{platform.url}/token")
                    assert claims["iss"] == claims["sub"] == platform.client_id, claims
                    record["claims"] = claims
                except Exception as exc:  # noqa: BLE001 - the test reads why
                    record["error"] = repr(exc)
                    with platform.lock:
                        platform.token_requests.append(record)
                    return self.answer(401, json.dumps({"error": "invalid_client"}))
                with platform.lock:
                    platform.token_requests.append(record)
                    token = secrets.token_urlsafe(16)
                    platform.issued[token] = (form.get("scope", ""), time.time() + platform.token_lifetime)
                return self.answer(200, json.dumps({"access_token": token, "token_type": "Bearer",
                                                    "expires_in": platform.token_lifetime,
                                                    "scope": form.get("scope", "")}))

            def score(self, path: str, data: bytes) -> None:
                with platform.lock:
                    platform.score_posts += 1
                if platform.down:
                    with platform.lock:
                        platform.down_hits += 1
                    return self.answer(503, "{}")
                if not platform.authorised(self.headers.get("Authorization", ""), SCORE_SCOPE):
                    return self.answer(401, "{}")
                if platform.refuse_scores:
                    return self.answer(platform.refuse_scores, json.dumps({"error": "the line item is closed"}))
                with platform.lock:
                    platform.scores.append({"path": path, "body": json.loads(data), "at": time.time(),
                                            "content_type": self.headers.get("Content-Type")})
                return self.answer(200, "{}")

        self.deep_link_returns: list[dict[str, str]] = []
        return Handler

    def authorised(self, header: str, scope: str) -> bool:
        token = header.removeprefix("Bearer ")
        with self.lock:
            found = self.issued.get(token)
        return found is not None and scope in found[0].split() and found[1] > time.time()

    def course_page(self, launch_url: str) -> str:
        return (f'<!doctype html><html><body><h1>Course</h1><iframe id="tool" name="tool" width="900" height="700" '
                f'src="{html.escape(launch_url)}"></iframe></body></html>')


class LtiBrowser:
    """A browser, scripted: its own cookies, following the tool's and the platform's redirects and form posts."""

    def __init__(self, tool_url: str, platform: MockPlatform):
        self.tool_url = tool_url
        self.platform = platform
        self.http = httpx.Client(timeout=120, follow_redirects=False)  # a report page draws its plot: slow under load

    def login(self, **params: str) -> httpx.Response:
        query = {"iss": self.platform.issuer, "login_hint": "hint-1", "target_link_uri": f"{self.tool_url}/lti/launch",
                 "client_id": self.platform.client_id, "lti_message_hint": "m-1", **params}
        return self.http.get(f"{self.tool_url}/lti/login?{urlencode(query)}")

    def state_and_nonce(self) -> tuple[str, str]:
        """Begin a login and return the (state, nonce) the tool sent the platform."""
        answer = self.login()
        assert answer.status_code == 302, answer.text
        query = {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["location"]).query).items()}
        return query["state"], query["nonce"]

    def post_launch(self, id_token: str, state: str) -> httpx.Response:
        return self.http.post(f"{self.tool_url}/lti/launch", data={"id_token": id_token, "state": state})

    def launch(self, **claims: Any) -> httpx.Response:
        """The whole dance: login, the platform's auth answer (its form), the launch; returns the page landed on."""
        self.platform.next_claims = claims
        answer = self.login()
        assert answer.status_code == 302, answer.text
        form = self.http.get(answer.headers["location"])
        assert form.status_code == 200, form.text
        fields = dict(re.findall(r'name="(id_token|state)" value="([^"]*)"', form.text))
        landed = self.post_launch(fields["id_token"], html.unescape(fields["state"]))
        return self.follow(landed)

    def follow(self, answer: httpx.Response) -> httpx.Response:
        for _ in range(5):
            if answer.status_code not in (302, 303):
                return answer
            answer = self.http.get(httpx.URL(self.tool_url).join(answer.headers["location"]))
        return answer

    def close(self) -> None:
        self.http.close()


def launch_id_of(page_url: str) -> str:
    return str(page_url).rstrip("/").rsplit("/", 1)[-1].split("?")[0]


def new_id() -> str:
    return uuid.uuid4().hex
