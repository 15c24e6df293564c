"""Unread counts and mention emails: each member's last-read message in a room, when they were
last mailed about a mention there (the rate limit), and a user's opt-in to those emails.

Plain added columns: nothing on SQLite is rebuilt, so no trigger or foreign key is touched.
Existing members start with everything read, so nobody meets a wall of old "unread" messages.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

Timestamp = sa.TIMESTAMP().with_variant(mysql.TIMESTAMP(fsp=0), "mysql", "mariadb")


def upgrade():
    op.add_column("room_participants",
                  sa.Column("last_read_message_id", sa.String(36), nullable=True))
    op.add_column("room_participants", sa.Column("mention_mailed_at", Timestamp, nullable=True))
    op.add_column("User", sa.Column("email_mentions", sa.Boolean(), nullable=False,
                                    server_default=sa.false()))
    op.execute(
        "UPDATE room_participants SET last_read_message_id = (SELECT MAX(messages.id) FROM "
        "messages WHERE messages.room_id = room_participants.room_id)"
    )


def downgrade():
    op.drop_column("User", "email_mentions")
    op.drop_column("room_participants", "mention_mailed_at")
    op.drop_column("room_participants", "last_read_message_id")
