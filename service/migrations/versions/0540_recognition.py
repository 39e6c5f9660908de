"""recognition: contests, their announced winners, and the portal visitor hashes that mark self-clicks

Revision ID: 0540_recognition
Revises: 0501_portal_visibility
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import service.dbtypes

revision: str = "0540_recognition"
down_revision: str | Sequence[str] | None = "0501_portal_visibility"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

METRICS = ("confirmed_posts", "clicks_per_share", "articles_shared", "best_post")


def upgrade() -> None:
    op.create_table(
        "contest",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column("metric", sa.Enum(*METRICS, name="metric", native_enum=False, length=20), nullable=False),
        sa.Column("starts_at", service.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", service.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("audience", sa.JSON(), nullable=False),
        sa.Column("winners", sa.Integer(), nullable=False),
        sa.Column("announced_at", service.dbtypes.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", service.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisation.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_contest_org_id", "contest", ["org_id"])
    op.create_table(
        "contest_winner",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contest_id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("place", sa.Integer(), nullable=False),
        sa.Column("employee_id", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("article_id", sa.Integer(), nullable=True),
        sa.Column("network", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.ForeignKeyConstraint(["contest_id"], ["contest.id"]),
        sa.ForeignKeyConstraint(["employee_id"], ["employee.id"]),
        sa.ForeignKeyConstraint(["org_id"], ["organisation.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_contest_winner_contest_id", "contest_winner", ["contest_id"])
    op.create_table(
        "recognition_own_device",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("employee_id", sa.Integer(), nullable=False),
        sa.Column("visitor", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("seen_on", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(["employee_id"], ["employee.id"]),
        sa.ForeignKeyConstraint(["org_id"], ["organisation.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("employee_id", "visitor"),
    )
    op.create_index("ix_recognition_own_device_org_id", "recognition_own_device", ["org_id"])


def downgrade() -> None:
    op.drop_index("ix_recognition_own_device_org_id", table_name="recognition_own_device")
    op.drop_table("recognition_own_device")
    op.drop_index("ix_contest_winner_contest_id", table_name="contest_winner")
    op.drop_table("contest_winner")
    op.drop_index("ix_contest_org_id", table_name="contest")
    op.drop_table("contest")
