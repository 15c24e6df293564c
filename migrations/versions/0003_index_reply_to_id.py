"""Index messages.reply_to_id.

With foreign keys on, deleting a message makes SQLite look for replies to it; without an
index that is a scan of every message (about 12 ms each at 50k rows, so clearing a large room
took minutes). MySQL already indexes foreign keys itself; this names the index on both.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("idx_reply_to_id", "messages", ["reply_to_id"])


def downgrade():
    if op.get_bind().dialect.name != "sqlite":
        # MySQL needs an index behind the foreign key at all times: give it back the one it
        # had made itself before dropping ours.
        op.create_index("fk_messages_reply_to_id_messages", "messages", ["reply_to_id"])
    op.drop_index("idx_reply_to_id", table_name="messages")
