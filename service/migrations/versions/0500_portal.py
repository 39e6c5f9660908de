"""portal: users linked to their directory employee, and the employee role

Revision ID: 0500_portal
Revises: 0400_accounts
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0500_portal"
down_revision: str | Sequence[str] | None = "0400_accounts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


OLD_ROLES = ("admin", "comms", "it")
ROLES = (*OLD_ROLES, "employee")


def _role_columns(values: tuple[str, ...]) -> None:
    """SQLite keeps the enum as a VARCHAR as long as its longest value: widen (or narrow) both columns."""
    for table in ("apikey", "app_user"):
        with op.batch_alter_table(table) as batch:
            batch.alter_column("role", type_=sa.Enum(*values, name="role"), existing_nullable=False)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # a new value of the shared 'role' type (apikey.role too; keys refuse it in code)
        op.execute("ALTER TYPE role ADD VALUE IF NOT EXISTS 'employee'")
    else:
        _role_columns(ROLES)
    with op.batch_alter_table("app_user") as batch:
        batch.add_column(sa.Column("employee_id", sa.Integer(), nullable=True))
        batch.create_index("ix_app_user_employee_id", ["employee_id"])
        batch.create_foreign_key("fk_app_user_employee_id", "employee", ["employee_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("app_user") as batch:
        batch.drop_constraint("fk_app_user_employee_id", type_="foreignkey")
        batch.drop_index("ix_app_user_employee_id")
        batch.drop_column("employee_id")
    # PostgreSQL cannot drop an enum value: there 'employee' stays in the type, unused.
    if op.get_bind().dialect.name != "postgresql":
        _role_columns(OLD_ROLES)
