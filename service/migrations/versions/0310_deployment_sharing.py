"""deployments shared by several workers: who holds each item, and who takes part

Revision ID: 0310_deployment_sharing
Revises: 0300_deployments
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import service.dbtypes

revision: str = "0310_deployment_sharing"
down_revision: str | Sequence[str] | None = "0300_deployments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deploymentitem") as batch:
        batch.add_column(sa.Column("worker", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True))
    op.create_table(
        "deployment_worker",
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("worker", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("heartbeat_at", service.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["deployment_id"], ["deployment.id"]),
        sa.PrimaryKeyConstraint("deployment_id", "worker"),
    )


def downgrade() -> None:
    op.drop_table("deployment_worker")
    with op.batch_alter_table("deploymentitem") as batch:
        batch.drop_column("worker")
