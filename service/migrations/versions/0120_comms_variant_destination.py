"""campaign variants: an optional landing page of their own (an A/B test may compare pages, not only banners)

Revision ID: 0120_comms_variant_destination
Revises: 0100_campaigns_clicks
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0120_comms_variant_destination"
down_revision: str | Sequence[str] | None = "0100_campaigns_clicks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("campaignvariant") as batch:
        batch.add_column(sa.Column("destination_url", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("campaignvariant") as batch:
        batch.drop_column("destination_url")
