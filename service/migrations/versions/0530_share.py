"""share: feed subscriptions, their suggestions, and the share center's texts on articles

Revision ID: 0530_share
Revises: 0200_newsletter
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import service.dbtypes

revision: str = "0530_share"
down_revision: str | Sequence[str] | None = "0200_newsletter"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KIND = sa.Enum("company", "sector", name="articlekind", native_enum=False, length=20)


def upgrade() -> None:
    with op.batch_alter_table("article") as batch:
        batch.add_column(sa.Column("text_email", sa.String(length=3000), nullable=False, server_default=""))
        batch.add_column(sa.Column("text_whatsapp", sa.String(length=1000), nullable=False, server_default=""))
        batch.add_column(sa.Column("text_bluesky", sa.String(length=600), nullable=False, server_default=""))
        batch.add_column(sa.Column("shareable", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "feed",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("kind", KIND, nullable=False),
        sa.Column("etag", sa.String(length=300), nullable=True),
        sa.Column("last_modified", sa.String(length=100), nullable=True),
        sa.Column(
            "status",
            sa.Enum("new", "ok", "not_modified", "error", name="feedstatus", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("error_kind", sa.String(length=30), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_polled_at", service.dbtypes.UTCDateTime(timezone=True), nullable=True),
        sa.Column("next_poll_at", service.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", service.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisation.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("org_id", "url"),
    )
    op.create_index("ix_feed_org_id", "feed", ["org_id"])
    op.create_index("ix_feed_next_poll_at", "feed", ["next_poll_at"])
    op.create_table(
        "feed_item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("feed_id", sa.Integer(), nullable=False),
        sa.Column("canonical_url", sa.String(length=2000), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("summary", sa.String(length=2000), nullable=False),
        sa.Column("published_at", service.dbtypes.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "state",
            sa.Enum("new", "article", "dismissed", name="itemstate", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("article_id", sa.Integer(), nullable=True),
        sa.Column("created_at", service.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["article_id"], ["article.id"]),
        sa.ForeignKeyConstraint(["feed_id"], ["feed.id"]),
        sa.ForeignKeyConstraint(["org_id"], ["organisation.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("org_id", "canonical_url"),
    )
    op.create_index("ix_feed_item_feed_id", "feed_item", ["feed_id"])
    op.create_index("ix_feed_item_org_state", "feed_item", ["org_id", "state"])


def downgrade() -> None:
    op.drop_index("ix_feed_item_org_state", table_name="feed_item")
    op.drop_index("ix_feed_item_feed_id", table_name="feed_item")
    op.drop_table("feed_item")
    op.drop_index("ix_feed_next_poll_at", table_name="feed")
    op.drop_index("ix_feed_org_id", table_name="feed")
    op.drop_table("feed")
    with op.batch_alter_table("article") as batch:
        for name in ("shareable", "text_bluesky", "text_whatsapp", "text_email"):
            batch.drop_column(name)
