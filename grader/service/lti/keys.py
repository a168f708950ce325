"""The tool's RSA keys: made on first use, kept in the database, rotated by `grade lti rotate-key`.

The newest key that is not retired signs (deep-linking responses, client assertions); /lti/jwks publishes
every key not retired, so a platform that cached the old key keeps verifying while it fetches the new one.
A rotation retires the keys older than the one it replaces: the JWKS holds at most two keys. The private key
never leaves this module: nothing prints or logs it, and `KeyRing` hands out signatures, not keys.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select, update

from grader.service.lti.models import LtiKey

KEY_BITS = 2048
CACHE_S = 5.0  # a key rotated by the CLI reaches a running service within this long


def _new_key() -> LtiKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode("ascii")
    return LtiKey(kid=secrets.token_hex(12), private_pem=pem, created_at=time.time())


class KeyRing:
    def __init__(self, sessions: Any):
        self._sessions = sessions  # a sessionmaker
        self._lock = threading.Lock()
        self._loaded: tuple[float, list[tuple[str, Any]]] | None = None  # (until, [(kid, private key)] newest first)

    def _keys(self) -> list[tuple[str, Any]]:
        with self._lock:
            if self._loaded is not None and self._loaded[0] > time.monotonic():
                return self._loaded[1]
            with self._sessions.begin() as session:
                rows = list(session.scalars(select(LtiKey).where(LtiKey.retired_at.is_(None))
                                            .order_by(LtiKey.created_at.desc())))
                if not rows:  # first use: one key, made here (two processes racing: both keys stay valid)
                    row = _new_key()
                    session.add(row)
                    rows = [row]
                keys = [(r.kid, serialization.load_pem_private_key(r.private_pem.encode("ascii"), None))
                        for r in rows]
            self._loaded = (time.monotonic() + CACHE_S, keys)
            return keys

    def forget(self) -> None:
        with self._lock:
            self._loaded = None

    def current_kid(self) -> str:
        return self._keys()[0][0]

    def sign(self, claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
        """A compact RS256 JWT of `claims`, signed by the current key, its `kid` in the header."""
        kid, key = self._keys()[0]
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid, **(headers or {})})

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, key in self._keys():
            jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
            keys.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})
        return {"keys": keys}

    def rotate(self) -> tuple[str, list[str]]:
        """A new current key; the keys older than the one it replaces are retired. (new kid, retired kids)"""
        with self._sessions.begin() as session:
            rows = list(session.scalars(select(LtiKey).where(LtiKey.retired_at.is_(None))
                                        .order_by(LtiKey.created_at.desc())))
            retired = [r.kid for r in rows[1:]]
            if retired:
                session.execute(update(LtiKey).where(LtiKey.kid.in_(retired)).values(retired_at=time.time()))
            row = _new_key()
            session.add(row)
            kid = row.kid
        self.forget()
        return kid, retired

    def listing(self) -> list[tuple[str, float, float | None]]:
        """(kid, created, retired) of every key, newest first: never the key itself."""
        with self._sessions.begin() as session:
            return [(r.kid, r.created_at, r.retired_at)
                    for r in session.scalars(select(LtiKey).order_by(LtiKey.created_at.desc()))]
