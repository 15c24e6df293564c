"""Agent names unique per owner in the database, whatever the case.

`agents.name_key` is the stripped, case-folded name (discux.models.agents.agent_name_key) with a
unique index on (created_by, name_key), so two requests creating "Nova" and "nova" at once
cannot both succeed. Existing duplicates are renamed first, oldest keeping its name and the
others getting " (2)", " (3)"… in creation order, so the index can be built.

The column is added NOT NULL with an empty default rather than altered afterwards: on SQLite an
ALTER would rebuild `agents`, and dropping the old table (foreign keys on) would cascade into
room_agents and message_mentions.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

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


def upgrade():
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
