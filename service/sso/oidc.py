"""OpenID Connect with Entra ID and Google through Authlib: the provider's discovery document, the authorization
URL (code flow, PKCE S256, state, nonce), the code exchange, and the ID token checked against the provider's JWKS
(signature, issuer, audience, nonce, exp/iat; Entra's `tid`, Google's `hd` and `email_verified`).

Entra's host comes from `ms_cloud` / `ms_authority_host` (the same as the connections'), with `ms_ca_bundle`;
Google's issuer from `google_accounts_url`. Discovery documents and key sets are cached for an hour per URL; a key
id that is not in the cached set fetches it again (keys rotate).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from service.connections.microsoft import endpoint
from service.page_strings import N_
from service.settings import Settings
from service.sso.models import SsoConfig, SsoProvider

log = logging.getLogger(__name__)

SCOPES = "openid email profile"
CALLBACK_PATH = "/sign-in/sso/callback"
CACHE_SECONDS = 3600.0
LEEWAY_SECONDS = 120
PROVIDER_NAMES = {SsoProvider.microsoft: "Microsoft", SsoProvider.google: "Google"}


class SsoUnavailable(Exception):
    """The identity provider could not be reached, or answered with a server error: try again later."""


class SsoRefused(Exception):
    """The identity provider refused the sign-in, or what it sent does not pass the checks. `message` says why, in
    words for the person signing in; `detail` is for the log (never a secret)."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message)
        self.message, self.detail = message, detail


@dataclass(frozen=True)
class Identity:
    """Who the ID token says signed in."""

    issuer: str
    subject: str  # Entra: the object id (oid) in its tenant; Google: sub
    email: str
    name: str
    groups: tuple[str, ...]  # Entra's `groups` claim (object ids); Google sends none


@dataclass(frozen=True)
class Authorization:
    url: str
    state: str
    nonce: str
    code_verifier: str


def redirect_uri(settings: Settings) -> str:
    return settings.public_base_url.rstrip("/") + CALLBACK_PATH


def provider_origins(settings: Settings) -> list[str]:
    """Where the sign-in form may send the browser: the "Continue with" button posts to /sign-in/sso, which redirects
    to the provider, and a page's CSP form-action covers the redirects that follow a form."""
    from urllib.parse import urlsplit

    urls = (endpoint(settings, "authority"), settings.google_accounts_url)
    return sorted({f"{u.scheme}://{u.netloc}" for u in map(urlsplit, urls) if u.scheme in ("http", "https")})


def discovery_url(config: SsoConfig, settings: Settings) -> str:
    if config.provider == SsoProvider.microsoft:
        return f"{endpoint(settings, 'authority')}/{config.tenant_id}/v2.0/.well-known/openid-configuration"
    return settings.google_accounts_url.rstrip("/") + "/.well-known/openid-configuration"


def _verify(config: SsoConfig, settings: Settings) -> str | bool:
    if config.provider == SsoProvider.microsoft and settings.ms_ca_bundle:
        return settings.ms_ca_bundle
    return True


def _http(config: SsoConfig, settings: Settings, **kwargs: Any) -> OAuth2Session:
    session = OAuth2Session(**kwargs)
    verify = _verify(config, settings)
    if verify is not True:
        session.trust_env = False  # REQUESTS_CA_BUNDLE would override `verify` otherwise
    session.verify = verify
    return session


# ---------------------------------------------------------------- discovery and keys (cached)

_cache: dict[str, tuple[float, dict[str, Any]]] = {}
_cache_lock = threading.Lock()


def _get_json(config: SsoConfig, settings: Settings, url: str, *, fresh: bool = False) -> dict[str, Any]:
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(url)
    if hit and not fresh and hit[0] > now:
        return hit[1]
    try:
        with _http(config, settings) as http:
            resp = http.get(url, timeout=settings.sso_timeout_s, withhold_token=True)
    except OSError as exc:  # requests' errors are OSErrors, and so is a CA bundle that cannot be read
        log.warning("service.sso.provider_unreachable", extra={"url": url, "error": str(exc)[:200]})
        raise SsoUnavailable(N_("%(provider)s could not be reached.")) from exc
    if resp.status_code >= 500 or resp.status_code == 429:
        log.warning("service.sso.provider_error", extra={"url": url, "status": resp.status_code})
        raise SsoUnavailable(N_("%(provider)s answered with an error."))
    try:
        doc = resp.json()
    except ValueError:
        doc = None
    if resp.status_code != 200 or not isinstance(doc, dict):
        log.warning("service.sso.discovery_refused", extra={"url": url, "status": resp.status_code})
        raise SsoRefused(
            N_(
                "%(provider)s does not know this single sign-on configuration. Ask your administrator to check the "
                "tenant id on the Single sign-on page."
            ),
            f"{url} answered {resp.status_code}",
        )
    with _cache_lock:
        _cache[url] = (now + CACHE_SECONDS, doc)
    return doc


