"""the click summary: reasons on the daily rows, a covering index for per-employee figures, the organisation-level
daily totals (filled from the rows rolled up so far) and each organisation's fold mark

Revision ID: 0110_rollup_click_summary
Revises: 0102_opt_out_audit
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import service.dbtypes

revision: str = "0110_rollup_click_summary"
down_revision: str | Sequence[str] | None = "0102_opt_out_audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = sa.Enum("signature_banner", "signature_field", "newsletter", "share_intent", "share", "banner_image",
                  name="channel", native_enum=False, length=30)  # fmt: skip
VERDICT = sa.Enum("human", "scanner", "crawler", name="verdict", native_enum=False, length=10)
TOTAL_COLUMNS = "org_id, day, campaign_id, article_id, issue_id, channel, network, verdict, reasons"


def upgrade() -> None:
    with op.batch_alter_table("clickdaily") as batch:
        batch.add_column(sa.Column("reasons", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False,
                                   server_default=""))  # fmt: skip
    op.drop_index("ix_clickdaily_org_day", table_name="clickdaily")
    op.create_index("ix_clickdaily_org_day_employee", "clickdaily",
                    ["org_id", "day", "channel", "employee_id", "verdict", "clicks", "uniques"])  # fmt: skip
    op.create_table(
        "clickdailytotal",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("article_id", sa.Integer(), nullable=True),
        sa.Column("issue_id", sa.Integer(), nullable=True),
        sa.Column("channel", CHANNEL, nullable=False),
        sa.Column("network", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("verdict", VERDICT, nullable=False),
        sa.Column("reasons", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("clicks", sa.Integer(), nullable=False),
        sa.Column("uniques", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisation.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_clickdailytotal_org_day", "clickdailytotal", ["org_id", "day"])
    # the days rolled up so far (raw rows past retention): their totals, uniques summed as they were
    op.execute(
        f"INSERT INTO clickdailytotal ({TOTAL_COLUMNS}, clicks, uniques) "  # noqa: S608 (constant column names)
        f"SELECT {TOTAL_COLUMNS}, SUM(clicks), SUM(uniques) FROM clickdaily GROUP BY {TOTAL_COLUMNS}"
    )
    op.create_table(
        "clickrollupmark",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("folded_until", service.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_click_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", service.dbtypes.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisation.id"]),
        sa.PrimaryKeyConstraint("org_id"),
    )


def downgrade() -> None:
    op.drop_table("clickrollupmark")
    op.drop_index("ix_clickdailytotal_org_day", table_name="clickdailytotal")
    op.drop_table("clickdailytotal")
    op.drop_index("ix_clickdaily_org_day_employee", table_name="clickdaily")
    op.create_index("ix_clickdaily_org_day", "clickdaily", ["org_id", "day"])
    with op.batch_alter_table("clickdaily") as batch:
        batch.drop_column("reasons")
