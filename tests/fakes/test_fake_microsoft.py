"""The Microsoft fake, driven only through msal (real client-credentials flow) and httpx over loopback TLS."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import jwt
import msal
import pytest

from .microsoft import EXCHANGE_SCOPE, GRAPH_SCOPE, FakeMicrosoft
from .tls import make_client_certificate

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64 + b"\xff\xd9"


@pytest.fixture
def fake() -> Iterator[FakeMicrosoft]:
    with FakeMicrosoft(tenant_id="11111111-2222-3333-4444-555555555555") as f:
        yield f


@pytest.fixture
def http(fake: FakeMicrosoft) -> Iterator[httpx.Client]:
    with httpx.Client(verify=fake.ssl_context(), trust_env=False, timeout=10) as client:
        yield client


def app_for(fake: FakeMicrosoft, client_id: str | None = None, credential: Any = None) -> Any:
    return msal.ConfidentialClientApplication(
        client_id or fake.client_id,
        client_credential=credential if credential is not None else fake.client_secret,
        authority=f"{fake.authority_host}/{fake.tenant_id}",
        http_client=fake.requests_session(),
        instance_discovery=False,
    )


def token(fake: FakeMicrosoft, scope: str = GRAPH_SCOPE, **kw: Any) -> str:
    result = app_for(fake, **kw).acquire_token_for_client(scopes=[scope])
    assert "access_token" in result, result
    return result["access_token"]


def bearer(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


def invoke(
    http: httpx.Client, fake: FakeMicrosoft, tok: str | None, cmdlet: str, anchor: str | None = None, **params: Any
) -> httpx.Response:
    headers = {"X-ResponseFormat": "json"}
    if tok:
        headers.update(bearer(tok))
    if anchor:
        headers["X-AnchorMailbox"] = f"UPN:{anchor}"
    body = {"CmdletInput": {"CmdletName": cmdlet, "Parameters": params}}
    return http.post(fake.invoke_command_url, json=body, headers=headers)


def unverified(tok: str) -> dict[str, Any]:
    return jwt.decode(tok, options={"verify_signature": False})


# ------------------------------------------------------------------------------------------------ token endpoint


def test_msal_secret_flow_hits_metadata_then_token_and_caches(fake: FakeMicrosoft) -> None:
    app = app_for(fake)
    first = app.acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert first["token_source"] == "identity_provider"
    assert first["token_type"] == "Bearer"
    claims = unverified(first["access_token"])
    assert claims["aud"] == "https://graph.microsoft.com"
    assert claims["tid"] == fake.tenant_id
    assert claims["appid"] == fake.client_id
    assert claims["appidacr"] == "1"
    assert set(claims["roles"]) == {"User.Read.All", "GroupMember.Read.All", "MailboxConfigItem.ReadWrite"}

    second = app.acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert second["token_source"] == "cache"
    assert second["access_token"] == first["access_token"]

    exo = app.acquire_token_for_client(scopes=[EXCHANGE_SCOPE])
    exo_claims = unverified(exo["access_token"])
    assert exo_claims["aud"] == "https://outlook.office365.com"
    assert exo_claims["roles"] == ["Exchange.ManageAsApp"]

    seen = [(r.method, r.path) for r in fake.requests]
    assert seen == [
        ("GET", f"/{fake.tenant_id}/v2.0/.well-known/openid-configuration"),
        ("POST", f"/{fake.tenant_id}/oauth2/v2.0/token"),
        ("POST", f"/{fake.tenant_id}/oauth2/v2.0/token"),
    ]


@pytest.mark.parametrize("sha1", [False, True], ids=["PS256-x5t#S256", "RS256-x5t"])
def test_msal_certificate_flow(fake: FakeMicrosoft, sha1: bool) -> None:
    cert = make_client_certificate()
    app = fake.register_app(
        certificate=cert.certificate_pem, graph_roles=["User.Read.All"], exchange_roles=["Exchange.ManageAsApp"]
    )
    result = app_for(fake, app.client_id, cert.msal_credential(sha1=sha1)).acquire_token_for_client(
        scopes=[EXCHANGE_SCOPE]
    )
    assert "access_token" in result, result
    claims = unverified(result["access_token"])
    assert claims["appidacr"] == "2"
    assert claims["appid"] == app.client_id
    assert claims["aud"] == "https://outlook.office365.com"


def test_certificate_not_registered_is_rejected(fake: FakeMicrosoft) -> None:
    registered, other = make_client_certificate(), make_client_certificate()
    app = fake.register_app(certificate=registered.certificate_pem, graph_roles=["User.Read.All"])
    result = app_for(fake, app.client_id, other.msal_credential()).acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [700027]
    assert result["error_description"].startswith("AADSTS700027:")


def test_token_errors_in_entra_shape(fake: FakeMicrosoft) -> None:
    bad_secret = app_for(fake, credential="not-the-secret").acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert bad_secret["error"] == "invalid_client"
    assert bad_secret["error_codes"] == [7000215]
    assert "AADSTS7000215: Invalid client secret provided" in bad_secret["error_description"]
    assert bad_secret["trace_id"] and bad_secret["correlation_id"]

    unknown = app_for(fake, "99999999-0000-0000-0000-000000000000", "s").acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert unknown["error"] == "unauthorized_client"
    assert unknown["error_codes"] == [700016]

    no_consent = fake.register_app(secret="s3cret", graph_roles=["User.Read.All"], consented=False)
    result = app_for(fake, no_consent.client_id, "s3cret").acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert result["error"] == "invalid_grant"
    assert result["error_codes"] == [65001]

    graph_only = fake.register_app(secret="s3cret", graph_roles=["User.Read.All"])
    result = app_for(fake, graph_only.client_id, "s3cret").acquire_token_for_client(scopes=[EXCHANGE_SCOPE])
    assert result["error_codes"] == [65001]

    bad_scope = app_for(fake).acquire_token_for_client(scopes=["https://graph.microsoft.com/User.Read.All"])
    assert bad_scope["error"] == "invalid_scope"
    assert bad_scope["error_codes"] == [1002012]


def test_unknown_tenant_fails_discovery(fake: FakeMicrosoft) -> None:
    with pytest.raises(ValueError, match="Unable to get authority configuration"):
        msal.ConfidentialClientApplication(
            fake.client_id,
            client_credential=fake.client_secret,
            authority=f"{fake.authority_host}/not-a-tenant.onmicrosoft.com",
            http_client=fake.requests_session(),
            instance_discovery=False,
        )
    assert fake.request_count("authority", path_contains="/not-a-tenant.onmicrosoft.com/v2.0/", status=400) == 1
    with httpx.Client(verify=fake.ssl_context(), trust_env=False) as http:
        body = http.get(f"{fake.authority_host}/not-a-tenant.onmicrosoft.com/v2.0/.well-known/openid-configuration")
    assert body.status_code == 400
    assert body.json()["error"] == "invalid_tenant" and body.json()["error_codes"] == [90002]
    # The tenant's domain name works as well as its id.
    assert "access_token" in app_for_authority(fake, f"{fake.authority_host}/{fake.tenant_domain}")


def app_for_authority(fake: FakeMicrosoft, authority: str) -> dict[str, Any]:
    return msal.ConfidentialClientApplication(
        fake.client_id,
        client_credential=fake.client_secret,
        authority=authority,
        http_client=fake.requests_session(),
        instance_discovery=False,
    ).acquire_token_for_client(scopes=[GRAPH_SCOPE])


# ------------------------------------------------------------------------------------------------ metadata, JWKS


def test_openid_metadata_and_jwks(fake: FakeMicrosoft, http: httpx.Client) -> None:
    meta = http.get(f"{fake.authority}/v2.0/.well-known/openid-configuration").json()
    assert meta["issuer"] == f"{fake.authority_host}/{fake.tenant_id}/v2.0"
    assert meta["token_endpoint"] == fake.token_endpoint
    assert meta["jwks_uri"] == fake.jwks_uri
    assert "private_key_jwt" in meta["token_endpoint_auth_methods_supported"]
    common = http.get(f"{fake.authority_host}/common/v2.0/.well-known/openid-configuration").json()
    assert common["issuer"] == f"{fake.authority_host}/{{tenantid}}/v2.0"

    keys = http.get(meta["jwks_uri"]).json()["keys"]
    assert len(keys) == 1 and keys[0]["kty"] == "RSA" and keys[0]["kid"]
    old_kid = keys[0]["kid"]
    new_kid = fake.rotate_signing_key(keep_old=True)
    kids = [k["kid"] for k in http.get(meta["jwks_uri"]).json()["keys"]]
    assert kids == [new_kid, old_kid]
    fake.rotate_signing_key(keep_old=False)
    assert len(http.get(meta["jwks_uri"]).json()["keys"]) == 1


def test_add_in_token_verifies_against_jwks_with_pyjwt(fake: FakeMicrosoft, http: httpx.Client) -> None:
    meta = http.get(f"{fake.authority}/v2.0/.well-known/openid-configuration").json()
    jwks = jwt.PyJWKSet.from_dict(http.get(meta["jwks_uri"]).json())
    api_client_id = "aaaaaaaa-0000-0000-0000-000000000001"

    def verify(tok: str) -> dict[str, Any]:
        kid = jwt.get_unverified_header(tok).get("kid")
        key = next(k for k in jwks.keys if k.key_id == kid)
        return jwt.decode(tok, key.key, algorithms=["RS256"], audience=api_client_id, issuer=meta["issuer"])

    good = fake.issue_user_token("oid-1", aud=api_client_id, scp="access_as_user")
    claims = verify(good)
    assert claims["oid"] == "oid-1" and claims["tid"] == fake.tenant_id and claims["scp"] == "access_as_user"
    assert claims["ver"] == "2.0"

    with pytest.raises(jwt.InvalidSignatureError):
        verify(fake.issue_wrong_key_token("oid-1", aud=api_client_id))
    with pytest.raises(jwt.ExpiredSignatureError):
        verify(fake.issue_user_token("oid-1", aud=api_client_id, exp=time.time() - 600))
    with pytest.raises(jwt.InvalidIssuerError):
        verify(fake.issue_user_token("oid-1", aud=api_client_id, iss="https://evil.example/v2.0"))
    with pytest.raises(jwt.InvalidAudienceError):
        verify(fake.issue_user_token("oid-1", aud="someone-else"))
    unsigned = fake.issue_unsigned_token("oid-1", aud=api_client_id)
    assert jwt.get_unverified_header(unsigned)["alg"] == "none"
    with pytest.raises(jwt.PyJWTError):
        verify(unsigned)

    # After a rotation, a token signed by the new key has an unknown kid until the JWKS is fetched again.
    fake.rotate_signing_key()
    rotated = fake.issue_user_token("oid-1", aud=api_client_id)
    with pytest.raises(StopIteration):
        verify(rotated)
    jwks = jwt.PyJWKSet.from_dict(http.get(meta["jwks_uri"]).json())
    assert verify(rotated)["oid"] == "oid-1"
    assert verify(good)["oid"] == "oid-1"  # old key still published


# ------------------------------------------------------------------------------------------------ Graph directory


def test_users_paging_select_expand(fake: FakeMicrosoft, http: httpx.Client) -> None:
    boss = fake.add_user("boss@contoso.com", display_name="Boss", jobTitle="CEO")
    for i in range(4):
        fake.add_user(f"u{i}@contoso.com", manager="boss@contoso.com", department="Sales")
    tok = token(fake)
    url: str | None = f"{fake.graph_endpoint}/v1.0/users"
    params: dict[str, str] | None = {
        "$select": "id,displayName,department,userPrincipalName",
        "$expand": "manager($select=id,displayName,mail)",
        "$top": "2",
    }
    pages = []
    while url:
        resp = http.get(url, params=params, headers=bearer(tok))
        assert resp.status_code == 200, resp.text
        body = resp.json()
        pages.append(body["value"])
        url, params = body.get("@odata.nextLink"), None
        if url:
            assert url.startswith(fake.graph_endpoint + "/v1.0/users?") and "$skiptoken=" in url
    assert [len(p) for p in pages] == [2, 2, 1]
    users = [u for p in pages for u in p]
    assert {u["userPrincipalName"] for u in users} == {"boss@contoso.com"} | {f"u{i}@contoso.com" for i in range(4)}
    assert set(users[1]) == {"id", "displayName", "department", "userPrincipalName", "manager"}
    assert users[1]["manager"] == {
        "@odata.type": "#microsoft.graph.user",
        "id": boss["id"],
        "displayName": "Boss",
        "mail": "boss@contoso.com",
    }
    assert "manager" not in users[0]  # the boss has none: Graph omits it

    default = http.get(f"{fake.graph_endpoint}/v1.0/users", headers=bearer(tok)).json()["value"][0]
    assert len(default) == 11 and "department" not in default and "jobTitle" in default

    assert http.get(f"{fake.graph_endpoint}/v1.0/users?$top=1000", headers=bearer(tok)).status_code == 400
    assert http.get(f"{fake.graph_endpoint}/v1.0/users").status_code == 401
    bad = http.get(f"{fake.graph_endpoint}/v1.0/users", headers=bearer(token(fake, EXCHANGE_SCOPE)))
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_graph_403_without_permission(fake: FakeMicrosoft, http: httpx.Client) -> None:
    app = fake.register_app(secret="s", graph_roles=["MailboxConfigItem.ReadWrite"])
    tok = token(fake, client_id=app.client_id, credential="s")
    resp = http.get(f"{fake.graph_endpoint}/v1.0/users", headers=bearer(tok))
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "Authorization_RequestDenied"


def delta_round(http: httpx.Client, url: str, tok: str) -> tuple[list[dict[str, Any]], str, int]:
    items: list[dict[str, Any]] = []
    pages = 0
    while True:
        resp = http.get(url, headers=bearer(tok))
        assert resp.status_code == 200, resp.text
        body = resp.json()
        items += body["value"]
        pages += 1
        if "@odata.deltaLink" in body:
            assert "@odata.nextLink" not in body
            return items, body["@odata.deltaLink"], pages
        url = body["@odata.nextLink"]


def test_users_delta_changes_removals_and_expiry(fake: FakeMicrosoft, http: httpx.Client) -> None:
    fake.delta_page_size = 2
    for i in range(3):
        fake.add_user(f"d{i}@contoso.com")
    tok = token(fake)
    start = f"{fake.graph_endpoint}/v1.0/users/delta?$select=id,displayName,userPrincipalName"
    items, delta_link, pages = delta_round(http, start, tok)
    assert pages == 2 and len(items) == 3

    empty, delta_link, _ = delta_round(http, delta_link, tok)
    assert empty == []

    fake.update_user("d0@contoso.com", displayName="First change")
    fake.update_user("d0@contoso.com", displayName="Second change")
    fake.add_user("new@contoso.com")
    gone = fake.user("d1@contoso.com")["id"]
    fake.remove_user("d1@contoso.com")
    changes, delta_link2, _ = delta_round(http, delta_link, tok)
    ids = [c["id"] for c in changes]
    d0 = fake.user("d0@contoso.com")["id"]
    assert ids.count(d0) == 2  # the same user may appear twice
    assert {"id": gone, "@odata.type": "#microsoft.graph.user", "@removed": {"reason": "changed"}} in changes
    assert any(c.get("userPrincipalName") == "new@contoso.com" for c in changes)

    fake.expire_delta_tokens()
    resp = http.get(delta_link2, headers=bearer(tok))
    assert resp.status_code == 410
    assert resp.json()["error"]["code"] == "resyncRequired"

    _, fresh, _ = delta_round(http, start, tok)
    fake.expire_delta_tokens(status=400, code="syncStateNotFound")
    resp = http.get(fresh, headers=bearer(tok))
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "syncStateNotFound"

    latest = http.get(f"{fake.graph_endpoint}/v1.0/users/delta?$deltatoken=latest", headers=bearer(tok)).json()
    assert latest["value"] == [] and "@odata.deltaLink" in latest


def test_delta_duplicates_knob(fake: FakeMicrosoft, http: httpx.Client) -> None:
    fake.delta_duplicates = True
    fake.add_user("x@contoso.com")
    items, _, _ = delta_round(http, f"{fake.graph_endpoint}/v1.0/users/delta", token(fake))
    assert len(items) == 2 and items[0]["id"] == items[1]["id"]


def test_group_transitive_members(fake: FakeMicrosoft, http: httpx.Client) -> None:
    for name in ("a", "b", "c", "d"):
        fake.add_user(f"{name}@contoso.com")
    inner = fake.add_group("Inner", ["c@contoso.com", "a@contoso.com"])
    outer = fake.add_group("Outer", ["a@contoso.com", "b@contoso.com", inner["id"]])
    tok = token(fake)
    url = f"{fake.graph_endpoint}/v1.0/groups/{outer['id']}/transitiveMembers/microsoft.graph.user?$select=id,mail"

    no_header = http.get(url, headers=bearer(tok))
    assert no_header.status_code == 400

    resp = http.get(url + "&$count=true", headers={**bearer(tok), "ConsistencyLevel": "eventual"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["@odata.count"] == 3
    assert sorted(m["mail"] for m in body["value"]) == ["a@contoso.com", "b@contoso.com", "c@contoso.com"]
    assert all(m["@odata.type"] == "#microsoft.graph.user" for m in body["value"])

    missing = http.get(
        f"{fake.graph_endpoint}/v1.0/groups/nope/transitiveMembers/microsoft.graph.user",
        headers={**bearer(tok), "ConsistencyLevel": "eventual"},
    )
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "Request_ResourceNotFound"


def test_photo_404_and_200(fake: FakeMicrosoft, http: httpx.Client) -> None:
    with_photo = fake.add_user("p@contoso.com", photo=JPEG)
    fake.add_user("np@contoso.com")
    tok = token(fake)
    resp = http.get(f"{fake.graph_endpoint}/v1.0/users/{with_photo['id']}/photo/$value", headers=bearer(tok))
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "image/jpeg" and resp.content == JPEG
    resp = http.get(f"{fake.graph_endpoint}/v1.0/users/np@contoso.com/photo/$value", headers=bearer(tok))
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "ImageNotFound"


def test_graph_batch_throttled_item_and_depends_on(fake: FakeMicrosoft, http: httpx.Client) -> None:
    a = fake.add_user("a@contoso.com", photo=JPEG)
    b = fake.add_user("b@contoso.com")
    fake.inject(429, service="graph", path_contains=f"/users/{b['id']}", retry_after="2.128")
    tok = token(fake)
    batch = {
        "requests": [
            {"id": "1", "method": "GET", "url": f"/users/{a['id']}?$select=id,mail"},
            {"id": "2", "method": "GET", "url": f"/users/{b['id']}?$select=id,mail"},
            {"id": "3", "method": "GET", "url": f"/users/{a['id']}/photo/$value", "dependsOn": ["2"]},
            {"id": "4", "method": "GET", "url": f"/users/{a['id']}/photo/$value", "dependsOn": ["1"]},
        ]
    }
    resp = http.post(f"{fake.graph_endpoint}/v1.0/$batch", json=batch, headers=bearer(tok))
    assert resp.status_code == 200
    by_id = {r["id"]: r for r in resp.json()["responses"]}
    assert by_id["1"]["status"] == 200 and by_id["1"]["body"]["mail"] == "a@contoso.com"
    assert by_id["2"]["status"] == 429 and by_id["2"]["headers"]["Retry-After"] == "2.128"
    assert by_id["2"]["body"]["error"]["code"] == "TooManyRequests"
    assert by_id["3"]["status"] == 424
    assert by_id["4"]["status"] == 200 and base64.b64decode(by_id["4"]["body"]) == JPEG

    too_many = {"requests": [{"id": str(i), "method": "GET", "url": "/users"} for i in range(21)]}
    assert http.post(f"{fake.graph_endpoint}/beta/$batch", json=too_many, headers=bearer(tok)).status_code == 400


# ------------------------------------------------------------------------------------------------ userConfiguration


def test_user_configuration_patch_replaces_dictionary(fake: FakeMicrosoft, http: httpx.Client) -> None:
    fake.add_user("opts@contoso.com", owa_options={"timezone": "W. Europe Standard Time", "isdarkmodetheme": True})
    fake.add_user("fresh@contoso.com")
    tok = token(fake)
    base = f"{fake.graph_endpoint}/beta/users/opts@contoso.com/mailFolders/root/userConfigurations"

    current = http.get(f"{base}/OWA.UserOptions", headers=bearer(tok)).json()
    keys = {e["keyEntry"]["values"][0] for e in current["structuredData"]}
    assert keys == {"timezone", "isdarkmodetheme"}

    signature_only = {
        "structuredData": [
            {
                "keyEntry": {"type": "string", "values": ["signaturehtml"]},
                "valueEntry": {"type": "string", "values": ["<p>Sig</p>"]},
            }
        ]
    }
    resp = http.patch(f"{base}/OWA.UserOptions", json=signature_only, headers=bearer(tok))
    assert resp.status_code == 200
    assert fake.user_configuration("opts@contoso.com") == {"signaturehtml": "<p>Sig</p>"}  # other options wiped
    assert fake.visible_signature("opts@contoso.com") == "<p>Sig</p>"
    assert fake.writes[-1].via == "graph" and fake.writes[-1].applied

    # Absent → 404, then create with POST.
    fresh = f"{fake.graph_endpoint}/beta/users/fresh@contoso.com/mailFolders/root/userConfigurations"
    missing = http.get(f"{fresh}/OWA.UserOptions", headers=bearer(tok))
    assert missing.status_code == 404
    created = http.post(fresh, json={"id": "OWA.UserOptions", **signature_only}, headers=bearer(tok))
    assert created.status_code == 201
    assert http.get(f"{fresh}/OWA.UserOptions", headers=bearer(tok)).status_code == 200

    v1 = http.get(
        f"{fake.graph_endpoint}/v1.0/users/opts@contoso.com/mailFolders/root/userConfigurations/OWA.UserOptions",
        headers=bearer(tok),
    )
    assert v1.status_code == 400


# ------------------------------------------------------------------------------------------------ Exchange admin REST


def test_invoke_command_set_get_and_errors(fake: FakeMicrosoft, http: httpx.Client) -> None:
    fake.add_user("ann@contoso.com", display_name="Ann")
    tok = token(fake, EXCHANGE_SCOPE)

    org = invoke(http, fake, tok, "Get-OrganizationConfig")
    assert org.status_code == 200
    assert org.json()["value"][0]["PostponeRoamingSignaturesUntilLater"] is True

    resp = invoke(
        http, fake, tok, "Set-MailboxMessageConfiguration", anchor="ann@contoso.com",
        Identity="ann@contoso.com", SignatureHtml="<p>Ann</p>", SignatureText="Ann",
        AutoAddSignature=True, AutoAddSignatureOnReply=False,
    )  # fmt: skip
    assert resp.status_code == 200 and resp.json()["value"] == []
    got = invoke(http, fake, tok, "Get-MailboxMessageConfiguration", Identity="ann@contoso.com").json()["value"][0]
    assert got["SignatureHtml"] == "<p>Ann</p>" and got["SignatureText"] == "Ann"
    assert got["AutoAddSignature"] is True and got["AutoAddSignatureOnReply"] is False
    assert fake.visible_signature("ann@contoso.com") == "<p>Ann</p>"
    assert [(w.mailbox, w.via, w.applied) for w in fake.writes] == [("ann@contoso.com", "exchange", True)]
    assert fake.requests[-2].headers["x-anchormailbox"] == "UPN:ann@contoso.com"

    missing = invoke(
        http, fake, tok, "Set-MailboxMessageConfiguration", Identity="ghost@contoso.com", SignatureHtml="x"
    )
    assert missing.status_code >= 400
    err = missing.json()["error"]
    assert "couldn't be found" in err["details"][0]["message"]
    assert "couldn't be found" in err["innererror"]["internalException"]["message"]

    bad_param = invoke(http, fake, tok, "Set-MailboxMessageConfiguration", Identity="ann@contoso.com", Nope=1)
    assert "Nope" in bad_param.json()["error"]["innererror"]["internalException"]["message"]

    assert invoke(http, fake, None, "Get-OrganizationConfig").status_code == 401
    assert invoke(http, fake, token(fake, GRAPH_SCOPE), "Get-OrganizationConfig").status_code == 401

    no_role = fake.register_app(secret="s", exchange_roles=["Exchange.ManageAsApp"], exchange_admin_role=False)
    forbidden = invoke(http, fake, token(fake, EXCHANGE_SCOPE, client_id=no_role.client_id, credential="s"),
                       "Get-OrganizationConfig")  # fmt: skip
    assert forbidden.status_code == 403


def test_roaming_on_write_succeeds_but_changes_nothing(fake: FakeMicrosoft, http: httpx.Client) -> None:
    fake.add_user("rob@contoso.com", owa_options={"signaturehtml": "<p>old</p>"}, roaming_signature="<p>mine</p>")
    fake.set_roaming(True)
    tok = token(fake, EXCHANGE_SCOPE)
    assert invoke(http, fake, tok, "Get-OrganizationConfig").json()["value"][0][
        "PostponeRoamingSignaturesUntilLater"
    ] is False  # fmt: skip

    resp = invoke(
        http, fake, tok, "Set-MailboxMessageConfiguration", Identity="rob@contoso.com", SignatureHtml="<p>new</p>"
    )
    assert resp.status_code == 200 and resp.json()["value"] == []  # "success"
    assert fake.visible_signature("rob@contoso.com") == "<p>mine</p>"
    got = invoke(http, fake, tok, "Get-MailboxMessageConfiguration", Identity="rob@contoso.com").json()["value"][0]
    assert got["SignatureHtml"] == "<p>old</p>"
    assert len(fake.ignored_writes) == 1 and fake.ignored_writes[0].signature_html == "<p>new</p>"

    # The fix an admin applies: postpone roaming signatures; then the classic signature is what users see.
    invoke(http, fake, tok, "Set-OrganizationConfig", PostponeRoamingSignaturesUntilLater=True)
    invoke(http, fake, tok, "Set-MailboxMessageConfiguration", Identity="rob@contoso.com", SignatureHtml="<p>new</p>")
    assert fake.visible_signature("rob@contoso.com") == "<p>new</p>"


def test_exchange_batch(fake: FakeMicrosoft, http: httpx.Client) -> None:
    fake.add_user("a@contoso.com")
    tok = token(fake, EXCHANGE_SCOPE)
    batch = {
        "requests": [
            {
                "id": str(i),
                "method": "POST",
                "url": "InvokeCommand",
                "headers": {"X-AnchorMailbox": f"UPN:{upn}"},
                "body": {
                    "CmdletInput": {
                        "CmdletName": "Set-MailboxMessageConfiguration",
                        "Parameters": {"Identity": upn, "SignatureHtml": "<p>b</p>"},
                    }
                },
            }
            for i, upn in enumerate(["a@contoso.com", "ghost@contoso.com"])
        ]
    }
    resp = http.post(f"{fake.exchange_endpoint}/adminapi/beta/{fake.tenant_id}/$batch", json=batch, headers=bearer(tok))
    assert resp.status_code == 200
    statuses = {r["id"]: r["status"] for r in resp.json()["responses"]}
    assert statuses["0"] == 200 and statuses["1"] >= 400
    assert fake.visible_signature("a@contoso.com") == "<p>b</p>"


# ------------------------------------------------------------------------------------------------ throttling


def test_per_mailbox_concurrency_limit(fake: FakeMicrosoft) -> None:
    fake.add_user("busy@contoso.com")
    fake.add_user("calm@contoso.com")
    fake.set_latency(0.4, "exchange")
    tok = token(fake, EXCHANGE_SCOPE)
    barrier = threading.Barrier(6)

    def call(upn: str) -> httpx.Response:
        with httpx.Client(verify=fake.ssl_context(), trust_env=False, timeout=10) as client:
            client.get(fake.authority + "/v2.0/.well-known/openid-configuration")  # warm the TLS connection
            barrier.wait()
            return invoke(client, fake, tok, "Get-MailboxMessageConfiguration", anchor=upn, Identity=upn)

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(call, ["busy@contoso.com"] * 5 + ["calm@contoso.com"]))
    busy, calm = results[:5], results[5]
    assert sorted(r.status_code for r in busy) == [200, 200, 200, 200, 429]
    throttled = next(r for r in busy if r.status_code == 429)
    assert throttled.json()["error"]["code"] == "TooManyRequests"
    assert float(throttled.headers["Retry-After"]) > 0
    assert calm.status_code == 200
    assert fake.max_concurrency_seen["busy@contoso.com"] == 5
    assert fake.max_concurrency_seen["calm@contoso.com"] == 1


def test_retry_after_decimal_injected_and_write_bucket(fake: FakeMicrosoft, http: httpx.Client) -> None:
    fake.add_user("w@contoso.com")
    tok = token(fake, EXCHANGE_SCOPE)
    fake.inject(429, service="exchange", cmdlet="Set-MailboxMessageConfiguration", retry_after=0.35)
    fake.inject(503, service="exchange", cmdlet="Set-MailboxMessageConfiguration")
    first = invoke(http, fake, tok, "Set-MailboxMessageConfiguration", Identity="w@contoso.com", SignatureHtml="1")
    assert first.status_code == 429 and first.headers["Retry-After"] == "0.35"
    second = invoke(http, fake, tok, "Set-MailboxMessageConfiguration", Identity="w@contoso.com", SignatureHtml="2")
    assert second.status_code == 503 and "Retry-After" not in second.headers
    assert fake.writes == []

    fake.set_write_rate(2.0, burst=1)
    ok = invoke(http, fake, tok, "Set-MailboxMessageConfiguration", Identity="w@contoso.com", SignatureHtml="3")
    assert ok.status_code == 200
    limited = invoke(http, fake, tok, "Set-MailboxMessageConfiguration", Identity="w@contoso.com", SignatureHtml="4")
    assert limited.status_code == 429
    wait = float(limited.headers["Retry-After"])
    assert 0 < wait <= 0.5
    time.sleep(wait)
    again = invoke(http, fake, tok, "Set-MailboxMessageConfiguration", Identity="w@contoso.com", SignatureHtml="5")
    assert again.status_code == 200
    assert [w.signature_html for w in fake.writes] == ["3", "5"]
    # Reads are not writes: the bucket does not apply.
    assert invoke(http, fake, tok, "Get-OrganizationConfig").status_code == 200


def test_handles_concurrent_load(fake: FakeMicrosoft) -> None:
    for i in range(20):
        fake.add_user(f"load{i}@contoso.com")
    tok = token(fake)
    per_thread = 20

    def worker(i: int) -> list[int]:
        with httpx.Client(verify=fake.ssl_context(), trust_env=False, timeout=10) as client:
            return [
                client.get(f"{fake.graph_endpoint}/v1.0/users/load{i}@contoso.com", headers=bearer(tok)).status_code
                for _ in range(per_thread)
            ]

    started = time.perf_counter()
    with ThreadPoolExecutor(20) as pool:
        statuses = [s for batch in pool.map(worker, range(20)) for s in batch]
    elapsed = time.perf_counter() - started
    assert statuses == [200] * 400
    assert 400 / elapsed > 200, f"{400 / elapsed:.0f} req/s"
    assert fake.errors == []


def test_expired_app_token_is_rejected_and_msal_refetches() -> None:
    # exp is whole seconds (iat truncated): a 3 s lifetime leaves the refetched token >= 2 s to be used in.
    with FakeMicrosoft(token_lifetime=3) as fake, fake.httpx_client(timeout=10) as http:
        fake.add_user("e@contoso.com")
        app = app_for(fake)
        first = app.acquire_token_for_client(scopes=[GRAPH_SCOPE])["access_token"]
        time.sleep(4.1)
        resp = http.get(f"{fake.graph_endpoint}/v1.0/users", headers=bearer(first))
        assert resp.status_code == 401
        assert resp.json()["error"]["message"] == "Lifetime validation failed, the token is expired."
        assert "WWW-Authenticate" in resp.headers
        second = app.acquire_token_for_client(scopes=[GRAPH_SCOPE])
        assert second["token_source"] == "identity_provider"
        assert http.get(f"{fake.graph_endpoint}/v1.0/users", headers=bearer(second["access_token"])).status_code == 200
