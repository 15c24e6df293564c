"""Message actions: edits, regenerated agent replies and the versions they replace.

`messages.edited_at` is when the author last edited the text (NULL: never). A regenerated
reply names the reply it replaces in `messages.replaces_id`; the replaced one names its
successor in `messages.replaced_by_id` and leaves the chat column and the agents' context
(it stays readable under "Earlier versions"). Neither is a foreign key: a version chain
must not cascade, and deleting a version is handled by discux.messages.service. The queued
generation of a regeneration carries the reply it replaces in `agent_generations.replaces_id`.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TimestampMs = sa.TIMESTAMP().with_variant(mysql.TIMESTAMP(fsp=3), "mysql", "mariadb")


def upgrade():
    # Nullable, so MariaDB gives the timestamp no implicit default or ON UPDATE clause.
    op.add_column("messages", sa.Column("edited_at", TimestampMs, nullable=True))
    op.add_column("messages", sa.Column("replaces_id", sa.String(36), nullable=True))
    op.add_column("messages", sa.Column("replaced_by_id", sa.String(36), nullable=True))
    op.create_index("idx_messages_replaces_id", "messages", ["replaces_id"])
    op.create_index("idx_messages_replaced_by_id", "messages", ["replaced_by_id"])
    op.add_column("agent_generations", sa.Column("replaces_id", sa.String(36), nullable=True))


def downgrade():
    # Plain DROP COLUMN (SQLite ≥ 3.35): a batch rebuild of messages would drop its FTS triggers.
    op.drop_column("agent_generations", "replaces_id")
    op.drop_index("idx_messages_replaced_by_id", table_name="messages")
    op.drop_index("idx_messages_replaces_id", table_name="messages")
    op.drop_column("messages", "replaced_by_id")
    op.drop_column("messages", "replaces_id")
    op.drop_column("messages", "edited_at")
