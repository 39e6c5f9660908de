"""The Google connection: validation of the service-account key, write-only secrets, and a connection test
whose every failure is a sentence an admin can act on."""

from __future__ import annotations

import json
import logging

import pytest

from service.connections import google
from service.errors import Invalid
from service.models import Role
from tests.fakes.google import SCOPE_GMAIL_BASIC, SCOPE_GROUP_READONLY, SCOPE_USER_READONLY, fake_google

ADMIN = "admin@example.com"


@pytest.fixture
def fake():
    with fake_google() as f:
        f.add_user(ADMIN, admin=True)
        f.add_user("ann.lee@example.com")
        yield f


@pytest.fixture
def google_app(app, fake, settings):
    settings.google_api_endpoint = fake.url
    settings.google_token_uri = fake.token_uri
    return app


def put(client, tenant, secret, **config):
    return client.put(
        "/api/connections/google",
        headers=tenant.headers(Role.it),
        json={"config": {"admin_subject": ADMIN, **config}, "secret": secret},
    )


def run_test(client, tenant):
    r = client.post("/api/connections/google/test", headers=tenant.headers(Role.it))
    assert r.status_code == 200, r.text
    return r.json()


def test_validate_refuses_bad_keys_and_a_missing_admin_subject(fake):
    info = fake.service_account_info()
    good = json.dumps(info)
    assert google.validate(config={"admin_subject": ADMIN}, secret=good) == {
        "admin_subject": ADMIN,
        "customer_id": "my_customer",
    }
    cases = [
        ({"admin_subject": ADMIN}, "{not json", "not valid JSON"),
        ({"admin_subject": ADMIN}, json.dumps(dict(info, type="authorized_user")), "service-account key"),
        (
            {"admin_subject": ADMIN},
            json.dumps({k: v for k, v in info.items() if k != "private_key"}),
            "missing private_key",
        ),
        ({"admin_subject": ADMIN}, json.dumps(dict(info, token_uri="")), "missing token_uri"),
        ({}, good, "admin_subject"),
        ({"admin_subject": "not-an-email"}, good, "admin_subject"),
        ({"admin_subject": ADMIN, "tenant": "x"}, good, "Unknown Google setting"),
        ({"admin_subject": ADMIN, "scopes": "gmail"}, good, "list of OAuth scope"),
    ]
    for config, secret, message in cases:
        with pytest.raises(Invalid, match=message):
            google.validate(config=config, secret=secret)
    # Config can change without re-entering the secret.
    assert (
        google.validate(config={"admin_subject": ADMIN, "customer_id": "C03az79cb"}, secret=None)["customer_id"]
        == "C03az79cb"
    )


def test_the_secret_is_write_only_and_the_test_passes(client, tenant, google_app, fake, caplog):
    info = fake.service_account_info()
    caplog.set_level(logging.DEBUG)
    r = put(client, tenant, json.dumps(info))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["has_secret"] is True and body["config"] == {"admin_subject": ADMIN, "customer_id": "my_customer"}
    assert "PRIVATE KEY" not in r.text
    assert "PRIVATE KEY" not in client.get("/api/connections/google", headers=tenant.headers(Role.it)).text
    result = run_test(client, tenant)
    assert result["ok"] is True, result
    assert [c["name"] for c in result["checks"]] == ["directory_token", "directory_read", "gmail_token", "gmail_read"]
    assert fake.requests["users.list"] == 1 and fake.requests["sendAs.list"] == 1
    logged = "\n".join(str(rec.__dict__) for rec in caplog.records)
    assert "PRIVATE KEY" not in logged and info["private_key_id"] not in logged
    bad = client.put(
        "/api/connections/google",
        headers=tenant.headers(Role.it),
        json={"config": {"admin_subject": ADMIN}, "secret": "{}"},
    )
    assert bad.status_code == 422 and "missing" in bad.json()["error"]["message"]
    assert client.post("/api/connections/google/test", headers=tenant.headers(Role.comms)).status_code == 403


def test_missing_delegation_names_the_client_id_scopes_and_where_to_fix_it(client, tenant, google_app, fake):
    info = fake.service_account_info(delegated_scopes=[SCOPE_GMAIL_BASIC])
    put(client, tenant, json.dumps(info))
    result = run_test(client, tenant)
    assert result["ok"] is False
    failed = {c["name"]: c["message"] for c in result["checks"] if not c["ok"]}
    assert list(failed) == ["directory_token"]
    message = failed["directory_token"]
    assert info["client_id"] in message and SCOPE_USER_READONLY in message and SCOPE_GROUP_READONLY in message
    assert "Security → API controls → Domain-wide delegation" in message and "24 h" in message


def test_an_unknown_admin_subject_is_named(client, tenant, google_app, fake):
    secret = json.dumps(fake.service_account_info())
    client.put(
        "/api/connections/google",
        headers=tenant.headers(Role.it),
        json={"config": {"admin_subject": "gone@example.com"}, "secret": secret},
    )
    result = run_test(client, tenant)
    assert not result["ok"]
    assert "admin subject gone@example.com does not exist" in result["checks"][0]["message"]


def test_a_subject_who_is_not_an_admin_is_told_so(client, tenant, google_app, fake):
    client.put(
        "/api/connections/google",
        headers=tenant.headers(Role.it),
        json={"config": {"admin_subject": "ann.lee@example.com"}, "secret": json.dumps(fake.service_account_info())},
    )
    checks = {c["name"]: c for c in run_test(client, tenant)["checks"]}
    assert checks["directory_token"]["ok"] and not checks["directory_read"]["ok"]
    assert "not a Workspace admin" in checks["directory_read"]["message"]
    assert checks["gmail_read"]["ok"]


def test_a_disabled_api_says_to_enable_it(client, tenant, google_app, fake):
    put(client, tenant, json.dumps(fake.service_account_info()))
    fake.inject(
        "error",
        "users.list",
        status=403,
        reason="accessNotConfigured",
        message="Admin SDK API has not been used in project 1234 before or it is disabled.",
    )
    fake.inject(
        "error",
        "sendAs.list",
        status=403,
        reason="accessNotConfigured",
        message="Gmail API has not been used in project 1234 before or it is disabled.",
    )
    checks = {c["name"]: c["message"] for c in run_test(client, tenant)["checks"]}
    assert "Admin SDK API is not enabled" in checks["directory_read"]
    assert "Gmail API is not enabled" in checks["gmail_read"]
    assert "APIs & Services" in checks["gmail_read"]


def test_a_missing_scope_on_a_call_is_explained(client, tenant, google_app, fake):
    put(client, tenant, json.dumps(fake.service_account_info()))
    fake.inject(
        "error",
        "sendAs.list",
        status=403,
        reason="insufficientPermissions",
        message="Request had insufficient authentication scopes.",
    )
    checks = {c["name"]: c["message"] for c in run_test(client, tenant)["checks"]}
    assert "lacks a scope" in checks["gmail_read"] and "gmail.settings.basic" in checks["gmail_read"]
