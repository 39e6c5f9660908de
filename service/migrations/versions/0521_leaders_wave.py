"""newsletter: an earlier wave for leaders (issue.leaders, second wave times, delivery.wave)

Revision ID: 0521_leaders_wave
Revises: 0520_charter
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import service.dbtypes

revision: str = "0521_leaders_wave"
down_revision: str | Sequence[str] | None = "0520_charter"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = "0200_newsletter"  # the issue and delivery tables


def upgrade() -> None:
    with op.batch_alter_table("issue") as batch:
        batch.add_column(sa.Column("leaders", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("second_wave_at", service.dbtypes.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("second_wave_started_at", service.dbtypes.UTCDateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(sa.Column("wave", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("delivery") as batch:
        batch.drop_column("wave")
    with op.batch_alter_table("issue") as batch:
        batch.drop_column("second_wave_started_at")
        batch.drop_column("second_wave_at")
        batch.drop_column("leaders")
