"""Shared set-up for the Microsoft 365 tests: a started fake, settings pointing at it, a saved connection."""

from __future__ import annotations

from sqlmodel import Session

from service.connections.microsoft import Credentials, MicrosoftClient
from service.connections.models import Provider, ProviderConnection
from service.connections.service import save_connection
from service.db import session_scope
from service.settings import Settings
from signatures.layouts import LAYOUTS
from signatures.models import AssignmentKind, SignatureTemplate, TemplateAssignment, TemplateVersion
from tests.fakes.microsoft import FakeMicrosoft

TENANT = "8f0f6a3e-1b2c-4d5e-8f90-a1b2c3d4e5f6"


def ms_settings(settings: Settings, fake: FakeMicrosoft, **overrides) -> Settings:
    return settings.model_copy(update={
        "ms_authority_host": fake.authority_host, "ms_graph_endpoint": fake.graph_endpoint,
        "ms_exchange_endpoint": fake.exchange_endpoint, "ms_ca_bundle": fake.ca_file, **overrides,
    })  # fmt: skip


def client_for(fake: FakeMicrosoft, settings: Settings) -> MicrosoftClient:
    """A Graph/Exchange client signed in to the fake with its client secret."""
    creds = Credentials(
        tenant_id=fake.tenant_id, client_id=fake.client_id, credential=fake.client_secret, kind="secret"
    )
    return MicrosoftClient(creds, ms_settings(settings, fake))


def connect(db, org_id: int, fake: FakeMicrosoft, settings: Settings, *, secret: str | None = None,
            client_id: str | None = None, config: dict | None = None) -> int:  # fmt: skip
    with session_scope(db) as s:
        row = save_connection(
            s, org_id=org_id, provider=Provider.microsoft,
            config={"tenant_id": fake.tenant_id, "client_id": client_id or fake.client_id, **(config or {})},
            secret=secret if secret is not None else fake.client_secret, settings=settings,
        )  # fmt: skip
        return row.id


def connection(db, conn_id: int) -> ProviderConnection:
    with Session(db) as s:
        row = s.get(ProviderConnection, conn_id)
        s.expunge(row)
        return row


def default_template(db, org_id: int, layout: str = "compact") -> int:
    with session_scope(db) as s:
        t = SignatureTemplate(org_id=org_id, name="Corporate")
        s.add(t)
        s.flush()
        s.add(
            TemplateVersion(
                template_id=t.id,
                version=1,
                new_source=LAYOUTS[layout].new_source,
                reply_source=LAYOUTS[layout].reply_source,
            )
        )
        s.add(TemplateAssignment(org_id=org_id, template_id=t.id, kind=AssignmentKind.default))
        return t.id
