"""banner campaigns, rotation settings, clicks, impressions, rollups, tracking privacy

Revision ID: 0100_campaigns_clicks
Revises: 0002_links
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

import service.dbtypes
from alembic import op

revision: str = '0100_campaigns_clicks'
down_revision: str | Sequence[str] | None = '0002_links'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('visitorsalt',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('salt', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.PrimaryKeyConstraint('day')
    )
    op.create_table('bannerimage',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('asset', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('created_at', service.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organisation.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('org_id', 'asset')
    )
    op.create_index(op.f('ix_bannerimage_org_id'), 'bannerimage', ['org_id'], unique=False)
    op.create_table('campaign',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('state', sa.Enum('draft', 'scheduled', 'active', 'paused', 'ended', name='campaignstate', native_enum=False, length=12), nullable=False),
    sa.Column('destination_url', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.Column('utm', sa.JSON(), nullable=False),
    sa.Column('starts_at', service.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ends_at', service.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.Column('audience', sa.JSON(), nullable=False),
    sa.Column('weight', sa.Integer(), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('salt', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('created_at', service.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', service.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organisation.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('org_id', 'name')
    )
    op.create_index(op.f('ix_campaign_org_id'), 'campaign', ['org_id'], unique=False)
    op.create_table('campaignsettings',
    sa.Column('rotation_period', sa.Enum('daily', 'weekly', name='rotationperiod', native_enum=False, length=10), nullable=False),
    sa.Column('utm_defaults', sa.JSON(), nullable=False),
    sa.Column('default_campaign_id', sa.Integer(), nullable=True),
    sa.Column('max_display_width', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('updated_at', service.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organisation.id'], ),
    sa.PrimaryKeyConstraint('org_id')
    )
    op.create_table('clickdaily',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('link_id', sa.Integer(), nullable=True),
    sa.Column('employee_id', sa.Integer(), nullable=True),
    sa.Column('campaign_id', sa.Integer(), nullable=True),
    sa.Column('article_id', sa.Integer(), nullable=True),
    sa.Column('issue_id', sa.Integer(), nullable=True),
    sa.Column('channel', sa.Enum('signature_banner', 'signature_field', 'newsletter', 'share_intent', 'share', 'banner_image', name='channel', native_enum=False, length=30), nullable=False),
    sa.Column('network', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('verdict', sa.Enum('human', 'scanner', 'crawler', name='verdict', native_enum=False, length=10), nullable=False),
    sa.Column('clicks', sa.Integer(), nullable=False),
    sa.Column('uniques', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organisation.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_clickdaily_article_id'), 'clickdaily', ['article_id'], unique=False)
    op.create_index(op.f('ix_clickdaily_campaign_id'), 'clickdaily', ['campaign_id'], unique=False)
    op.create_index(op.f('ix_clickdaily_employee_id'), 'clickdaily', ['employee_id'], unique=False)
    op.create_index('ix_clickdaily_org_day', 'clickdaily', ['org_id', 'day'], unique=False)
    op.create_table('impressiondaily',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('link_id', sa.Integer(), nullable=True),
    sa.Column('employee_id', sa.Integer(), nullable=True),
    sa.Column('campaign_id', sa.Integer(), nullable=True),
    sa.Column('verdict', sa.Enum('human', 'scanner', 'crawler', name='verdict', native_enum=False, length=10), nullable=False),
    sa.Column('impressions', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organisation.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_impressiondaily_campaign_id'), 'impressiondaily', ['campaign_id'], unique=False)
    op.create_index(op.f('ix_impressiondaily_employee_id'), 'impressiondaily', ['employee_id'], unique=False)
    op.create_index('ix_impressiondaily_org_day', 'impressiondaily', ['org_id', 'day'], unique=False)
    op.create_table('trackingsettings',
    sa.Column('attribution', sa.Boolean(), nullable=False),
    sa.Column('retention_days', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('updated_at', service.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organisation.id'], ),
    sa.PrimaryKeyConstraint('org_id')
    )
    op.create_table('campaignvariant',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('banner_id', sa.Integer(), nullable=False),
    sa.Column('alt', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('weight', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['banner_id'], ['bannerimage.id'], ),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('campaign_id', 'key')
    )
    op.create_index(op.f('ix_campaignvariant_campaign_id'), 'campaignvariant', ['campaign_id'], unique=False)
    op.create_table('trackingoptout',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('employee_id', sa.Integer(), nullable=False),
    sa.Column('created_at', service.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['employee_id'], ['employee.id'], ),
    sa.ForeignKeyConstraint(['org_id'], ['organisation.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('employee_id')
    )
    op.create_index(op.f('ix_trackingoptout_org_id'), 'trackingoptout', ['org_id'], unique=False)
    op.create_table('campaignlink',
    sa.Column('link_id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('variant_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['link_id'], ['trackedlink.id'], ),
    sa.PrimaryKeyConstraint('link_id')
    )
    op.create_index(op.f('ix_campaignlink_campaign_id'), 'campaignlink', ['campaign_id'], unique=False)
    op.create_index(op.f('ix_campaignlink_variant_id'), 'campaignlink', ['variant_id'], unique=False)
    op.create_table('click',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('link_id', sa.Integer(), nullable=False),
    sa.Column('employee_id', sa.Integer(), nullable=True),
    sa.Column('campaign_id', sa.Integer(), nullable=True),
    sa.Column('article_id', sa.Integer(), nullable=True),
    sa.Column('issue_id', sa.Integer(), nullable=True),
    sa.Column('channel', sa.Enum('signature_banner', 'signature_field', 'newsletter', 'share_intent', 'share', 'banner_image', name='channel', native_enum=False, length=30), nullable=False),
    sa.Column('network', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('occurred_at', service.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('verdict', sa.Enum('human', 'scanner', 'crawler', name='verdict', native_enum=False, length=10), nullable=False),
    sa.Column('reasons', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('visitor', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.ForeignKeyConstraint(['link_id'], ['trackedlink.id'], ),
    sa.ForeignKeyConstraint(['org_id'], ['organisation.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_click_article_id'), 'click', ['article_id'], unique=False)
    op.create_index(op.f('ix_click_campaign_id'), 'click', ['campaign_id'], unique=False)
    op.create_index(op.f('ix_click_employee_id'), 'click', ['employee_id'], unique=False)
    op.create_index('ix_click_org_time', 'click', ['org_id', 'occurred_at'], unique=False)
    op.create_index('ix_click_visitor_time', 'click', ['visitor', 'occurred_at'], unique=False)
    op.create_table('impression',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('link_id', sa.Integer(), nullable=False),
    sa.Column('employee_id', sa.Integer(), nullable=True),
    sa.Column('campaign_id', sa.Integer(), nullable=True),
    sa.Column('occurred_at', service.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('verdict', sa.Enum('human', 'scanner', 'crawler', name='verdict', native_enum=False, length=10), nullable=False),
    sa.Column('reasons', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('visitor', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.ForeignKeyConstraint(['link_id'], ['trackedlink.id'], ),
    sa.ForeignKeyConstraint(['org_id'], ['organisation.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_impression_campaign_id'), 'impression', ['campaign_id'], unique=False)
    op.create_index(op.f('ix_impression_employee_id'), 'impression', ['employee_id'], unique=False)
    op.create_index('ix_impression_org_time', 'impression', ['org_id', 'occurred_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_impression_org_time', table_name='impression')
    op.drop_index(op.f('ix_impression_employee_id'), table_name='impression')
    op.drop_index(op.f('ix_impression_campaign_id'), table_name='impression')
    op.drop_table('impression')
    op.drop_index('ix_click_visitor_time', table_name='click')
    op.drop_index('ix_click_org_time', table_name='click')
    op.drop_index(op.f('ix_click_employee_id'), table_name='click')
    op.drop_index(op.f('ix_click_campaign_id'), table_name='click')
    op.drop_index(op.f('ix_click_article_id'), table_name='click')
    op.drop_table('click')
    op.drop_index(op.f('ix_campaignlink_variant_id'), table_name='campaignlink')
    op.drop_index(op.f('ix_campaignlink_campaign_id'), table_name='campaignlink')
    op.drop_table('campaignlink')
    op.drop_index(op.f('ix_trackingoptout_org_id'), table_name='trackingoptout')
    op.drop_table('trackingoptout')
    op.drop_index(op.f('ix_campaignvariant_campaign_id'), table_name='campaignvariant')
    op.drop_table('campaignvariant')
    op.drop_table('trackingsettings')
    op.drop_index('ix_impressiondaily_org_day', table_name='impressiondaily')
    op.drop_index(op.f('ix_impressiondaily_employee_id'), table_name='impressiondaily')
    op.drop_index(op.f('ix_impressiondaily_campaign_id'), table_name='impressiondaily')
    op.drop_table('impressiondaily')
    op.drop_index('ix_clickdaily_org_day', table_name='clickdaily')
    op.drop_index(op.f('ix_clickdaily_employee_id'), table_name='clickdaily')
    op.drop_index(op.f('ix_clickdaily_campaign_id'), table_name='clickdaily')
    op.drop_index(op.f('ix_clickdaily_article_id'), table_name='clickdaily')
    op.drop_table('clickdaily')
    op.drop_table('campaignsettings')
    op.drop_index(op.f('ix_campaign_org_id'), table_name='campaign')
    op.drop_table('campaign')
    op.drop_index(op.f('ix_bannerimage_org_id'), table_name='bannerimage')
    op.drop_table('bannerimage')
    op.drop_table('visitorsalt')
