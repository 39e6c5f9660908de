"""Tokens are asked for the real resources, whatever address requests go to; one setting picks the cloud."""

from __future__ import annotations

import pytest

from service.connections.microsoft import CLOUDS, Credentials, MicrosoftClient, endpoint, token_scope
from service.settings import Settings
from tests.fakes.microsoft import FakeMicrosoft
from tests.ms_support import TENANT, ms_settings


@pytest.fixture
def fake():
    with FakeMicrosoft(tenant_id=TENANT) as f:
        yield f


def test_endpoints_behind_a_proxy_still_get_tokens_for_graph_and_exchange(fake, settings):
    """The fake stands where a proxy would: its address is not a resource Entra knows."""
    mss = ms_settings(settings, fake)
    client = MicrosoftClient(Credentials(TENANT, fake.client_id, fake.client_secret, "secret"), mss, pool=2)
    try:
        assert client.graph == fake.graph_endpoint.rstrip("/") and client.exchange == fake.exchange_endpoint.rstrip("/")
        assert client.scopes == {
            "graph": "https://graph.microsoft.com/.default",
            "exchange": "https://outlook.office365.com/.default",
        }
        assert client.graph_get("/v1.0/users", params={"$top": "1"})["value"] == []
        assert client.invoke("Get-OrganizationConfig")[0]["PostponeRoamingSignaturesUntilLater"] is True
    finally:
        client.close()


def test_entra_refuses_a_token_for_a_proxy_address(fake):
    """What Relais used to ask for, and why it failed: the fake answers as Entra does."""
    result = fake.msal_app().acquire_token_for_client(scopes=[f"{fake.graph_endpoint}/.default"])
    assert "access_token" not in result and 500011 in result.get("error_codes", [])


@pytest.mark.parametrize(
    ("cloud", "graph", "exchange", "authority"),
    [
        ("global", "https://graph.microsoft.com", "https://outlook.office365.com", "https://login.microsoftonline.com"),
        ("usgov", "https://graph.microsoft.us", "https://outlook.office365.us", "https://login.microsoftonline.us"),
        ("usgovdod", "https://dod-graph.microsoft.us", "https://webmail.apps.mil", "https://login.microsoftonline.us"),
        (
            "china",
            "https://microsoftgraph.chinacloudapi.cn",
            "https://partner.outlook.cn",
            "https://login.chinacloudapi.cn",
        ),
    ],
)
def test_one_setting_sets_a_clouds_endpoints_and_resources(cloud, graph, exchange, authority):
    settings = Settings(ms_cloud=cloud)
    assert (endpoint(settings, "graph"), endpoint(settings, "exchange"), endpoint(settings, "authority")) == (
        graph, exchange, authority,
    )  # fmt: skip
    assert token_scope(settings, "graph") == f"{graph}/.default"
    assert token_scope(settings, "exchange") == f"{exchange}/.default"
    proxied = Settings(ms_cloud=cloud, ms_graph_endpoint="https://graph-proxy.corp.example/")
    assert endpoint(proxied, "graph") == "https://graph-proxy.corp.example"
    assert token_scope(proxied, "graph") == f"{graph}/.default"  # the resource does not move with the address


def test_the_addin_checks_tokens_against_the_clouds_authority():
    from signatures.addin.tokens import TokenValidator

    validator = TokenValidator(Settings(ms_cloud="usgov"), tenant_allowed=lambda tid: True)
    assert validator._jwks_uri("tid") == CLOUDS["usgov"].authority + "/tid/discovery/v2.0/keys"
