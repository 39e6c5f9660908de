"""Fixtures for the single sign-on tests (`pytest_plugins = ["tests.sso_fixtures"]`): both fake identity providers
with Acme's people, and an app pointed at them."""

from collections.abc import Iterator

import pytest

from service.app import create_app
from tests.conftest import Tenant, make_tenant
from tests.fakes.google_oidc import FakeGoogleOidc
from tests.fakes.microsoft import FakeMicrosoft
from tests.sso_support import CALLBACK, TENANT_ID, Entra, Google


@pytest.fixture
def entra() -> Iterator[Entra]:
    with FakeMicrosoft(tenant_id=TENANT_ID, tenant_domain="acme.onmicrosoft.com") as fake:
        secret = "Abc8Q~" + "s" * 34
        reg = fake.register_app(secret=secret, redirect_uris=[CALLBACK], display_name="Relais sign-in")
        fake.add_user("alice@acme.example", display_name="Alice Martin")
        fake.add_user("bob@acme.example", display_name="Bob Durand")
        fake.add_user("eve@beta.example", display_name="Eve Other")  # an address of another organisation's domain
        comms = fake.add_group("Relais communications", ["alice@acme.example"])["id"]
        it = fake.add_group("Relais IT")["id"]
        yield Entra(fake, reg.client_id, secret, comms, it)


@pytest.fixture
def google() -> Iterator[Google]:
    with FakeGoogleOidc() as fake:
        client = fake.register_client([CALLBACK])
        fake.add_account("carol@acme.example", hd="acme.example", name="Carol Petit")
        fake.add_account("dan@gmail.com")  # a consumer account: no hd
        fake.add_account("frank@beta.example", hd="beta.example")
        yield Google(fake, client.client_id, client.secret)


@pytest.fixture
def sso_app(db, settings, entra, google):
    settings = settings.model_copy(
        update={"ms_authority_host": entra.fake.authority_host, "ms_ca_bundle": entra.fake.ca_file,
                "google_accounts_url": google.fake.url}
    )  # fmt: skip
    return create_app(settings=settings, engine=db)


@pytest.fixture
def org(db) -> Tenant:
    return make_tenant(db)
