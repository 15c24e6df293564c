"""Context receipts on agent replies, and the living room brief with its versions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLE_OPTIONS = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}
Timestamp = sa.TIMESTAMP().with_variant(mysql.TIMESTAMP(fsp=3), "mysql", "mariadb")


def upgrade():
    # A plain ADD COLUMN: no batch rebuild, so SQLite keeps the FTS5 triggers on messages.
    op.add_column("messages", sa.Column("context_receipt", sa.Text(), nullable=True))
    op.create_table(
        "room_briefs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("room_id", sa.String(36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("content_html", sa.Text(), nullable=True),
        sa.Column("source", sa.String(16), server_default="human", nullable=False),
        sa.Column("created_by", sa.String(255), nullable=True),
        sa.Column("upto_message_id", sa.String(36), nullable=True),
        sa.Column("created_at", Timestamp, server_default=sa.func.current_timestamp(),
                  nullable=True),
        sa.ForeignKeyConstraint(["room_id"], ["rooms.id"], name=op.f("fk_room_briefs_room_id_rooms"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by"], ["User.id"],
                                name=op.f("fk_room_briefs_created_by_User"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_room_briefs")),
        sa.UniqueConstraint("room_id", "version", name="unique_room_brief_version"),
        **TABLE_OPTIONS,
    )


def downgrade():
    op.drop_table("room_briefs")
    with op.batch_alter_table("messages") as batch_op:
        batch_op.drop_column("context_receipt")
    if op.get_bind().dialect.name == "sqlite":
        # The batch rebuild of messages dropped the FTS5 triggers: put them back.
        for statement in _fts_triggers():
            op.execute(statement)
        # The rebuild may also have renumbered rowids, which the FTS5 index is keyed by.
        op.execute("INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')")


def _fts_triggers():
    return [
        """CREATE TRIGGER IF NOT EXISTS messages_fts_ai AFTER INSERT ON messages BEGIN
            INSERT INTO messages_fts(rowid, content) VALUES (new.rowid, new.content);
        END""",
        """CREATE TRIGGER IF NOT EXISTS messages_fts_ad AFTER DELETE ON messages BEGIN
            INSERT INTO messages_fts(messages_fts, rowid, content)
            VALUES ('delete', old.rowid, old.content);
        END""",
        """CREATE TRIGGER IF NOT EXISTS messages_fts_au AFTER UPDATE OF content ON messages BEGIN
            INSERT INTO messages_fts(messages_fts, rowid, content)
            VALUES ('delete', old.rowid, old.content);
            INSERT INTO messages_fts(rowid, content) VALUES (new.rowid, new.content);
        END""",
    ]
