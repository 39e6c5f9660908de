"""attribution opt-outs: who set each one (an employee's own can't be undone by comms), and an audit record
of every change

Revision ID: 0102_opt_out_audit
Revises: 0101_slim_click_indexes
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import service.dbtypes

revision: str = "0102_opt_out_audit"
down_revision: str | Sequence[str] | None = "0101_slim_click_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("trackingoptout") as batch:
        batch.add_column(sa.Column("set_by", sa.String(length=10), nullable=False, server_default="comms"))
    op.create_table(
        "optoutchange",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("employee_id", sa.Integer(), nullable=False),
        sa.Column("opt_out", sa.Boolean(), nullable=False),
        sa.Column("actor", sa.String(length=10), nullable=False),
        sa.Column("actor_detail", sa.String(length=160), nullable=False),
        sa.Column("at", service.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["employee_id"], ["employee.id"]),
        sa.ForeignKeyConstraint(["org_id"], ["organisation.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_optoutchange_org_id"), "optoutchange", ["org_id"], unique=False)
    op.create_index(op.f("ix_optoutchange_employee_id"), "optoutchange", ["employee_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_optoutchange_employee_id"), table_name="optoutchange")
    op.drop_index(op.f("ix_optoutchange_org_id"), table_name="optoutchange")
    op.drop_table("optoutchange")
    with op.batch_alter_table("trackingoptout") as batch:
        batch.drop_column("set_by")
