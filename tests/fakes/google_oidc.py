"""A local fake of Google's OpenID Connect provider (accounts.google.com), over HTTP on loopback.

Routes, relative to ``fake.url`` (the fake's issuer, standing for ``https://accounts.google.com``)::

    GET   .well-known/openid-configuration   the discovery document, in Google's shape
    GET   o/oauth2/v2/auth                   authorize: signs in :meth:`FakeGoogleOidc.sign_in_as`'s user at once
                                             and redirects back with code + state (Google's error page otherwise)
    POST  token                              authorization_code grant: client secret, redirect URI, single-use
                                             code, PKCE verifier; an RS256 ID token with nonce, hd, email
    GET   oauth2/v3/certs                    the JWKS

Errors are Google's: ``{"error": "invalid_grant", "error_description": "Bad Request"}`` for a spent or unknown
code, ``"Invalid code verifier."`` for a PKCE mismatch, ``invalid_client`` / ``Unauthorized`` (401) for a bad
secret, ``redirect_uri_mismatch``; the authorize page's own errors (``Error 400: redirect_uri_mismatch``,
``Error 401: invalid_client``) are HTML, never sent to an unverified redirect URI.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_uint(n: int) -> str:
    return _b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


@dataclass
class OAuthClient:
    """An OAuth client id of type "Web application" in a Cloud project."""

    client_id: str
    secret: str
    redirect_uris: list[str] = field(default_factory=list)


@dataclass
class Account:
    email: str
    name: str
    sub: str
    hd: str | None  # a Workspace account's domain; None for a consumer (gmail.com) account
    email_verified: bool = True


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    sub: str
    scope: str
    nonce: str | None
    challenge: str | None
    method: str | None
    issued_at: float
    redeemed: bool = False


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any) -> _Response:
        return cls(status, json.dumps(payload).encode(), {"Content-Type": "application/json; charset=utf-8"})


class FakeGoogleOidc:
    """Use as a context manager: ``with FakeGoogleOidc() as google: ...``."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = _b64url(secrets.token_bytes(20))
        self.clients: dict[str, OAuthClient] = {}
        self.accounts: dict[str, Account] = {}  # sub -> account
        self.signed_in: str | None = None  # sub
        self.authorize_error: str | None = None  # e.g. "access_denied": sent back instead of a code
        self.id_token_overrides: dict[str, Any] = {}
        self.code_lifetime = 600.0
        self.clock_offset = 0.0
        self.fail_with: int | None = None  # every request answers this status (an outage)
        self._codes: dict[str, _Code] = {}
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status)
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> FakeGoogleOidc:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeGoogleOidc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "FakeGoogleOidc is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def issuer(self) -> str:
        return self.url

    # ---------------------------------------------------------------- set-up
    def register_client(self, redirect_uris: list[str], client_id: str | None = None) -> OAuthClient:
        client = OAuthClient(
            client_id=client_id
            or f"{secrets.randbelow(10**12):012d}-{secrets.token_hex(16)}.apps.googleusercontent.com",
            secret="GOCSPX-" + secrets.token_urlsafe(21),
            redirect_uris=list(redirect_uris),
        )
        with self._lock:
            self.clients[client.client_id] = client
        return client

    def add_account(self, email: str, *, hd: str | None = None, name: str = "", verified: bool = True) -> Account:
        account = Account(
            email=email,
            name=name or email.split("@")[0].replace(".", " ").title(),
            sub=str(10**20 + secrets.randbelow(10**20)),
            hd=hd,
            email_verified=verified,
        )
        with self._lock:
            self.accounts[account.sub] = account
        return account

    def sign_in_as(self, email: str | None) -> None:
        with self._lock:
            self.signed_in = next((a.sub for a in self.accounts.values() if a.email == email), None) if email else None

    def jwks(self) -> dict[str, Any]:
        numbers = self._key.public_key().public_numbers()
        return {
            "keys": [
                {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid, "n": _b64url_uint(numbers.n),
                 "e": _b64url_uint(numbers.e)}
            ]
        }  # fmt: skip

    # ---------------------------------------------------------------- routes
    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> _Response:
        split = urllib.parse.urlsplit(target)
        path = split.path.strip("/")
        if self.fail_with is not None:
            resp = _Response(self.fail_with, b"<html><body>Server Error</body></html>", {"Content-Type": "text/html"})
        elif method == "GET" and path == ".well-known/openid-configuration":
            resp = _Response.json(200, self._discovery())
        elif method == "GET" and path == "oauth2/v3/certs":
            resp = _Response.json(200, self.jwks())
        elif method == "GET" and path == "o/oauth2/v2/auth":
            resp = self._authorize(dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True)))
        elif method == "POST" and path == "token":
            form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            resp = self._token(form, headers.get("authorization", ""))
        else:
            resp = _Response(404, b"Not Found", {"Content-Type": "text/html"})
        with self._lock:
            self.requests.append((method, path, resp.status))
        return resp

    def _discovery(self) -> dict[str, Any]:
        base = self.url
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{base}/o/oauth2/v2/auth",
            "device_authorization_endpoint": f"{base}/device/code",
            "token_endpoint": f"{base}/token",
            "userinfo_endpoint": f"{base}/v1/userinfo",
            "revocation_endpoint": f"{base}/revoke",
            "jwks_uri": f"{base}/oauth2/v3/certs",
            "response_types_supported": ["code", "token", "id_token", "code token", "code id_token",
                                         "token id_token", "code token id_token", "none"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "claims_supported": ["aud", "email", "email_verified", "exp", "family_name", "given_name", "iat", "iss",
                                 "name", "picture", "sub"],
            "code_challenge_methods_supported": ["plain", "S256"],
            "grant_types_supported": ["authorization_code", "refresh_token",
                                      "urn:ietf:params:oauth:grant-type:device_code",
                                      "urn:ietf:params:oauth:grant-type:jwt-bearer"],
        }  # fmt: skip

    @staticmethod
    def _error_page(status: int, error: str, text: str) -> _Response:
        body = (
            "<!DOCTYPE html><html><head><title>Error</title></head><body><h1>Access blocked: This app's request is "
            f"invalid</h1><p>Error {status}: {error}</p><p>{text}</p></body></html>"
        )
        return _Response(status, body.encode(), {"Content-Type": "text/html; charset=utf-8"})

    def _authorize(self, q: dict[str, str]) -> _Response:
        with self._lock:
            client = self.clients.get(q.get("client_id", ""))
        if client is None:
            return self._error_page(401, "invalid_client", "The OAuth client was not found.")
        redirect_uri = q.get("redirect_uri", "")
        if redirect_uri not in client.redirect_uris:
            return self._error_page(
                400, "redirect_uri_mismatch",
                "You can't sign in to this app because it doesn't comply with Google's OAuth 2.0 policy. "
                f"Request details: redirect_uri={redirect_uri}",
            )  # fmt: skip
        if q.get("response_type") != "code":
            return self._error_page(
                400, "unsupported_response_type", f"Invalid response_type: {q.get('response_type')}"
            )
        scopes = q.get("scope", "").split()
        if "openid" not in scopes:
            return self._error_page(400, "invalid_request", "Some requested scopes were invalid.")
        method = q.get("code_challenge_method") or ("plain" if q.get("code_challenge") else None)
        if method not in (None, "plain", "S256"):
            return self._error_page(400, "invalid_request", "Invalid code_challenge_method.")

        def back(**params: str) -> _Response:
            if "state" in q:
                params = {"state": q["state"], **params}
            location = redirect_uri + ("&" if "?" in redirect_uri else "?") + urllib.parse.urlencode(params)
            return _Response(302, b"", {"Location": location})

        if self.authorize_error:
            return back(error=self.authorize_error)
        with self._lock:
            account = self.accounts.get(self.signed_in or "")
            if account is None:
                return self._error_page(400, "invalid_request", "No account is signed in to the fake.")
            if q.get("hd") and q["hd"] != "*" and account.hd != q["hd"]:
                return back(error="access_denied")  # the chooser offers only that domain's accounts
            code = "4/0A" + _b64url(secrets.token_bytes(54))
            self._codes[code] = _Code(
                client_id=client.client_id, redirect_uri=redirect_uri, sub=account.sub, scope=" ".join(scopes),
                nonce=q.get("nonce"), challenge=q.get("code_challenge"), method=method,
                issued_at=time.time() + self.clock_offset,
            )  # fmt: skip
        params = {"code": code, "scope": " ".join(scopes), "authuser": "0", "prompt": "none"}
        if account.hd:
            params["hd"] = account.hd
        return back(**params)

    def _token(self, form: dict[str, str], authorization: str) -> _Response:
        def error(status: int, err: str, description: str) -> _Response:
            return _Response.json(status, {"error": err, "error_description": description})

        if authorization.lower().startswith("basic "):
            cid, _, sec = base64.b64decode(authorization[6:]).decode().partition(":")
            form.setdefault("client_id", urllib.parse.unquote(cid))
            form.setdefault("client_secret", urllib.parse.unquote(sec))
        grant_type = form.get("grant_type", "")
        if grant_type != "authorization_code":
            return error(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        with self._lock:
            client = self.clients.get(form.get("client_id", ""))
        if client is None:
            return error(401, "invalid_client", "The OAuth client was not found.")
        if not secrets.compare_digest(form.get("client_secret", "").encode(), client.secret.encode()):
            return error(401, "invalid_client", "Unauthorized")
        if not form.get("code"):
            return error(400, "invalid_request", "Missing required parameter: code")
        with self._lock:
            grant = self._codes.get(form["code"])
            if grant is None:
                return error(400, "invalid_grant", "Malformed auth code.")
            if grant.redeemed or time.time() + self.clock_offset - grant.issued_at > self.code_lifetime:
                return error(400, "invalid_grant", "Bad Request")
            if grant.client_id != client.client_id:
                return error(400, "invalid_grant", "Bad Request")
            if form.get("redirect_uri") != grant.redirect_uri:
                return error(400, "redirect_uri_mismatch", "Bad Request")
            if grant.challenge is not None:
                verifier = form.get("code_verifier")
                if not verifier:
                    return error(400, "invalid_grant", "Missing code verifier.")
                computed = _b64url(hashlib.sha256(verifier.encode()).digest()) if grant.method == "S256" else verifier
                if not secrets.compare_digest(computed, grant.challenge):
                    return error(400, "invalid_grant", "Invalid code verifier.")
            grant.redeemed = True
            account = self.accounts[grant.sub]
        now = int(time.time() + self.clock_offset)
        access_token = "ya29." + _b64url(secrets.token_bytes(96))
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "azp": client.client_id,
            "aud": client.client_id,
            "sub": account.sub,
            "at_hash": _b64url(hashlib.sha256(access_token.encode()).digest()[:16]),
            "iat": now,
            "exp": now + 3599,
        }
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        if account.hd:
            claims["hd"] = account.hd
        scopes = grant.scope.split()
        if "email" in scopes:
            claims.update(email=account.email, email_verified=account.email_verified)
        if "profile" in scopes:
            claims.update(
                name=account.name, given_name=account.name.split()[0], picture="https://lh3.googleusercontent.com/a/x"
            )
        claims.update(self.id_token_overrides)
        pem = self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        id_token = jwt.encode(claims, pem, algorithm="RS256", headers={"kid": self.kid, "typ": "JWT"})
        return _Response.json(
            200,
            {"access_token": access_token, "expires_in": 3599, "scope": " ".join(scopes), "token_type": "Bearer",
             "id_token": id_token},
        )  # fmt: skip


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeGoogleOidc

    def handle_error(self, request: Any, client_address: Any) -> None:  # keep test output quiet
        pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        resp = self.server.fake.handle(self.command.upper(), self.path, headers, body)
        self.send_response(resp.status)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        self.wfile.write(resp.body)

    do_GET = do_POST = _serve  # noqa: N815


@pytest.fixture
def google_oidc() -> Iterator[FakeGoogleOidc]:
    with FakeGoogleOidc() as fake:
        yield fake
