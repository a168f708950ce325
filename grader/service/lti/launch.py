"""The OIDC login initiation and the launch's validation, each refusal one sentence for a person.

A launch is taken only when every one of these holds (docs/integration/lti.md lists them with the refusal
each gives): the `state` is one this tool issued, unused and unexpired (it is used up now, whatever
follows); the JWT is RS256 (never `none`, never HMAC) and signed by the key its `kid` names in the
platform's JWKS; `iss` is the issuer that login began with; `aud` holds the client id (and `azp` is it where
`aud` names several); `exp`, `iat` (not in the future) and `nbf` hold, with LEEWAY_S for clocks; the `nonce`
is the one issued with this state; the deployment is registered; the LTI version is 1.3.0; the message type is
LtiResourceLinkRequest or LtiDeepLinkingRequest; `sub` and `roles` are present (and `resource_link.id` for a
resource link, the settings' `deep_link_return_url` for deep linking).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import jwt

from grader.service.lti.platform import JwksCache, PlatformError
from grader.service.lti.store import LtiStore, Platform

LEEWAY_S = 60
CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
DL_CLAIM = "https://purl.imsglobal.org/spec/lti-dl/claim/"
AGS_CLAIM = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS_CLAIM = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
RESOURCE_LINK = "LtiResourceLinkRequest"
DEEP_LINKING = "LtiDeepLinkingRequest"
MEMBERSHIP = "http://purl.imsglobal.org/vocab/lis/v2/membership"
# the course (context) staff roles that open the class page, and only those: an institution role
# (.../institution/person#Instructor: a person who teaches somewhere, perhaps a learner here) says nothing of
# this course, and a Mentor (an observer, a parent) is not staff
STAFF_ROLES = frozenset((MEMBERSHIP + "#Instructor", MEMBERSHIP + "#ContentDeveloper", MEMBERSHIP + "#Administrator",
                         MEMBERSHIP + "/Instructor#TeachingAssistant"))
AGAIN = "Open the assignment from your course again."


class Refused(Exception):
    """A launch or login this tool does not take: the HTTP status, and one line for the person."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Accepted:
    platform: Platform
    claims: dict[str, Any]

    @property
    def message_type(self) -> str:
        return self.claims[CLAIM + "message_type"]

    @property
    def instructor(self) -> bool:
        return any(role in STAFF_ROLES for role in self.claims.get(CLAIM + "roles", []) if isinstance(role, str))


def login_redirect(store: LtiStore, params: dict[str, str], redirect_uri: str) -> str:
    """The URL the browser is sent to: the platform's auth URL with a fresh state and nonce."""
    issuer, client_id = params.get("iss", ""), params.get("client_id", "")
    login_hint, target = params.get("login_hint", ""), params.get("target_link_uri", "")
    if not issuer or not login_hint or not target:
        raise Refused(400, "This sign-in from your course is incomplete (iss, login_hint and target_link_uri are "
                           "needed). " + AGAIN)
    candidates = [p for p in store.platforms() if p.issuer == issuer and (not client_id or p.client_id == client_id)]
    deployment = params.get("lti_deployment_id")
    if deployment:
        candidates = [p for p in candidates if p.deployment_id == deployment] or candidates
    if not candidates or len({p.client_id for p in candidates}) != 1:
        raise Refused(400, "This course's platform is not registered with the grader; ask your instructor to "
                           "run `grade lti add-platform`.")
    platform = candidates[0]
    state, nonce = store.new_login(platform.issuer, platform.client_id)
    query = {"scope": "openid", "response_type": "id_token", "response_mode": "form_post", "prompt": "none",
             "client_id": platform.client_id, "redirect_uri": redirect_uri, "login_hint": login_hint,
             "state": state, "nonce": nonce}
    if params.get("lti_message_hint"):
        query["lti_message_hint"] = params["lti_message_hint"]
    separator = "&" if "?" in platform.auth_url else "?"
    return platform.auth_url + separator + urlencode(query)


