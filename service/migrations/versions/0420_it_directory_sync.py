"""directory sync history (one row per real sync, its counts or its error)

Revision ID: 0420_it_directory_sync
Revises: 0001_foundation
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

import service.dbtypes
from alembic import op

revision: str = "0420_it_directory_sync"
down_revision: str | Sequence[str] | None = "0001_foundation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "directory_sync",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("trigger", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("requested_by", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("deactivated", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("refused", sa.Integer(), nullable=False),
        sa.Column("refusals", sa.JSON(), nullable=False),
        sa.Column("error_msgid", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.Column("error_params", sa.JSON(), nullable=False),
        sa.Column("started_at", service.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", service.dbtypes.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["org_id"], ["organisation.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_directory_sync_org_started", "directory_sync", ["org_id", "started_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_directory_sync_org_started", table_name="directory_sync")
    op.drop_table("directory_sync")
