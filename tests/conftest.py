"""Shared fixtures: a migrated database per backend (SQLite always, PostgreSQL when
RELAIS_TEST_POSTGRES_URL is set), an app with its own data dir, and API keys for every role."""

import os
import uuid
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url
from sqlmodel import Session, SQLModel

from tests import netguard

netguard.install()

from service.app import create_app  # noqa: E402
from service.auth import create_api_key  # noqa: E402
from service.db import make_engine  # noqa: E402
from service.migrate import upgrade  # noqa: E402
from service.models import STAFF_ROLES, Brand, Organisation, Role  # noqa: E402
from service.settings import Settings  # noqa: E402

BACKENDS = ["sqlite"] + (["postgres"] if os.environ.get("RELAIS_TEST_POSTGRES_URL") else [])


def _postgres_engine():
    """A fresh database per test session, so parallel runs never share state."""
    base = make_url(os.environ["RELAIS_TEST_POSTGRES_URL"])
    name = f"relais_t_{uuid.uuid4().hex[:10]}"
    admin = make_engine(
        base.set(database="postgres").render_as_string(hide_password=False), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(base.set(database=name).render_as_string(hide_password=False))
    return engine, admin, name


@pytest.fixture(scope="session", params=BACKENDS)
def engine(request, tmp_path_factory):
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "relais.db"
        eng = make_engine(f"sqlite:///{path}")
        upgrade(eng)
        yield eng
        eng.dispose()
        return
    eng, admin, name = _postgres_engine()
    upgrade(eng)
    yield eng
    eng.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def db(engine):
    """The migrated engine, emptied after each test."""
    yield engine
    with engine.begin() as conn:
        existing = set(inspect(conn).get_table_names())
        for table in reversed(SQLModel.metadata.sorted_tables):
            if table.name in existing:  # a model without its migration yet fails test_migrations instead
                conn.execute(table.delete())


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data", public_base_url="https://relais.test", seed_demo=False, secret_key="test-secret-key"
    )


@pytest.fixture
def app(db, settings):
    return create_app(settings=settings, engine=db)


@pytest.fixture
def client(app):
    with TestClient(app) as c:
        yield c


@dataclass
class Tenant:
    org_id: int
    keys: dict[Role, str]

    def headers(self, role: Role = Role.admin) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


BRAND = dict(
    company_name="Relais Test Co", website="https://relais.test", logo_url="https://relais.test/assets/logo.png",
    logo_width=160, logo_height=48, primary_color="#1F3A5F", secondary_color="#6B7280",
    font_stack="Arial, Helvetica, sans-serif", address="1 Test Street, Paris",
    social_links=[{"network": "LinkedIn", "url": "https://www.linkedin.com/company/relais-test"}],
    disclaimer_html="<p>Confidential.</p>",
)  # fmt: skip


def make_tenant(engine, slug: str = "acme", with_brand: bool = True) -> Tenant:
    with Session(engine) as session:
        org = Organisation(name=slug.title(), slug=slug)
        session.add(org)
        session.flush()
        if with_brand:
            session.add(Brand(org_id=org.id, **BRAND))
        keys = {role: create_api_key(session, org_id=org.id, name=f"{role} key", role=role)[1] for role in STAFF_ROLES}
        session.commit()
        return Tenant(org_id=org.id, keys=keys)


@pytest.fixture
def tenant(db) -> Tenant:
    return make_tenant(db)
