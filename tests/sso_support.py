"""Single sign-on from tests: the two fake identity providers, an app pointed at them, and a browser-like walk
through the redirects (the app through TestClient, the provider over loopback HTTP)."""

from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from fastapi.testclient import TestClient

from tests.conftest import Tenant
from tests.fakes.google_oidc import FakeGoogleOidc
from tests.fakes.microsoft import FakeMicrosoft
from tests.page_support import csrf_of

BASE = "https://relais.test"  # the test settings' public_base_url: the redirect URI is registered under it
CALLBACK = BASE + "/sign-in/sso/callback"
TENANT_ID = "7d2b8f4e-1c3a-4b5d-9e6f-0a1b2c3d4e5f"
OTHER_TENANT_ID = "0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f"


@dataclass
class Entra:
    fake: FakeMicrosoft
    client_id: str
    secret: str
    comms_group: str
    it_group: str


@dataclass
class Google:
    fake: FakeGoogleOidc
    client_id: str
    secret: str


def entra_config(entra: Entra, **overrides) -> dict:
    return {
        "provider": "microsoft", "client_id": entra.client_id, "client_secret": entra.secret,
        "tenant_id": TENANT_ID, "domains": ["acme.example"],
        "group_roles": [{"group": entra.comms_group, "role": "comms"}, {"group": entra.it_group, "role": "it"}],
        "default_role": "deny", **overrides,
    }  # fmt: skip


def google_config(google: Google, **overrides) -> dict:
    return {
        "provider": "google", "client_id": google.client_id, "client_secret": google.secret,
        "domains": ["acme.example"], "default_role": "deny", **overrides,
    }  # fmt: skip


def configure(app, tenant: Tenant, body: dict) -> dict:
    """PUT /api/sso with the organisation's admin key; the public view it answers."""
    with TestClient(app) as api:
        r = api.put("/api/sso", json=body, headers=tenant.headers())
    assert r.status_code == 200, r.text
    return r.json()


def browser(app) -> TestClient:
    return TestClient(app, base_url=BASE)


def provider_http(entra: Entra) -> httpx.Client:
    """What the browser uses to reach the provider: trusts the fake's CA, no proxies."""
    return httpx.Client(verify=entra.fake.ssl_context(), trust_env=False, timeout=10)


def start(client: TestClient, email: str, next_: str = "") -> httpx.Response:
    page = client.get("/sign-in")
    return client.post(
        "/sign-in/sso", data={"email": email, "csrf": csrf_of(page.text), "next": next_}, follow_redirects=False
    )


def walk(client: TestClient, http: httpx.Client, response: httpx.Response, *, stop_at_callback: bool = False):
    """Follow redirects as a browser would: the app's through TestClient, the provider's over the network.
    Returns the last response (and, with stop_at_callback, the callback URL the provider sent the browser to)."""
    for _ in range(10):
        if response.status_code not in (302, 303, 307):
            return response
        location = response.headers["location"]
        if location.startswith("/"):
            location = BASE + location
        ours = urlsplit(location).netloc == urlsplit(BASE).netloc
        if ours and stop_at_callback and urlsplit(location).path == "/sign-in/sso/callback":
            return location
        response = client.get(location, follow_redirects=False) if ours else http.get(location)
    raise AssertionError("too many redirects")


def sign_in_via_sso(client: TestClient, http: httpx.Client, email: str, next_: str = "") -> httpx.Response:
    return walk(client, http, start(client, email, next_))
