"""charter: versions, comments on their passages, acceptances

Revision ID: 0520_charter
Revises: 0501_portal_visibility
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import service.dbtypes

revision: str = "0520_charter"
down_revision: str | Sequence[str] | None = "0501_portal_visibility"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = service.dbtypes.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "charter_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.Enum("draft", "published", name="versionstatus", native_enum=False, length=20),
                  nullable=False),  # fmt: skip
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("body", sqlmodel.sql.sqltypes.AutoString(length=100000), nullable=False),
        sa.Column("major", sa.Integer(), nullable=True),
        sa.Column("minor", sa.Integer(), nullable=True),
        sa.Column("changelog", sqlmodel.sql.sqltypes.AutoString(length=5000), nullable=False),
        sa.Column("published_at", UTC, nullable=True),
        sa.Column("published_by", sa.Integer(), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisation.id"]),
        sa.ForeignKeyConstraint(["published_by"], ["app_user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_charter_version_org_status", "charter_version", ["org_id", "status"])
    op.create_table(
        "charter_comment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("passage", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("quote", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("author_user_id", sa.Integer(), nullable=False),
        sa.Column("author_employee_id", sa.Integer(), nullable=True),
        sa.Column("from_comms", sa.Boolean(), nullable=False),
        sa.Column("body", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column("resolved_at", UTC, nullable=True),
        sa.Column("resolved_by", sa.Integer(), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisation.id"]),
        sa.ForeignKeyConstraint(["version_id"], ["charter_version.id"]),
        sa.ForeignKeyConstraint(["parent_id"], ["charter_comment.id"]),
        sa.ForeignKeyConstraint(["author_user_id"], ["app_user.id"]),
        sa.ForeignKeyConstraint(["author_employee_id"], ["employee.id"]),
        sa.ForeignKeyConstraint(["resolved_by"], ["app_user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_charter_comment_version", "charter_comment", ["version_id", "passage"])
    op.create_index("ix_charter_comment_parent_id", "charter_comment", ["parent_id"])
    op.create_table(
        "charter_acceptance",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("employee_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("major", sa.Integer(), nullable=False),
        sa.Column("surface", sa.Enum("portal", "newsletter", name="surface", native_enum=False, length=20),
                  nullable=False),  # fmt: skip
        sa.Column("accepted_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisation.id"]),
        sa.ForeignKeyConstraint(["employee_id"], ["employee.id"]),
        sa.ForeignKeyConstraint(["version_id"], ["charter_version.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("employee_id", "version_id"),
    )
    op.create_index("ix_charter_acceptance_org_major", "charter_acceptance", ["org_id", "major"])


def downgrade() -> None:
    op.drop_index("ix_charter_acceptance_org_major", table_name="charter_acceptance")
    op.drop_table("charter_acceptance")
    op.drop_index("ix_charter_comment_parent_id", table_name="charter_comment")
    op.drop_index("ix_charter_comment_version", table_name="charter_comment")
    op.drop_table("charter_comment")
    op.drop_index("ix_charter_version_org_status", table_name="charter_version")
    op.drop_table("charter_version")
