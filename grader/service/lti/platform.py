"""Talking to a platform over HTTP (httpx): its JWKS, access tokens, scores and the course roster.

- `JwksCache`: a platform's public keys, fetched once and kept; a `kid` not among them fetches the JWKS
  again (at most once per MIN_REFETCH_S per JWKS URL, a failed fetch included, so a stream of made-up kids
  cannot hammer the LMS), each fetch within JWKS_DEADLINE_S in all and under its own URL's lock only.
- `Tokens`: client-credentials access tokens (RFC 7523 client assertion signed by the tool's key), one per
  (token URL, client id, scopes), reused until shortly before it expires; concurrent callers wait for one
  request instead of each making their own.
- `post_score`, `roster`: AGS and NRPS calls with such a token.
"""

from __future__ import annotations

import asyncio
import json
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
JWKS_DEADLINE_S = 5.0  # a JWKS fetch ends within this long in all, however the platform answers
JWKS_MAX_BYTES = 256 * 1024
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
    """The platforms' keys, one JWKS URL at a time: a fetch for one URL never waits on another's; a fetch,
    whether it worked or not, is not made again for the same URL within MIN_REFETCH_S (a failure is
    remembered that long, so a stream of launches with made-up kids makes at most one request per interval
    however the platform answers); and a fetch ends within JWKS_DEADLINE_S in all, however slowly the
    platform answers (httpx's own timeout is per read), and reads at most JWKS_MAX_BYTES."""

    def __init__(self, deadline_s: float | None = None):
        self.deadline_s = JWKS_DEADLINE_S if deadline_s is None else deadline_s
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._sets: dict[str, tuple[float, dict[str, Any]]] = {}  # jwks url -> (fetched at, kid -> PyJWK)
        self._failed: dict[str, tuple[float, str]] = {}  # jwks url -> (failed at, why)
        self._last_fetch: dict[str, float] = {}
        self.fetches = 0  # how many JWKS requests this process began

    def key(self, jwks_url: str, kid: str) -> Any | None:
        """The platform's key named `kid` (a PyJWK), or None when its JWKS, even fetched again, has none;
        PlatformError when the JWKS could not be read (now, or in the last MIN_REFETCH_S)."""
        found = self._cached(jwks_url, kid)
        if found is not None:
            return found
        with self._guard:
            lock = self._locks.setdefault(jwks_url, threading.Lock())
        # a launch waits for a fetch of its own platform's JWKS already under way, and never longer than it can last
        if not lock.acquire(timeout=self.deadline_s + 1.0):
            raise PlatformError(f"the platform's JWKS at {jwks_url} is being read already and did not come")
        try:
            found = self._cached(jwks_url, kid)
            if found is not None:
                return found
            now = time.monotonic()
            if now - self._last_fetch.get(jwks_url, -1e9) < MIN_REFETCH_S:
                failed = self._failed.get(jwks_url)
                if failed is not None:
                    raise PlatformError(failed[1])
                return None
            self._last_fetch[jwks_url] = now
            self.fetches += 1
            try:
                keys = _parse_jwks(_fetch(jwks_url, self.deadline_s))
            except PlatformError as exc:
                self._failed[jwks_url] = (now, str(exc))
                raise
            self._failed.pop(jwks_url, None)
            self._sets[jwks_url] = (now, keys)
            return keys.get(kid)
        finally:
            lock.release()

    def _cached(self, jwks_url: str, kid: str) -> Any | None:
        cached = self._sets.get(jwks_url)
        if cached is not None and time.monotonic() - cached[0] < JWKS_TTL_S and kid in cached[1]:
            return cached[1][kid]
        return None


def _fetch(jwks_url: str, deadline_s: float) -> bytes:
    """The body at jwks_url, read within deadline_s in all (connecting, headers and body) and at most
    JWKS_MAX_BYTES: asyncio cancels the request wherever it is at the deadline, which a per-read timeout
    cannot do against a server that sends a byte now and then."""

    async def get() -> bytes:
        async with httpx.AsyncClient(timeout=deadline_s, follow_redirects=False,
                                     headers={"User-Agent": "dl-grader-lti"}) as http, \
                http.stream("GET", jwks_url) as answer:
            if answer.status_code != 200:
                raise PlatformError(f"the platform's JWKS at {jwks_url} answered HTTP {answer.status_code}",
                                    answer.status_code)
            body = bytearray()
            async for chunk in answer.aiter_bytes():
                body += chunk
                if len(body) > JWKS_MAX_BYTES:
                    raise PlatformError(f"the platform's JWKS at {jwks_url} is larger than "
                                        f"{JWKS_MAX_BYTES // 1024} KiB")
            return bytes(body)

    async def within() -> bytes:
        return await asyncio.wait_for(get(), deadline_s)

    try:
        return asyncio.run(within())
    except TimeoutError:
        raise PlatformError(f"the platform's JWKS at {jwks_url} did not come within {deadline_s:g} s") from None
    except httpx.HTTPError as exc:
        raise PlatformError(f"the platform's JWKS at {jwks_url} could not be read ({type(exc).__name__})") from None


def _parse_jwks(body: bytes) -> dict[str, Any]:
    try:
        entries = json.loads(body).get("keys", [])
    except (ValueError, AttributeError):
        raise PlatformError("the platform's JWKS is not a JSON key set") from None
    keys = {}
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("kid") and entry.get("kty") == "RSA":
            try:
                keys[str(entry["kid"])] = jwt.PyJWK(entry, algorithm="RS256")
            except jwt.PyJWTError:
                continue
    return keys


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
