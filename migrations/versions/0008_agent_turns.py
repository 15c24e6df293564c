"""Agent turns stored in the database: the queue of each room outlives the worker that took the
post, and a turn whose worker died is found and settled by another.

`agent_generations` holds what one user message set off (its trigger and the budget its turns
share: replies, hand-overs, their limits); `agent_turns` holds each reply or summary to run,
its integer id being the room's order, with its state (queued, running, done, cancelled,
interrupted).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TABLE_OPTIONS = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}
TimestampMs = sa.TIMESTAMP().with_variant(mysql.TIMESTAMP(fsp=3), "mysql", "mariadb")


def upgrade():
    op.create_table(
        "agent_generations",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("room_id", sa.String(36), nullable=False),
        sa.Column("trigger_id", sa.String(36), nullable=False),
        sa.Column("replies", sa.Integer(), server_default="0", nullable=False),
        sa.Column("handovers", sa.Integer(), server_default="0", nullable=False),
        sa.Column("handover_limit", sa.Integer(), nullable=False),
        sa.Column("reply_limit", sa.Integer(), nullable=False),
        sa.Column("planned", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", TimestampMs, nullable=True),
        sa.ForeignKeyConstraint(["room_id"], ["rooms.id"],
                                name=op.f("fk_agent_generations_room_id_rooms"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_generations")),
        **TABLE_OPTIONS,
    )
    op.create_table(
        "agent_turns",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("room_id", sa.String(36), nullable=False),
        sa.Column("generation_id", sa.String(36), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("agent_id", sa.String(36), nullable=True),
        sa.Column("handed_over_by", sa.String(36), nullable=True),
        sa.Column("requested_by", sa.String(255), nullable=True),
        sa.Column("state", sa.String(16), server_default="queued", nullable=False),
        sa.Column("created_at", TimestampMs, nullable=True),
        sa.Column("started_at", TimestampMs, nullable=True),
        sa.Column("ended_at", TimestampMs, nullable=True),
        sa.ForeignKeyConstraint(["room_id"], ["rooms.id"],
                                name=op.f("fk_agent_turns_room_id_rooms"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["generation_id"], ["agent_generations.id"],
                                name=op.f("fk_agent_turns_generation_id_agent_generations"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_turns")),
        **TABLE_OPTIONS,
    )
    op.create_index("idx_agent_turns_room_state", "agent_turns", ["room_id", "state"])
    op.create_index("idx_agent_turns_state", "agent_turns", ["state"])


def downgrade():
    # The indexes go with their table (MariaDB would refuse to drop the one that also serves
    # the room_id foreign key on its own).
    op.drop_table("agent_turns")
    op.drop_table("agent_generations")
