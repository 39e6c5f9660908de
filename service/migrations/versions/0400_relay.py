"""relay processes and their counters

Revision ID: 0400_relay
Revises: 0002_links
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

import service.dbtypes
from alembic import op

revision: str = "0400_relay"
down_revision: str | Sequence[str] | None = "0002_links"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "relayprocess",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("hostname", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("listen", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("next_hop", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("counters", sa.JSON(), nullable=False),
        sa.Column("started_at", service.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", service.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", service.dbtypes.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["org_id"], ["organisation.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_relayprocess_org_id"), "relayprocess", ["org_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_relayprocess_org_id"), table_name="relayprocess")
    op.drop_table("relayprocess")
