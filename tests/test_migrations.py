"""The Alembic migrations build exactly the schema the models describe, on every backend."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from service.features import load_models


def test_migrations_match_the_models(engine):
    load_models()
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == [], f"models and migrations disagree; add a migration: {diff}"


def test_upgrade_is_idempotent(engine):
    from service.migrate import upgrade

    upgrade(engine)  # already at head: nothing to do, no error
    with engine.connect() as conn:
        heads = MigrationContext.configure(conn).get_current_heads()
    assert heads and all(h for h in heads)
