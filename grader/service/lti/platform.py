"""Talking to a platform over HTTP (httpx): its JWKS, access tokens, scores and the course roster.

- `JwksCache`: a platform's public keys, fetched once and kept; a `kid` not among them fetches the JWKS
  again (at most once per MIN_REFETCH_S per platform, so a stream of made-up kids cannot hammer the LMS).
- `Tokens`: client-credentials access tokens (RFC 7523 client assertion signed by the tool's key), one per
  (token URL, client id, scopes), reused until shortly before it expires; concurrent callers wait for one
  request instead of each making their own.
- `post_score`, `roster`: AGS and NRPS calls with such a token.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from grader.service.lti.keys import KeyRing

SCORE_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
NRPS_SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
SCORE_TYPE = "application/vnd.ims.lis.v1.score+json"
MEMBERSHIP_TYPE = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MIN_REFETCH_S = 5.0
JWKS_TTL_S = 3600.0
TOKEN_MARGIN_S = 30.0  # a token is renewed this long before it expires
HTTP_TIMEOUT_S = 10.0
MAX_ROSTER_PAGES = 100


class PlatformError(Exception):
    """A call to the platform failed; `status` is its HTTP status where it answered one."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def client() -> httpx.Client:
    return httpx.Client(timeout=HTTP_TIMEOUT_S, follow_redirects=False,
                        headers={"User-Agent": "dl-grader-lti"}, limits=httpx.Limits(max_connections=32))


class JwksCache:
    def __init__(self, http: httpx.Client):
        self.http = http
        self._lock = threading.Lock()
        self._sets: dict[str, tuple[float, dict[str, Any]]] = {}  # jwks url -> (fetched at, kid -> PyJWK)
        self._last_fetch: dict[str, float] = {}

    def key(self, jwks_url: str, kid: str) -> Any | None:
        """The platform's key named `kid` (a PyJWK), or None when its JWKS, even fetched again, has none."""
        now = time.monotonic()
        cached = self._sets.get(jwks_url)
        if cached is not None and now - cached[0] < JWKS_TTL_S and kid in cached[1]:
            return cached[1][kid]
        with self._lock:
            cached = self._sets.get(jwks_url)
            if cached is not None and now - cached[0] < JWKS_TTL_S and kid in cached[1]:
                return cached[1][kid]
            if now - self._last_fetch.get(jwks_url, -1e9) < MIN_REFETCH_S and cached is not None:
                return None
            self._last_fetch[jwks_url] = now
            try:
                answer = self.http.get(jwks_url)
                answer.raise_for_status()
                keys = {}
                for entry in answer.json().get("keys", []):
                    if isinstance(entry, dict) and entry.get("kid") and entry.get("kty") == "RSA":
                        try:
                            keys[str(entry["kid"])] = jwt.PyJWK(entry, algorithm="RS256")
                        except jwt.PyJWTError:
                            continue
            except (httpx.HTTPError, ValueError, AttributeError) as exc:
                raise PlatformError(f"the platform's JWKS at {jwks_url} could not be read ({exc})") from None
            self._sets[jwks_url] = (now, keys)
            return keys.get(kid)


@dataclass
class _Token:
    value: str
    until: float


class Tokens:
    def __init__(self, http: httpx.Client, keys: KeyRing):
        self.http = http
        self.keys = keys
        self._tokens: dict[tuple[str, str, str], _Token] = {}
        self._locks: dict[tuple[str, str, str], threading.Lock] = {}
        self._guard = threading.Lock()
        self.requests = 0  # how many token requests this process made (the benchmark reads it)

    def get(self, token_url: str, client_id: str, scopes: tuple[str, ...]) -> str:
        key = (token_url, client_id, " ".join(sorted(scopes)))
        held = self._tokens.get(key)
        if held is not None and held.until > time.monotonic():
            return held.value
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            held = self._tokens.get(key)
            if held is not None and held.until > time.monotonic():
                return held.value
            token = self._request(token_url, client_id, key[2])
            self._tokens[key] = token
            return token.value

    def drop(self, token_url: str, client_id: str, scopes: tuple[str, ...]) -> None:
        self._tokens.pop((token_url, client_id, " ".join(sorted(scopes))), None)

    def _request(self, token_url: str, client_id: str, scope: str) -> _Token:
        now = int(time.time())
        assertion = self.keys.sign({"iss": client_id, "sub": client_id, "aud": token_url, "iat": now,
                                    "exp": now + 300, "jti": uuid.uuid4().hex})
        self.requests += 1
        try:
            answer = self.http.post(token_url, data={
                "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion, "scope": scope})
        except httpx.HTTPError as exc:
            raise PlatformError(f"the platform's token URL did not answer ({type(exc).__name__})") from None
        if answer.status_code != 200:
            raise PlatformError(f"the platform's token URL answered HTTP {answer.status_code}", answer.status_code)
        try:
            body = answer.json()
            value = str(body["access_token"])
            lifetime = float(body.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError):
            raise PlatformError("the platform's token URL answered no access_token") from None
        return _Token(value, time.monotonic() + max(0.0, lifetime - TOKEN_MARGIN_S))


def scores_url(lineitem: str) -> str:
    """{lineitem}/scores, keeping a query string where the line item's URL has one (as Moodle's do)."""
    path, _, query = lineitem.partition("?")
    return f"{path.rstrip('/')}/scores" + (f"?{query}" if query else "")


def post_score(http: httpx.Client, tokens: Tokens, platform: Any, lineitem: str, body: str) -> None:
    """POST one score; PlatformError (with the status, where one came) when it was not taken."""
    scopes = (SCORE_SCOPE,)
    for attempt in range(2):
        token = tokens.get(platform.token_url, platform.client_id, scopes)
        try:
            answer = http.post(scores_url(lineitem), content=body.encode("utf-8"),
                               headers={"Content-Type": SCORE_TYPE, "Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            raise PlatformError(f"the platform's score endpoint did not answer ({type(exc).__name__})") from None
        if answer.status_code == 401 and attempt == 0:  # the token was revoked or expired early: a new one, once
            tokens.drop(platform.token_url, platform.client_id, scopes)
            continue
        if 200 <= answer.status_code < 300:
            return
        detail = " ".join(answer.text.split())[:200]
        raise PlatformError(f"the platform answered HTTP {answer.status_code}" + (f": {detail}" if detail else ""),
                            answer.status_code)


NEXT_LINK = re.compile(r'<([^>]+)>\s*;[^,]*rel="?next"?', re.IGNORECASE)


def roster(http: httpx.Client, tokens: Tokens, platform: Any, memberships_url: str) -> list[dict[str, Any]]:
    """Every member of the context (NRPS), following `Link: <...>; rel="next"` page after page."""
    token = tokens.get(platform.token_url, platform.client_id, (NRPS_SCOPE,))
    members: list[dict[str, Any]] = []
    url: str | None = memberships_url
    for _ in range(MAX_ROSTER_PAGES):
        if url is None:
            break
        try:
            answer = http.get(url, headers={"Accept": MEMBERSHIP_TYPE, "Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            raise PlatformError(f"the roster did not answer ({type(exc).__name__})") from None
        if answer.status_code != 200:
            raise PlatformError(f"the roster answered HTTP {answer.status_code}", answer.status_code)
        try:
            members.extend(m for m in answer.json().get("members", []) if isinstance(m, dict))
        except (ValueError, AttributeError):
            raise PlatformError("the roster's answer is not JSON") from None
        found = NEXT_LINK.search(answer.headers.get("link", ""))
        url = found.group(1) if found else None
    return members
