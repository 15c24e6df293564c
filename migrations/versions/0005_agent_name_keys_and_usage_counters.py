"""Agent names unique per owner in the database, whatever the case; usage counters that
deletes never lower.

`agents.name_key` is the stripped, case-folded name (discux.models.agents.agent_name_key) with a
unique index on (created_by, name_key), so two requests creating "Nova" and "nova" at once
cannot both succeed. Existing duplicates are renamed first, oldest keeping its name and the
others getting " (2)", " (3)"… in creation order, so the index can be built.

The column is added NOT NULL with an empty default rather than altered afterwards: on SQLite an
ALTER would rebuild `agents`, and dropping the old table (foreign keys on) would cascade into
room_agents and message_mentions.

`usage_counters` holds messages sent per user and calendar month (UTC), raised with every post
(discux.plans.take_message_quota), so deleting messages no longer gives quota back. This month's
row is filled from the messages still there (what was deleted before cannot be known).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLE_OPTIONS = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}
NAME_MAX = 100
NAME_KEY_LENGTH = 300
NameKey = sa.String(NAME_KEY_LENGTH).with_variant(
    mysql.VARCHAR(NAME_KEY_LENGTH, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
)


def _name_key(name):
    return (name or "").strip().casefold()


def _free_name(name, taken):
    name = name.strip()
    number = 2
    while True:
        suffix = f" ({number})"
        candidate = name[: NAME_MAX - len(suffix)] + suffix
        if _name_key(candidate) not in taken:
            return candidate
        number += 1


def _backfill_name_keys(connection):
    agents = sa.table("agents", sa.column("id"), sa.column("created_by"), sa.column("name"),
                      sa.column("name_key"), sa.column("created_at"))
    rows = connection.execute(
        sa.select(agents.c.id, agents.c.created_by, agents.c.name)
        .order_by(agents.c.created_by, agents.c.created_at, agents.c.id)
    ).all()
    taken: dict[str, set[str]] = {}
    for agent_id, owner, name in rows:
        owner_keys = taken.setdefault(owner, set())
        if _name_key(name) in owner_keys:
            name = _free_name(name, owner_keys)
        owner_keys.add(_name_key(name))
        connection.execute(
            sa.update(agents).where(agents.c.id == agent_id)
            .values(name=name, name_key=_name_key(name))
        )


def _backfill_this_month(connection):
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    messages = sa.table("messages", sa.column("sender_id"), sa.column("type"),
                        sa.column("timestamp"))
    users = sa.table("User", sa.column("id"))
    counters = sa.table("usage_counters", sa.column("user_id"), sa.column("month"),
                        sa.column("messages_sent"))
    sent = (
        sa.select(messages.c.sender_id, sa.literal(now.strftime("%Y-%m")), sa.func.count())
        .where(messages.c.type == "user", messages.c.timestamp >= start,
               messages.c.sender_id.in_(sa.select(users.c.id)))
        .group_by(messages.c.sender_id)
    )
    connection.execute(sa.insert(counters).from_select(
        ["user_id", "month", "messages_sent"], sent))


def upgrade():
    op.create_table(
        "usage_counters",
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("messages_sent", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["User.id"],
                                name=op.f("fk_usage_counters_user_id_User"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "month", name=op.f("pk_usage_counters")),
        **TABLE_OPTIONS,
    )
    _backfill_this_month(op.get_bind())
    op.add_column("agents", sa.Column("name_key", NameKey, server_default="", nullable=False))
    _backfill_name_keys(op.get_bind())
    op.create_index("uq_agents_owner_name_key", "agents", ["created_by", "name_key"], unique=True)
    if op.get_bind().dialect.name != "sqlite":
        # The default only served the ADD COLUMN; Discux always sets the key.
        op.alter_column("agents", "name_key", existing_type=NameKey, existing_nullable=False,
                        server_default=None)


def downgrade():
    op.drop_index("uq_agents_owner_name_key", table_name="agents")
    op.drop_column("agents", "name_key")
    op.drop_table("usage_counters")
