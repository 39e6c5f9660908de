"""The target and provider registries: an unknown name is refused before anything is created, and the
help and docs are derived from the registry."""

import pytest
from sqlmodel import Session, select

from service.connections.providers import CONNECTION_MODULES, connection_module, parse_provider
from service.errors import Invalid
from service.models import Role
from signatures.deploy import engine as deploy_engine
from signatures.deploy.models import Deployment
from signatures.deploy.registry import MAILBOX_TARGETS, mailbox_target, targets_help


def test_an_unknown_target_is_refused_by_the_api_and_nothing_is_created(client, tenant, db):
    r = client.post("/api/deployments", json={"provider": "gmail"}, headers=tenant.headers(Role.it))
    assert r.status_code == 422
    message = r.json()["error"]["message"]
    assert "unknown target 'gmail'" in message and "google, microsoft, file" in message
    with Session(db) as s:
        assert s.exec(select(Deployment)).all() == []


def test_an_unknown_target_is_refused_by_the_engine_before_a_row_exists(db, tenant):
    with Session(db) as s:
        with pytest.raises(Invalid, match="Unknown target 'gmail'; choose one of google, microsoft, file"):
            deploy_engine.create_deployment(s, org_id=tenant.org_id, provider="gmail", dry_run=True)
        assert s.exec(select(Deployment)).all() == []


def test_an_unknown_provider_never_falls_back_to_another_providers_code():
    assert connection_module("google").__name__ == "service.connections.google"
    assert connection_module("microsoft").__name__ == "service.connections.microsoft"
    with pytest.raises(Invalid, match="Unknown provider 'gmail'; choose one of google, microsoft"):
        parse_provider("gmail")
    assert set(CONNECTION_MODULES) == {t.connection for t in MAILBOX_TARGETS.values() if t.connection}


def test_help_and_docs_name_every_target(client, tenant):
    for name, target in MAILBOX_TARGETS.items():
        assert mailbox_target(name) is target
        assert f"{name}: {target.description}" in targets_help()
    schema = client.get("/openapi.json").json()["components"]["schemas"]["DeploymentIn"]
    assert targets_help() in schema["properties"]["provider"]["description"]
    from pathlib import Path

    docs = (Path(__file__).parent.parent / "docs" / "deployments.md").read_text()
    assert "## Adding a target" in docs
    for name in MAILBOX_TARGETS:
        assert f"`{name}`" in docs


def test_the_relay_is_a_tenant_wide_target_whose_setup_the_cli_and_api_share(client, tenant):
    from signatures.deploy.registry import TENANT_WIDE_TARGETS

    relay = TENANT_WIDE_TARGETS["relay"]
    assert "relay" not in MAILBOX_TARGETS  # never deployed mailbox by mailbox
    script = relay.setup("microsoft", relay_host="relay.acme.example", domains=["acme.example"])
    assert "New-OutboundConnector" in script and "relay.acme.example" in script
    api = client.get("/api/relay/setup/microsoft", headers=tenant.headers(Role.it))
    assert api.status_code == 200 and "New-OutboundConnector" in api.text
    with pytest.raises(Invalid, match="microsoft or google"):
        relay.setup("file", relay_host="x", domains=[])
