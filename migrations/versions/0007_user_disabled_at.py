"""User.disabled_at: when an instance admin disabled the user (NULL: the user may sign in);
an index on messages.timestamp for the admin page's figures of the last 30 days.

A plain nullable column: adding or dropping it rewrites no table on SQLite (3.35+ drops
columns in place), so no foreign key into "User" is touched.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Timestamp = sa.TIMESTAMP().with_variant(mysql.TIMESTAMP(fsp=0), "mysql", "mariadb")


def upgrade():
    op.add_column("User", sa.Column("disabled_at", Timestamp, nullable=True))
    op.create_index("idx_messages_timestamp", "messages", ["timestamp"])


def downgrade():
    op.drop_index("idx_messages_timestamp", table_name="messages")
    op.drop_column("User", "disabled_at")
