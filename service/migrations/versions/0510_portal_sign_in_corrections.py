"""portal: employees' emailed sign-in links, and the corrections they propose to their directory profile

Revision ID: 0510_portal_sign_in
Revises: 0501_portal_visibility
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import service.dbtypes

revision: str = "0510_portal_sign_in"
down_revision: str | Sequence[str] | None = "0501_portal_visibility"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sign_in_link",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("employee_id", sa.Integer(), nullable=False),
        sa.Column("next_path", sa.String(length=500), nullable=False),
        sa.Column("created_at", service.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", service.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", service.dbtypes.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["employee_id"], ["employee.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sign_in_link_employee_id", "sign_in_link", ["employee_id"])
    op.create_table(
        "profile_correction",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("employee_id", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(length=40), nullable=False),
        sa.Column("old_value", sa.String(length=1000), nullable=True),
        sa.Column("new_value", sa.String(length=1000), nullable=True),
        sa.Column(
            "state",
            sa.Enum("pending", "accepted", "declined", name="correctionstate", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("proposed_by", sa.String(length=320), nullable=False),
        sa.Column("proposed_at", service.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reviewed_by", sa.String(length=320), nullable=True),
        sa.Column("reviewed_at", service.dbtypes.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decline_reason", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(["employee_id"], ["employee.id"]),
        sa.ForeignKeyConstraint(["org_id"], ["organisation.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_profile_correction_employee_id", "profile_correction", ["employee_id"])
    op.create_index("ix_profile_correction_org_state", "profile_correction", ["org_id", "state"])


def downgrade() -> None:
    op.drop_index("ix_profile_correction_org_state", table_name="profile_correction")
    op.drop_index("ix_profile_correction_employee_id", table_name="profile_correction")
    op.drop_table("profile_correction")
    op.drop_index("ix_sign_in_link_employee_id", table_name="sign_in_link")
    op.drop_table("sign_in_link")
