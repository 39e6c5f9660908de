"""clicks and impressions: one index and no foreign keys, since every redirect writes a row

Reports always select an organisation and a period (ix_*_org_time). A foreign-key check share-locks the
parent row, which on PostgreSQL writes to it: on the redirect's hot path that doubled the p99.

Revision ID: 0101_slim_click_indexes
Revises: 0100_campaigns_clicks
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0101_slim_click_indexes"
down_revision: str | Sequence[str] | None = "0100_campaigns_clicks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DROPPED = {
    "click": [("ix_click_article_id", ["article_id"]), ("ix_click_campaign_id", ["campaign_id"]),
              ("ix_click_employee_id", ["employee_id"]), ("ix_click_visitor_time", ["visitor", "occurred_at"])],
    "impression": [("ix_impression_campaign_id", ["campaign_id"]), ("ix_impression_employee_id", ["employee_id"])],
}
FOREIGN_KEYS = (("link_id", "trackedlink"), ("org_id", "organisation"))
# SQLite's foreign keys have no names: give them these for the batch (copy-and-move) operation.
NAMING = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}


def _fk_name(table: str, column: str, parent: str) -> str:
    if op.get_bind().dialect.name == "postgresql":
        return f"{table}_{column}_fkey"  # PostgreSQL's own name for an unnamed foreign key
    return NAMING["fk"] % {"table_name": table, "column_0_name": column, "referred_table_name": parent}


def upgrade() -> None:
    for table, indexes in DROPPED.items():
        for name, _columns in indexes:
            op.drop_index(name, table_name=table)
        with op.batch_alter_table(table, naming_convention=NAMING) as batch:
            for column, parent in FOREIGN_KEYS:
                batch.drop_constraint(_fk_name(table, column, parent), type_="foreignkey")


def downgrade() -> None:
    for table, indexes in DROPPED.items():
        with op.batch_alter_table(table, naming_convention=NAMING) as batch:
            for column, parent in FOREIGN_KEYS:
                batch.create_foreign_key(_fk_name(table, column, parent), parent, [column], ["id"])
        for name, columns in indexes:
            op.create_index(name, table, columns, unique=False)
