"""instance key fingerprint: the service refuses to start with a secret key other than the database's

Revision ID: 0003_instance_key
Revises: 0002_links
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import service.dbtypes

revision: str = "0003_instance_key"
down_revision: str | Sequence[str] | None = "0002_links"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "instancekey",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("link_key_enc", sa.String(), nullable=True),
        sa.Column("created_at", service.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("instancekey")