def metadata(config: SsoConfig, settings: Settings) -> dict[str, Any]:
    doc = _get_json(config, settings, discovery_url(config, settings))
    for key in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(doc.get(key), str):
            raise SsoUnavailable(N_("%(provider)s's discovery document is incomplete."))
    return doc


def _key_set(config: SsoConfig, settings: Settings, meta: dict[str, Any], *, fresh: bool = False) -> KeySet:
    jwks = _get_json(config, settings, meta["jwks_uri"], fresh=fresh)
    try:
        return KeySet.import_key_set(jwks)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise SsoUnavailable(N_("%(provider)s's signing keys cannot be read.")) from exc


def _decode(config: SsoConfig, settings: Settings, meta: dict[str, Any], id_token: str) -> jwt.Token:
    try:
        return jwt.decode(id_token, _key_set(config, settings, meta), algorithms=["RS256"])
    except InvalidKeyIdError:  # a key id not in the cached set: the provider rotated its keys since
        return jwt.decode(id_token, _key_set(config, settings, meta, fresh=True), algorithms=["RS256"])


# ---------------------------------------------------------------- the flow


def authorization(config: SsoConfig, settings: Settings, *, login_hint: str = "") -> Authorization:
    """Where to send the browser: the provider's authorization endpoint with state, nonce and a PKCE challenge."""
    meta = metadata(config, settings)
    state, nonce, verifier = generate_token(43), generate_token(43), generate_token(64)
    extra: dict[str, str] = {"nonce": nonce, "response_mode": "query"}
    if login_hint:
        extra["login_hint"] = login_hint
    if config.provider == SsoProvider.google and login_hint and "@" in login_hint:
        extra["hd"] = login_hint.rsplit("@", 1)[1]  # Google's account chooser shows this domain's accounts only
    client = OAuth2Session(
        config.client_id, scope=SCOPES, redirect_uri=redirect_uri(settings), code_challenge_method="S256"
    )
    url, _ = client.create_authorization_url(
        meta["authorization_endpoint"], state=state, code_verifier=verifier, **extra
    )
    return Authorization(url=url, state=state, nonce=nonce, code_verifier=verifier)


def exchange(
    config: SsoConfig, settings: Settings, *, secret: str, code: str, code_verifier: str, nonce: str,
    domains: frozenset[str],
) -> Identity:  # fmt: skip
    """Redeem the code (with the PKCE verifier) and check the ID token; the person it names, or SsoRefused."""
    meta = metadata(config, settings)
    try:
        with _http(
            config, settings, client_id=config.client_id, client_secret=secret,
            token_endpoint_auth_method="client_secret_post", redirect_uri=redirect_uri(settings),  # noqa: S106
        ) as client:  # fmt: skip
            token = client.fetch_token(
                meta["token_endpoint"], code=code, code_verifier=code_verifier,
                grant_type="authorization_code", timeout=settings.sso_timeout_s,
            )  # fmt: skip
    except OAuthError as exc:
        log.warning(
            "service.sso.token_refused",
            extra={"provider": config.provider.value, "error": exc.error, "description": (exc.description or "")[:300]},
        )
        if exc.error in {"temporarily_unavailable", "server_error"}:
            raise SsoUnavailable(N_("%(provider)s is not answering sign-ins right now.")) from exc
        if exc.error == "invalid_client":
            raise SsoRefused(
                N_(
                    "%(provider)s did not accept this site's client secret. Ask your administrator to enter a "
                    "current one on the Single sign-on page."
                ),
                exc.error,
            ) from exc
        raise SsoRefused(N_("%(provider)s did not confirm this sign-in. Start again."), exc.error) from exc
    except requests.HTTPError as exc:  # 5xx, or a body that is no token response
        log.warning("service.sso.token_error", extra={"provider": config.provider.value, "error": str(exc)[:200]})
        raise SsoUnavailable(N_("%(provider)s answered with an error.")) from exc
    except (OSError, ValueError) as exc:  # requests' errors are OSErrors
        log.warning("service.sso.token_unreachable", extra={"provider": config.provider.value, "error": str(exc)[:200]})
        raise SsoUnavailable(N_("%(provider)s could not be reached.")) from exc
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        raise SsoRefused(N_("%(provider)s sent no ID token."), "no id_token")
    return validate_id_token(
        config, settings, meta, id_token, nonce=nonce, access_token=token.get("access_token"), domains=domains
    )