def validate(store: LtiStore, jwks: JwksCache, id_token: str, state: str) -> Accepted:
    if not id_token or not state or len(id_token) > 64_000 or len(state) > 200:
        raise Refused(400, "This launch carries no sign-in from your course. " + AGAIN)
    login = store.use_login(state)  # used up now, whatever follows
    if login is None:
        raise Refused(400, "This launch's sign-in has expired or was already used. " + AGAIN)
    try:
        header = jwt.get_unverified_header(id_token)
        unverified = jwt.decode(id_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise Refused(400, "This launch's sign-in is not a readable token. " + AGAIN) from None
    if header.get("alg") != "RS256":
        raise Refused(401, "This launch's sign-in is not signed the way LTI 1.3 requires (RS256). " + AGAIN)
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise Refused(401, "This launch's sign-in names no signing key (kid). " + AGAIN)
    if unverified.get("iss") != login.issuer:
        raise Refused(401, "This launch comes from another platform than the sign-in it answers. " + AGAIN)
    platforms = [p for p in store.platforms() if p.issuer == login.issuer and p.client_id == login.client_id]
    if not platforms:
        raise Refused(403, "This course's platform is no longer registered with the grader; ask your instructor.")
    try:
        key = jwks.key(platforms[0].jwks_url, kid)
    except PlatformError:
        raise Refused(502, "The grader could not read your course platform's keys right now; try again in a "
                           "minute.") from None
    if key is None:
        raise Refused(401, "This launch is signed by a key your course platform does not publish. " + AGAIN)
    try:
        claims = jwt.decode(id_token, key.key, algorithms=["RS256"], audience=login.client_id, issuer=login.issuer,
                            leeway=LEEWAY_S, options={"require": ["exp", "iat", "iss", "aud", "sub", "nonce"]})
    except jwt.ExpiredSignatureError:
        raise Refused(401, "This launch's sign-in has expired. " + AGAIN) from None
    except jwt.ImmatureSignatureError:
        raise Refused(401, "This launch's sign-in is dated in the future; check the platform's clock. " + AGAIN) \
            from None
    except jwt.InvalidAudienceError:
        raise Refused(401, "This launch was meant for another tool (wrong audience). " + AGAIN) from None
    except jwt.InvalidIssuerError:
        raise Refused(401, "This launch comes from another platform than the sign-in it answers. " + AGAIN) from None
    except jwt.MissingRequiredClaimError as exc:
        if exc.claim == "sub":
            raise Refused(400, "This launch does not say who you are (no sub). " + AGAIN) from None
        raise Refused(401, f"This launch's sign-in lacks its {exc.claim} claim. " + AGAIN) from None
    except jwt.InvalidSignatureError:
        raise Refused(401, "This launch's signature does not match its content. " + AGAIN) from None
    except jwt.PyJWTError:
        raise Refused(401, "This launch's sign-in could not be verified. " + AGAIN) from None
    audience = claims["aud"]
    if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != login.client_id:
        raise Refused(401, "This launch was meant for another tool (azp). " + AGAIN)
    if "azp" in claims and claims["azp"] != login.client_id:
        raise Refused(401, "This launch was meant for another tool (azp). " + AGAIN)
    if claims.get("nonce") != login.nonce:
        raise Refused(401, "This launch does not answer the sign-in the grader began (nonce). " + AGAIN)
    deployment = claims.get(CLAIM + "deployment_id")
    platform = next((p for p in platforms if p.deployment_id == deployment), None)
    if platform is None:
        raise Refused(403, "This course's deployment of the grader is not registered; ask your instructor to run "
                           "`grade lti add-platform` for it.")
    if claims.get(CLAIM + "version") != "1.3.0":
        raise Refused(400, "This launch is not LTI 1.3.0. " + AGAIN)
    message_type = claims.get(CLAIM + "message_type")
    if message_type not in (RESOURCE_LINK, DEEP_LINKING):
        raise Refused(400, "The grader does not handle this kind of launch. " + AGAIN)
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise Refused(400, "This launch does not say who you are (no sub). " + AGAIN)
    if not isinstance(claims.get(CLAIM + "roles"), list):
        raise Refused(400, "This launch does not say what your role in the course is. " + AGAIN)
    if message_type == RESOURCE_LINK:
        link = claims.get(CLAIM + "resource_link")
        if not isinstance(link, dict) or not link.get("id"):
            raise Refused(400, "This launch names no assignment (resource_link.id). " + AGAIN)
    else:
        settings = claims.get(DL_CLAIM + "deep_linking_settings")
        if not isinstance(settings, dict) or not isinstance(settings.get("deep_link_return_url"), str):
            raise Refused(400, "This content-selection launch says nowhere to return to. " + AGAIN)
    return Accepted(platform, claims)
