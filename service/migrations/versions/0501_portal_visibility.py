"""portal: what each employee agrees to show others

Revision ID: 0501_portal_visibility
Revises: 0500_portal
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import service.dbtypes

revision: str = "0501_portal_visibility"
down_revision: str | Sequence[str] | None = "0500_portal"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "employee_visibility",
        sa.Column("employee_id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("rank_visible", sa.Boolean(), nullable=False),
        sa.Column("leader_name_visible", sa.Boolean(), nullable=False),
        sa.Column("public_ambassador", sa.Boolean(), nullable=False),
        sa.Column("updated_at", service.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["employee_id"], ["employee.id"]),
        sa.ForeignKeyConstraint(["org_id"], ["organisation.id"]),
        sa.PrimaryKeyConstraint("employee_id"),
    )
    op.create_index("ix_employee_visibility_org_id", "employee_visibility", ["org_id"])


def downgrade() -> None:
    op.drop_index("ix_employee_visibility_org_id", table_name="employee_visibility")
    op.drop_table("employee_visibility")
