"""The Google OpenID Connect fake, driven by Authlib's OAuth 2 client (discovery, PKCE S256, code exchange) and by
plain HTTP for Google's error bodies."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from authlib.integrations.requests_client import OAuth2Session, OAuthError

from .google_oidc import FakeGoogleOidc

REDIRECT = "https://relais.test/sign-in/sso/callback"


@pytest.fixture
def google() -> Iterator[FakeGoogleOidc]:
    with FakeGoogleOidc() as fake:
        fake.add_account("carol@acme.example", hd="acme.example", name="Carol Petit")
        fake.sign_in_as("carol@acme.example")
        yield fake


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=10) as client:
        yield client


def _flow(google: FakeGoogleOidc, http: httpx.Client, **extra: str):
    client_reg = google.register_client([REDIRECT])
    meta = http.get(google.url + "/.well-known/openid-configuration").json()
    session = OAuth2Session(
        client_reg.client_id, client_reg.secret, scope="openid email profile", redirect_uri=REDIRECT,
        code_challenge_method="S256", token_endpoint_auth_method="client_secret_post",  # noqa: S106
    )  # fmt: skip
    verifier = "k" * 64
    url, state = session.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce="n-42", **extra
    )
    r = http.get(url)
    assert r.status_code == 302, r.text
    back = {k: v[0] for k, v in parse_qs(urlsplit(r.headers["location"]).query).items()}
    return session, meta, back, verifier, state, client_reg


def test_discovery_has_googles_shape(google, http):
    meta = http.get(google.url + "/.well-known/openid-configuration").json()
    assert meta["issuer"] == google.issuer and meta["code_challenge_methods_supported"] == ["plain", "S256"]
    assert meta["jwks_uri"].endswith("/oauth2/v3/certs") and meta["authorization_endpoint"].endswith(
        "/o/oauth2/v2/auth"
    )
    assert http.get(meta["jwks_uri"]).json()["keys"][0]["kid"] == google.kid


def test_authlib_code_flow_gets_a_verifiable_id_token(google, http):
    session, meta, back, verifier, state, reg = _flow(google, http, hd="acme.example")
    assert back["state"] == state and back["hd"] == "acme.example" and back["code"].startswith("4/0A")
    token = session.fetch_token(meta["token_endpoint"], code=back["code"], code_verifier=verifier)
    key = jwt.PyJWK(http.get(meta["jwks_uri"]).json()["keys"][0]).key
    claims = jwt.decode(token["id_token"], key, algorithms=["RS256"], audience=reg.client_id, issuer=google.issuer)
    assert claims["email"] == "carol@acme.example" and claims["email_verified"] is True
    assert claims["hd"] == "acme.example" and claims["nonce"] == "n-42" and claims["azp"] == reg.client_id


def test_googles_token_errors(google, http):
    session, meta, back, verifier, _state, reg = _flow(google, http)
    form = {"grant_type": "authorization_code", "client_id": reg.client_id, "client_secret": reg.secret,
            "redirect_uri": REDIRECT, "code": back["code"]}  # fmt: skip

    def post(**changes: str) -> httpx.Response:
        return http.post(meta["token_endpoint"], data={**form, **changes})

    assert post().json() == {"error": "invalid_grant", "error_description": "Missing code verifier."}
    assert post(code_verifier="x" * 64).json() == {
        "error": "invalid_grant",
        "error_description": "Invalid code verifier.",
    }
    wrong = post(client_secret="nope", code_verifier=verifier)
    assert wrong.status_code == 401 and wrong.json() == {"error": "invalid_client", "error_description": "Unauthorized"}
    assert post(redirect_uri=REDIRECT + "x", code_verifier=verifier).json()["error"] == "redirect_uri_mismatch"
    assert post(code_verifier=verifier).status_code == 200
    replay = post(code_verifier=verifier)
    assert replay.status_code == 400 and replay.json() == {"error": "invalid_grant", "error_description": "Bad Request"}
    with pytest.raises(OAuthError) as exc:  # what Authlib makes of it
        session.fetch_token(meta["token_endpoint"], code=back["code"], code_verifier=verifier)
    assert exc.value.error == "invalid_grant"


def test_an_old_code_is_a_bad_request(google, http):
    _session, meta, back, verifier, _state, reg = _flow(google, http)
    google.clock_offset = google.code_lifetime + 1
    r = http.post(meta["token_endpoint"], data={
        "grant_type": "authorization_code", "client_id": reg.client_id, "client_secret": reg.secret,
        "redirect_uri": REDIRECT, "code": back["code"], "code_verifier": verifier})  # fmt: skip
    assert r.json() == {"error": "invalid_grant", "error_description": "Bad Request"}


def test_authorize_page_errors_are_not_sent_to_the_redirect_uri(google, http):
    reg = google.register_client([REDIRECT])
    auth = google.url + "/o/oauth2/v2/auth"
    wrong = http.get(auth, params={"client_id": reg.client_id, "redirect_uri": "https://evil.example/cb",
                                   "response_type": "code", "scope": "openid"})  # fmt: skip
    assert (
        wrong.status_code == 400
        and "Error 400: redirect_uri_mismatch" in wrong.text
        and "location" not in wrong.headers
    )
    unknown = http.get(auth, params={"client_id": "nope", "redirect_uri": REDIRECT})
    assert unknown.status_code == 401 and "Error 401: invalid_client" in unknown.text


def test_another_domains_account_is_refused_with_the_state(google, http):
    google.add_account("dan@gmail.com")
    google.sign_in_as("dan@gmail.com")
    _session, _meta, back, _verifier, state, _reg = _flow(google, http, hd="acme.example")
    assert back == {"state": state, "error": "access_denied"}


def test_an_outage_answers_5xx(google, http):
    google.fail_with = 503
    assert http.get(google.url + "/.well-known/openid-configuration").status_code == 503
