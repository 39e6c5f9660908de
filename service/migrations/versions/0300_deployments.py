"""deployments and provider connections

Revision ID: 0300_deployments
Revises: 0002_links
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

import service.dbtypes
from alembic import op

revision: str = "0300_deployments"
down_revision: str | Sequence[str] | None = "0002_links"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('deployment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('provider', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('dry_run', sa.Boolean(), nullable=False),
    sa.Column('status', sa.Enum('queued', 'running', 'done', 'failed', name='deploymentstatus', native_enum=False, length=20), nullable=False),
    sa.Column('target_filter', sa.JSON(), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('template_versions', sa.JSON(), nullable=False),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('done', sa.Integer(), nullable=False),
    sa.Column('writes', sa.Integer(), nullable=False),
    sa.Column('message', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('worker', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
    sa.Column('heartbeat_at', service.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', service.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', service.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', service.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['org_id'], ['organisation.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_deployment_org_id'), 'deployment', ['org_id'], unique=False)
    op.create_index(op.f('ix_deployment_status'), 'deployment', ['status'], unique=False)
    op.create_table('providerconnection',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.Enum('google', 'microsoft', name='provider', native_enum=False, length=20), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('secret_encrypted', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('sync_state', sa.JSON(), nullable=False),
    sa.Column('auto_deploy', sa.Boolean(), nullable=False),
    sa.Column('created_at', service.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', service.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_sync_at', service.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['org_id'], ['organisation.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('org_id', 'provider')
    )
    op.create_index(op.f('ix_providerconnection_org_id'), 'providerconnection', ['org_id'], unique=False)
    op.create_table('deploymentitem',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('deployment_id', sa.Integer(), nullable=False),
    sa.Column('employee_id', sa.Integer(), nullable=False),
    sa.Column('mailbox', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('state', sa.Enum('pending', 'writing', 'done', name='itemstate', native_enum=False, length=20), nullable=False),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('content_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('html', sa.Text(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('reply_html', sa.Text(), nullable=False),
    sa.Column('reply_text', sa.Text(), nullable=False),
    sa.Column('addresses', sa.JSON(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('writes', sa.Integer(), nullable=False),
    sa.Column('updated_at', service.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['deployment_id'], ['deployment.id'], ),
    sa.ForeignKeyConstraint(['employee_id'], ['employee.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('deployment_id', 'mailbox')
    )
    op.create_index(op.f('ix_deploymentitem_employee_id'), 'deploymentitem', ['employee_id'], unique=False)
    op.create_index(op.f('ix_deploymentitem_outcome'), 'deploymentitem', ['outcome'], unique=False)
    op.create_index('ix_item_deployment_state', 'deploymentitem', ['deployment_id', 'state'], unique=False)
    op.create_table('signaturestate',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('provider', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('employee_id', sa.Integer(), nullable=True),
    sa.Column('content_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('html', sa.Text(), nullable=False),
    sa.Column('deployment_id', sa.Integer(), nullable=True),
    sa.Column('written_at', service.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['deployment_id'], ['deployment.id'], ),
    sa.ForeignKeyConstraint(['employee_id'], ['employee.id'], ),
    sa.ForeignKeyConstraint(['org_id'], ['organisation.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('org_id', 'provider', 'address')
    )
    op.create_index(op.f('ix_signaturestate_org_id'), 'signaturestate', ['org_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_signaturestate_org_id'), table_name='signaturestate')
    op.drop_table('signaturestate')
    op.drop_index('ix_item_deployment_state', table_name='deploymentitem')
    op.drop_index(op.f('ix_deploymentitem_outcome'), table_name='deploymentitem')
    op.drop_index(op.f('ix_deploymentitem_employee_id'), table_name='deploymentitem')
    op.drop_table('deploymentitem')
    op.drop_index(op.f('ix_providerconnection_org_id'), table_name='providerconnection')
    op.drop_table('providerconnection')
    op.drop_index(op.f('ix_deployment_status'), table_name='deployment')
    op.drop_index(op.f('ix_deployment_org_id'), table_name='deployment')
    op.drop_table('deployment')