def validate_id_token(
    config: SsoConfig, settings: Settings, meta: dict[str, Any], id_token: str, *, nonce: str,
    access_token: str | None, domains: frozenset[str],
) -> Identity:  # fmt: skip
    refused = N_(
        "%(provider)s's answer did not pass the checks, so you are not signed in. Start again; if it happens "
        "again, tell your administrator."
    )
    try:
        decoded = _decode(config, settings, meta, id_token)
    except (JoseError, ValueError) as exc:
        raise SsoRefused(refused, f"signature: {exc}") from exc
    issuers = [meta["issuer"]]
    if config.provider == SsoProvider.google:
        issuers.append(meta["issuer"].removeprefix("https://"))  # Google writes either form in `iss`
    claims = CodeIDToken(
        decoded.claims,
        decoded.header,
        {"iss": {"essential": True, "values": issuers}, "aud": {"essential": True, "values": [config.client_id]},
         "nonce": {"essential": True}},
        {"nonce": nonce, "client_id": config.client_id, **({"access_token": access_token} if access_token else {})},
    )  # fmt: skip
    try:
        claims.validate(leeway=LEEWAY_SECONDS)
    except JoseError as exc:
        raise SsoRefused(refused, f"claims: {exc}") from exc
    if config.provider == SsoProvider.microsoft:
        return _entra_identity(config, claims, domains)
    return _google_identity(claims, domains)


def _entra_identity(config: SsoConfig, claims: dict[str, Any], domains: frozenset[str]) -> Identity:
    if str(claims.get("tid", "")).lower() != config.tenant_id.lower():
        raise SsoRefused(
            N_("This Microsoft account belongs to another organisation's directory. Sign in with your work account."),
            f"tid {claims.get('tid')}",
        )
    email = str(claims.get("email") or claims.get("preferred_username") or "").strip().lower()
    _check_domain(email, domains)
    groups = claims.get("groups") or ()
    return Identity(
        issuer=str(claims["iss"]),
        subject=str(claims.get("oid") or claims["sub"]),
        email=email,
        name=str(claims.get("name") or ""),
        groups=tuple(str(g) for g in groups) if isinstance(groups, list) else (),
    )


def _google_identity(claims: dict[str, Any], domains: frozenset[str]) -> Identity:
    hd = str(claims.get("hd") or "").lower()
    if hd not in domains:
        raise SsoRefused(
            N_(
                "This Google account is not one of your organisation's Google Workspace accounts. Sign in with "
                "your work account."
            ),
            f"hd {hd or '(none)'}",
        )
    if claims.get("email_verified") is not True:
        raise SsoRefused(N_("Google has not verified this account's email address."), "email_verified false")
    email = str(claims.get("email") or "").strip().lower()
    _check_domain(email, domains)
    return Identity(
        issuer=str(claims["iss"]), subject=str(claims["sub"]), email=email, name=str(claims.get("name") or ""),
        groups=(),
    )  # fmt: skip


def _check_domain(email: str, domains: frozenset[str]) -> None:
    if "@" not in email or email.rsplit("@", 1)[1] not in domains:
        raise SsoRefused(
            N_("This account's email address is not in one of your organisation's domains, so it cannot sign in here."),
            f"email domain of {email.rsplit('@', 1)[-1] or '(none)'}",
        )


def state_digest(state: str) -> str:
    """What an attempt is stored under: a copy of the table cannot be replayed as callbacks."""
    return hashlib.sha256(state.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    return secrets.compare_digest(a.encode(), b.encode())
