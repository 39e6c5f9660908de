"""Microsoft 365 connection: validation, msal client credentials (secret and certificate), and the
"Test connection" explanations for each missing permission."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import service.connections.microsoft
from service.app import create_app
from service.connections.microsoft import MicrosoftClient, validate
from service.errors import Invalid
from service.models import Role
from tests.fakes.microsoft import FakeMicrosoft
from tests.fakes.tls import make_client_certificate
from tests.ms_support import TENANT, connect, connection, ms_settings

CLIENT = "3b7f6a2c-0d1e-4f5a-9b8c-7d6e5f4a3b2c"


@pytest.fixture
def fake():
    with FakeMicrosoft(tenant_id=TENANT) as f:
        f.add_user("ann@contoso.example")
        yield f
        assert f.errors == []


@pytest.fixture
def mss(settings, fake):
    return ms_settings(settings, fake)


def checks(result) -> dict[str, dict]:
    return {c["name"]: c for c in result["checks"]}


def test_validate_normalises_and_refuses_bad_input():
    cert = make_client_certificate()
    out = validate(
        config={"tenant_id": TENANT, "client_id": CLIENT, "junk": 1}, secret=cert.private_key_pem + cert.certificate_pem
    )
    assert out == {
        "tenant_id": TENANT,
        "client_id": CLIENT,
        "credential_type": "certificate",
        "certificate_thumbprint": cert.sha1_thumbprint,
    }
    assert (
        validate(config={"tenant_id": TENANT, "client_id": CLIENT}, secret="a~long~secret~value")["credential_type"]
        == "secret"
    )
    for config, secret, words in [
        ({"tenant_id": "nope", "client_id": CLIENT}, "a~long~secret", "tenant_id"),
        ({"tenant_id": TENANT, "client_id": "x"}, "a~long~secret", "client_id"),
        ({"tenant_id": TENANT, "client_id": CLIENT}, cert.certificate_pem, "private key"),
        ({"tenant_id": TENANT, "client_id": CLIENT}, cert.private_key_pem, "certificate_thumbprint"),
        ({"tenant_id": TENANT, "client_id": CLIENT}, "short", "too short"),
        ({"tenant_id": TENANT, "client_id": CLIENT, "groups": "sales"}, None, "groups"),
    ]:
        with pytest.raises(Invalid) as err:
            validate(config=config, secret=secret)
        assert words in err.value.message


def test_everything_granted_passes(db, tenant, fake, mss):
    conn_id = connect(db, tenant.org_id, fake, mss)
    result = service.connections.microsoft.test_connection(connection(db, conn_id), mss)
    assert result["ok"], result
    assert list(checks(result)) == [
        "graph_token",
        "read_users",
        "exchange_token",
        "exchange_role",
        "roaming_signatures",
    ]
    assert "ann@contoso.example" in checks(result)["read_users"]["message"]


@pytest.mark.parametrize("sha1", [False, True])
def test_certificate_credential_runs_the_real_msal_flow(db, tenant, fake, mss, sha1):
    cert = make_client_certificate()
    app = fake.register_app(
        certificate=cert.certificate, graph_roles=["User.Read.All"], exchange_roles=["Exchange.ManageAsApp"]
    )
    secret = cert.private_key_pem + ("" if sha1 else cert.certificate_pem)
    config = {"certificate_thumbprint": cert.sha1_thumbprint} if sha1 else {}
    conn_id = connect(db, tenant.org_id, fake, mss, secret=secret, client_id=app.client_id, config=config)
    result = service.connections.microsoft.test_connection(connection(db, conn_id), mss)
    assert result["ok"], result
    client = MicrosoftClient.from_connection(connection(db, conn_id), mss)
    before = fake.request_count("authority", path_contains="/token")
    client.token("graph"), client.token("graph"), client.token("exchange")
    assert fake.request_count("authority", path_contains="/token") - before <= 2  # cached until expiry


def test_missing_admin_consent(db, tenant, fake, mss):
    app = fake.register_app(
        secret="consent-missing-secret",
        graph_roles=["User.Read.All"],
        exchange_roles=["Exchange.ManageAsApp"],
        consented=False,
    )
    conn_id = connect(db, tenant.org_id, fake, mss, secret="consent-missing-secret", client_id=app.client_id)
    result = checks(service.connections.microsoft.test_connection(connection(db, conn_id), mss))
    assert not result["graph_token"]["ok"] and "Grant admin consent" in result["graph_token"]["message"]


def test_missing_exchange_manage_as_app(db, tenant, fake, mss):
    app = fake.register_app(secret="no-exchange-permission", graph_roles=["User.Read.All"], exchange_roles=[])
    conn_id = connect(db, tenant.org_id, fake, mss, secret="no-exchange-permission", client_id=app.client_id)
    result = checks(service.connections.microsoft.test_connection(connection(db, conn_id), mss))
    assert result["graph_token"]["ok"] and result["read_users"]["ok"]
    assert not result["exchange_token"]["ok"] and "Exchange.ManageAsApp" in result["exchange_token"]["message"]


def test_missing_exchange_role(db, tenant, fake, mss):
    app = fake.register_app(
        secret="no-exchange-role-here",
        graph_roles=["User.Read.All"],
        exchange_roles=["Exchange.ManageAsApp"],
        exchange_admin_role=False,
    )
    conn_id = connect(db, tenant.org_id, fake, mss, secret="no-exchange-role-here", client_id=app.client_id)
    result = checks(service.connections.microsoft.test_connection(connection(db, conn_id), mss))
    assert result["exchange_token"]["ok"]
    assert not result["exchange_role"]["ok"] and "Exchange Administrator" in result["exchange_role"]["message"]
    assert "roaming_signatures" not in result


def test_missing_user_read_all(db, tenant, fake, mss):
    app = fake.register_app(
        secret="no-user-read-all-x",
        graph_roles=["MailboxConfigItem.ReadWrite"],
        exchange_roles=["Exchange.ManageAsApp"],
    )
    conn_id = connect(db, tenant.org_id, fake, mss, secret="no-user-read-all-x", client_id=app.client_id)
    result = checks(service.connections.microsoft.test_connection(connection(db, conn_id), mss))
    assert not result["read_users"]["ok"] and "User.Read.All" in result["read_users"]["message"]


def test_wrong_secret_and_roaming_on_are_explained(db, tenant, fake, mss):
    conn_id = connect(db, tenant.org_id, fake, mss, secret="definitely-the-wrong-secret")
    result = checks(service.connections.microsoft.test_connection(connection(db, conn_id), mss))
    assert "client secret is wrong" in result["graph_token"]["message"]
    fake.set_roaming(True)
    conn_id = connect(db, tenant.org_id, fake, mss)
    result = checks(service.connections.microsoft.test_connection(connection(db, conn_id), mss))
    assert not result["roaming_signatures"]["ok"]
    assert "PostponeRoamingSignaturesUntilLater" in result["roaming_signatures"]["message"]


def test_api_stores_the_secret_encrypted_and_never_returns_it(db, tenant, fake, mss):
    with TestClient(create_app(settings=mss, engine=db)) as client:
        body = {"config": {"tenant_id": TENANT, "client_id": fake.client_id}, "secret": fake.client_secret}
        resp = client.put("/api/connections/microsoft", json=body, headers=tenant.headers(Role.it))
        assert resp.status_code == 200, resp.text
        assert fake.client_secret not in resp.text and resp.json()["has_secret"]
        assert resp.json()["config"]["credential_type"] == "secret"
        tested = client.post("/api/connections/microsoft/test", headers=tenant.headers(Role.it))
        assert tested.status_code == 200 and tested.json()["ok"], tested.text
        assert fake.client_secret not in tested.text
        bad = client.put(
            "/api/connections/microsoft",
            json={"config": {"tenant_id": "x"}, "secret": "s"},
            headers=tenant.headers(Role.it),
        )
        assert bad.status_code == 422
