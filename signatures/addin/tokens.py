"""Validating the Entra access token an Outlook add-in sends (NAA or Office SSO).

Checks, in order: the header names RS256 and a `kid`; the token's `tid` is a GUID of an allowed tenant (before
any key is fetched for it); the signature verifies against that tenant's published keys (cached, refetched on an
unknown `kid` at most every `min_refetch` seconds); `iss` is the tenant's v2 issuer (or v1 `sts.windows.net`);
`aud` is the add-in API's client id, `api://<client id>`, or the manifest's form `api://<public host>/<client id>`;
`exp`/`nbf` hold (60 s leeway); `scp` carries the expected scope. Any failure is a 401 with a reason that names
the check, never the token.

Who the user is comes only from claims the tenant vouches for (`identity`): `oid`, and the admin-managed
`upn`/`preferred_username` of a member of the tenant — never `email` (unverified: a user or a guest's home
tenant may set it) and never a guest's names.
"""

from __future__ import annotations

import re
import ssl
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import jwt
from jwt.algorithms import RSAAlgorithm

from service.connections.microsoft import endpoint
from service.errors import Unauthorized
from service.settings import Settings

GUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
LEEWAY = 60


class TokenValidator:
    def __init__(self, settings: Settings, *, tenant_allowed: Callable[[str], bool], min_refetch: float = 0.5):
        self.settings = settings
        self.tenant_allowed = tenant_allowed
        self.min_refetch = min_refetch
        self._keys: dict[str, dict[str, object]] = {}  # tid -> {kid: public key}
        self._fetched_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def _jwks_uri(self, tid: str) -> str:
        return f"{endpoint(self.settings, 'authority')}/{tid}/discovery/v2.0/keys"

    def _fetch(self, tid: str) -> dict[str, object]:
        verify: bool | ssl.SSLContext = True
        if self.settings.ms_ca_bundle:
            verify = ssl.create_default_context(cafile=self.settings.ms_ca_bundle)
        try:
            with httpx.Client(verify=verify, trust_env=not self.settings.ms_ca_bundle, timeout=10) as http:
                resp = http.get(self._jwks_uri(tid))
                resp.raise_for_status()
                body = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise Unauthorized("The tenant's signing keys could not be fetched; try again shortly.") from exc
        keys: dict[str, object] = {}
        for jwk in body.get("keys") or []:
            if jwk.get("kty") == "RSA" and jwk.get("kid"):
                keys[jwk["kid"]] = RSAAlgorithm.from_jwk(jwk)
        return keys

    def _key(self, tid: str, kid: str):
        with self._lock:
            key = self._keys.get(tid, {}).get(kid)
            if key is not None:
                return key
            if time.monotonic() - self._fetched_at.get(tid, -1e9) < self.min_refetch:
                return None
            self._fetched_at[tid] = time.monotonic()
        keys = self._fetch(tid)  # keys rotate: an unknown kid means fetch again
        with self._lock:
            self._keys[tid] = keys
        return keys.get(kid)

    def validate(self, token: str) -> dict:
        client_id = self.settings.addin_client_id
        if not client_id:
            raise Unauthorized("The add-in is not configured: set RELAIS_ADDIN_CLIENT_ID.")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise Unauthorized("The token is not a well-formed JWT.") from exc
        if header.get("alg") != "RS256" or not header.get("kid"):
            raise Unauthorized("The token must be signed with RS256 and name its key.")
        tid = str(unverified.get("tid") or "").lower()
        if not GUID_RE.match(tid) or not self.tenant_allowed(tid):
            raise Unauthorized("The token's tenant is not allowed to use this add-in.")
        key = self._key(tid, header["kid"])
        if key is None:
            raise Unauthorized("The token was signed with a key the tenant does not publish.")
        host = endpoint(self.settings, "authority")
        try:
            claims = jwt.decode(
                token, key, algorithms=["RS256"], audience=audiences(self.settings), leeway=LEEWAY,
                options={"require": ["exp", "nbf", "iss", "aud", "tid"], "verify_iss": False},
            )  # fmt: skip
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("The token has expired.") from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthorized("The token was issued for another application (audience).") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"The token is invalid ({type(exc).__name__}).") from exc
        issuers = {f"{host}/{tid}/v2.0", f"https://sts.windows.net/{tid}/"}
        if claims.get("iss") not in issuers:
            raise Unauthorized("The token's issuer does not match its tenant.")
        scopes = str(claims.get("scp") or "").split()
        if self.settings.addin_scope not in scopes:
            raise Unauthorized(f"The token lacks the delegated scope {self.settings.addin_scope!r}.")
        if not claims.get("oid"):
            raise Unauthorized("The token names no user (oid).")
        return claims


def audiences(settings: Settings) -> list[str]:
    """The `aud` values the add-in API answers to: its client id, and the Application ID URIs Entra issues
    tokens for — `api://<client id>` and the manifest's `api://<public host>/<client id>` (WebApplicationInfo)."""
    client_id = settings.addin_client_id
    host = urlsplit(settings.public_base_url).netloc
    return [client_id, f"api://{client_id}", f"api://{host}/{client_id}"]


def identity(claims: dict) -> tuple[str, set[str]]:
    """The user's `oid`, and the sign-in names that may identify them when the directory lacks the oid: the
    `upn`/`preferred_username` of a member of the issuing tenant (an `idp` claim marks a guest, whose names
    their home tenant controls). `email` is never used."""
    names: set[str] = set()
    if not claims.get("idp"):
        names = {str(claims.get(k) or "").strip().lower() for k in ("upn", "preferred_username")} - {""}
    return str(claims["oid"]), names
