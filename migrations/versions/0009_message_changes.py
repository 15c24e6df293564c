"""When each message last changed, and which were deleted: a socket reconnecting with
`?after=<id>` is sent the messages that changed (completed, stopped, failed, streamed further)
or were deleted since, even though their ids are not newer.

`messages.changed_at` is set on insert and on every update (discux.models.Message); existing rows
take their `timestamp`. `message_deletions` keeps a deleted message's id, room and time for a
while (discux.messages.service.delete_message prunes a room's old ones).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TABLE_OPTIONS = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}
TimestampMs = sa.TIMESTAMP().with_variant(mysql.TIMESTAMP(fsp=3), "mysql", "mariadb")


def upgrade():
    # Nullable, so MariaDB gives it no implicit default or ON UPDATE clause.
    op.add_column("messages", sa.Column("changed_at", TimestampMs, nullable=True))
    messages = sa.table("messages", sa.column("changed_at"), sa.column("timestamp"))
    op.execute(messages.update().values(changed_at=messages.c.timestamp))
    op.create_index("idx_room_changed_at", "messages", ["room_id", "changed_at"])
    op.create_table(
        "message_deletions",
        sa.Column("message_id", sa.String(36), nullable=False),
        sa.Column("room_id", sa.String(36), nullable=False),
        sa.Column("deleted_at", TimestampMs, nullable=True),
        sa.ForeignKeyConstraint(["room_id"], ["rooms.id"],
                                name=op.f("fk_message_deletions_room_id_rooms"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_message_deletions")),
        **TABLE_OPTIONS,
    )
    op.create_index("idx_room_deleted_at", "message_deletions", ["room_id", "deleted_at"])


def downgrade():
    op.drop_table("message_deletions")  # its index goes with it (MariaDB's foreign key uses it)
    op.drop_index("idx_room_changed_at", table_name="messages")
    op.drop_column("messages", "changed_at")
