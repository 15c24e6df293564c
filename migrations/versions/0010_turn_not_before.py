"""A queued turn may carry a time it must not start before: its agent is at its rate limit, so
the turn waits in the queue (first in its room) instead of holding a thread.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TimestampMs = sa.TIMESTAMP().with_variant(mysql.TIMESTAMP(fsp=3), "mysql", "mariadb")


def upgrade():
    # Nullable, so MariaDB gives it no implicit default or ON UPDATE clause.
    op.add_column("agent_turns", sa.Column("not_before", TimestampMs, nullable=True))


def downgrade():
    with op.batch_alter_table("agent_turns") as batch:
        batch.drop_column("not_before")
