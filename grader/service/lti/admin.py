"""What `grade lti ...` does (the CLI only parses its arguments and prints these results)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from grader.service.lti.keys import KeyRing
from grader.service.lti.store import LtiStore, Platform


@contextmanager
def _store(db_url: str | None) -> Iterator[LtiStore]:
    from grader.service.config import open_store

    engine, _ = open_store(db_url)
    try:
        yield LtiStore(engine)
    finally:
        engine.dispose()


LOOPBACK = ("localhost", "127.0.0.1", "::1")


def check_url(name: str, url: str, https: bool = False) -> str:
    """An http(s) URL with a host, or ValueError in one line; with `https`, an https:// one unless its host is
    loopback (a platform on this machine, as the tests' is)."""
    try:
        parts = urlsplit(url.strip())
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        host = (parts.hostname or "").lower()
    except ValueError:
        ok, host = False, ""
    if not ok:
        raise ValueError(f"--{name} {url!r} is not an http:// or https:// URL.")
    if https and parts.scheme != "https" and host not in LOOPBACK:
        raise ValueError(f"--{name} {url!r} must be an https:// URL (plain http only for a platform on this "
                         "machine: localhost, 127.0.0.1, ::1).")
    return url.strip()


def tool_urls(public_url: str) -> list[tuple[str, str]]:
    """The URLs an LMS asks for when the tool is registered, under the public URL."""
    return [("login initiation (OIDC login) URL", f"{public_url}/lti/login"),
            ("redirect URI (launch) / target link URI", f"{public_url}/lti/launch"),
            ("public keyset (JWKS) URL", f"{public_url}/lti/jwks"),
            ("deep linking URL", f"{public_url}/lti/launch")]


def add_platform(db_url: str | None, frame_origins: tuple[str, ...] = (), **fields: str) -> Platform:
    from grader.service.pages import origin_of

    origins = []
    for given in frame_origins:
        origin = origin_of(check_url("frame-origin", given))
        if not origin:
            raise ValueError(f"--frame-origin {given!r} is not an http:// or https:// origin.")
        origins.append(origin)
    for name in ("auth_url", "token_url", "jwks_url"):
        fields[name] = check_url(name.replace("_", "-"), fields[name], https=True)
    for name in ("issuer", "client_id", "deployment_id"):
        fields[name] = fields[name].strip()
        if not fields[name] or len(fields[name]) > 256:
            raise ValueError(f"--{name.replace('_', '-')} must be 1-256 characters.")
    with _store(db_url) as store:
        KeyRing(store.sessions).current_kid()  # the tool's key, made now if this is the first use
        return store.add_platform(**fields, frame_origins=tuple(origins))


def platforms(db_url: str | None) -> list[Platform]:
    with _store(db_url) as store:
        return store.platforms()


def remove_platform(db_url: str | None, platform_id: int) -> Platform | None:
    with _store(db_url) as store:
        return store.remove_platform(platform_id)


def rotate_key(db_url: str | None) -> tuple[str, list[str], list[tuple[str, float, float | None]]]:
    with _store(db_url) as store:
        keys = KeyRing(store.sessions)
        keys.current_kid()
        new, retired = keys.rotate()
        return new, retired, keys.listing()


def describe(platform: Platform) -> list[tuple[str, Any]]:
    return [("issuer", platform.issuer), ("client id", platform.client_id), ("deployment id", platform.deployment_id),
            ("auth URL", platform.auth_url), ("token URL", platform.token_url), ("JWKS URL", platform.jwks_url),
            ("frame origins", " ".join(platform.frame_origins) or "-")]
