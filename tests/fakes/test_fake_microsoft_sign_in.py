"""The Microsoft fake's interactive sign-in (authorization-code flow with PKCE), driven by msal's own auth-code
flow, which checks state, nonce and the ID token as it does against Entra, and by plain HTTP for the error bodies."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import msal
import pytest

from .microsoft import FakeMicrosoft, _b64url

REDIRECT = "https://relais.test/sign-in/sso/callback"
SECRET = "Abc8Q~" + "f" * 34


@pytest.fixture
def fake() -> Iterator[FakeMicrosoft]:
    with FakeMicrosoft(tenant_id="11111111-2222-3333-4444-555555555555") as f:
        f.register_app("aaaaaaaa-0000-0000-0000-000000000001", secret=SECRET, redirect_uris=[REDIRECT])
        f.add_user("alice@contoso.example", display_name="Alice")
        f.add_group("Sales", ["alice@contoso.example"], id="99999999-0000-0000-0000-000000000001")
        f.add_group("All", ["99999999-0000-0000-0000-000000000001"], id="99999999-0000-0000-0000-000000000002")
        f.sign_in_as("alice@contoso.example")
        yield f


@pytest.fixture
def http(fake: FakeMicrosoft) -> Iterator[httpx.Client]:
    with httpx.Client(verify=fake.ssl_context(), trust_env=False, timeout=10) as client:
        yield client


def msal_app(fake: FakeMicrosoft, secret: str = SECRET) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        "aaaaaaaa-0000-0000-0000-000000000001", client_credential=secret,
        authority=f"{fake.authority_host}/{fake.tenant_id}", http_client=fake.requests_session(),
        instance_discovery=False,
    )  # fmt: skip


def authorize(http: httpx.Client, url: str) -> dict[str, str]:
    r = http.get(url)
    assert r.status_code == 302, r.text
    location = urlsplit(r.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    return {k: v[0] for k, v in parse_qs(location.query).items()}


# msal recommends form_post; Relais uses query on purpose (docs/sso.md, "Decisions"): PKCE makes a leaked code useless
@pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended")
def test_msal_auth_code_flow_with_pkce_signs_alice_in(fake, http):
    app = msal_app(fake)
    flow = app.initiate_auth_code_flow(["User.Read"], redirect_uri=REDIRECT, response_mode="query")
    assert "code_challenge" in flow["auth_uri"] and "nonce" in flow["auth_uri"]
    back = authorize(http, flow["auth_uri"])
    assert back["state"] == flow["state"] and back["code"].startswith("1.A")
    result = app.acquire_token_by_auth_code_flow(flow, back)  # msal checks state and the ID token's nonce
    assert "error" not in result, result
    claims = result["id_token_claims"]
    assert claims["tid"] == fake.tenant_id and claims["preferred_username"] == "alice@contoso.example"
    assert claims["oid"] == fake.user("alice@contoso.example")["id"]
    assert sorted(claims["groups"]) == ["99999999-0000-0000-0000-000000000001", "99999999-0000-0000-0000-000000000002"]
    # the ID token verifies against the published keys, for this app, from this tenant
    key = next(k for k in fake.jwks()["keys"] if k["kid"] == jwt.get_unverified_header(result["id_token"])["kid"])
    verified = jwt.decode(
        result["id_token"], jwt.PyJWK(key).key, algorithms=["RS256"],
        audience="aaaaaaaa-0000-0000-0000-000000000001", issuer=fake.issuer(),
    )  # fmt: skip
    assert verified["nonce"] == claims["nonce"]


def _code_and_verifier(fake: FakeMicrosoft, http: httpx.Client, **params: str) -> tuple[str, str]:
    verifier = "v" * 50
    query = {
        "client_id": "aaaaaaaa-0000-0000-0000-000000000001", "response_type": "code", "redirect_uri": REDIRECT,
        "scope": "openid email profile", "state": "st", "nonce": "n-1",
        "code_challenge": _b64url(hashlib.sha256(verifier.encode()).digest()), "code_challenge_method": "S256",
        **params,
    }  # fmt: skip
    back = authorize(http, f"{fake.authority}/oauth2/v2.0/authorize?" + httpx.QueryParams(query).__str__())
    return back["code"], verifier


def _redeem(fake: FakeMicrosoft, http: httpx.Client, **form: str) -> httpx.Response:
    data = {"grant_type": "authorization_code", "client_id": "aaaaaaaa-0000-0000-0000-000000000001",
            "client_secret": SECRET, "redirect_uri": REDIRECT, **form}  # fmt: skip
    return http.post(fake.token_endpoint, data=data)


def _aadsts(r: httpx.Response, status: int, error: str, code: int) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == error and body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ") and "Trace ID:" in body["error_description"]
    assert {"timestamp", "trace_id", "correlation_id"} <= set(body)


def test_a_code_is_single_use(fake, http):
    code, verifier = _code_and_verifier(fake, http)
    ok = _redeem(fake, http, code=code, code_verifier=verifier)
    assert ok.status_code == 200 and {"id_token", "access_token"} <= set(ok.json())
    assert jwt.decode(ok.json()["id_token"], options={"verify_signature": False})["nonce"] == "n-1"
    _aadsts(_redeem(fake, http, code=code, code_verifier=verifier), 400, "invalid_grant", 54005)


def test_pkce_is_enforced(fake, http):
    code, _ = _code_and_verifier(fake, http)
    _aadsts(_redeem(fake, http, code=code), 400, "invalid_request", 900144)
    _aadsts(_redeem(fake, http, code=code, code_verifier="w" * 50), 400, "invalid_grant", 501481)


def test_the_client_and_its_redirect_uri_are_checked(fake, http):
    code, verifier = _code_and_verifier(fake, http)
    _aadsts(
        _redeem(fake, http, code=code, code_verifier=verifier, client_secret="nope"), 401, "invalid_client", 7000215
    )
    other = REDIRECT + "/other"
    _aadsts(_redeem(fake, http, code=code, code_verifier=verifier, redirect_uri=other), 400, "invalid_grant", 500112)
    _aadsts(_redeem(fake, http, code="garbage", code_verifier=verifier), 400, "invalid_grant", 9002313)


def test_an_old_code_has_expired(fake, http):
    code, verifier = _code_and_verifier(fake, http)
    fake.advance_clock(fake.code_lifetime + 1)
    _aadsts(_redeem(fake, http, code=code, code_verifier=verifier), 400, "invalid_grant", 70008)


def test_app_errors_stay_on_entras_page(fake, http):
    base = f"{fake.authority}/oauth2/v2.0/authorize"
    params = {"client_id": "aaaaaaaa-0000-0000-0000-000000000001", "response_type": "code", "scope": "openid",
              "redirect_uri": "https://evil.example/cb", "state": "s"}  # fmt: skip
    wrong = http.get(base, params=params)
    assert wrong.status_code == 400 and "location" not in wrong.headers and "AADSTS50011" in wrong.text
    unknown = http.get(base, params={"client_id": "bbbbbbbb-0000-0000-0000-000000000001", "redirect_uri": REDIRECT})
    assert unknown.status_code == 400 and "AADSTS700016" in unknown.text


def test_a_refusal_goes_back_with_the_state(fake, http):
    fake.authorize_error = ("access_denied", 50105, "The signed in user is not assigned to a role for the application.")
    r = http.get(f"{fake.authority}/oauth2/v2.0/authorize", params={
        "client_id": "aaaaaaaa-0000-0000-0000-000000000001", "response_type": "code", "redirect_uri": REDIRECT,
        "scope": "openid", "state": "keep-me"})  # fmt: skip
    back = {k: v[0] for k, v in parse_qs(urlsplit(r.headers["location"]).query).items()}
    assert back["error"] == "access_denied" and back["state"] == "keep-me"
    assert back["error_description"].startswith("AADSTS50105: ") and "code" not in back


def test_nobody_signed_in_gets_no_code(fake, http):
    fake.sign_in_as(None)
    r = http.get(f"{fake.authority}/oauth2/v2.0/authorize", params={
        "client_id": "aaaaaaaa-0000-0000-0000-000000000001", "response_type": "code", "redirect_uri": REDIRECT,
        "scope": "openid", "state": "s"})  # fmt: skip
    assert r.status_code == 400 and "AADSTS50058" in r.text
