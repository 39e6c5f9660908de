"""sso: OpenID Connect settings per organisation, their email domains, sign-ins under way, linked identities

Revision ID: 0410_sso
Revises: 0400_accounts
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

import service.dbtypes
from alembic import op


revision: str = '0410_sso'
down_revision: str | Sequence[str] | None = '0400_accounts'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROVIDER = sa.Enum('microsoft', 'google', name='ssoprovider', native_enum=False, length=20)


def upgrade() -> None:
    op.create_table('sso_config',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('provider', PROVIDER, nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('client_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('client_secret_encrypted', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('tenant_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('group_roles', sa.JSON(), nullable=False),
    sa.Column('default_role', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('allow_passwords', sa.Boolean(), nullable=False),
    sa.Column('created_at', service.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', service.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organisation.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('org_id')
    )
    op.create_table('sso_domain',
    sa.Column('domain', sqlmodel.sql.sqltypes.AutoString(length=253), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organisation.id'], ),
    sa.PrimaryKeyConstraint('domain')
    )
    with op.batch_alter_table('sso_domain', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sso_domain_org_id'), ['org_id'], unique=False)

    op.create_table('sso_attempt',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('provider', PROVIDER, nullable=False),
    sa.Column('nonce', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('code_verifier', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('next', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.Column('created_at', service.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', service.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['org_id'], ['organisation.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('sso_attempt', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sso_attempt_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_sso_attempt_org_id'), ['org_id'], unique=False)

    op.create_table('sso_identity',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('issuer', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('granted_role', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('created_at', service.dbtypes.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_sign_in_at', service.dbtypes.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['org_id'], ['organisation.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('issuer', 'subject')
    )
    with op.batch_alter_table('sso_identity', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sso_identity_org_id'), ['org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sso_identity_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    op.drop_table('sso_identity')
    op.drop_table('sso_attempt')
    op.drop_table('sso_domain')
    op.drop_table('sso_config')
