"""The migrated database matches the seed schema (plus SPEC §3's decided deviations),
on whichever engine the suite runs against."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from discux.extensions import db
from discux.models import Agent, Message, Room
from tests.conftest import IS_MYSQL
from tests.support import factories

# Columns of each table in the seed's SQL DDL.
SEED_COLUMNS = {
    "Account": ["id", "userId", "type", "provider", "providerAccountId", "refresh_token",
                "access_token", "expires_at", "token_type", "scope", "id_token",
                "session_state", "authorization_code", "expires_at_ms", "created_at",
                "updated_at"],
    "Session": ["id", "sessionToken", "userId", "expires", "created_at", "updated_at"],
    "User": ["id", "name", "email", "emailVerified", "image", "avatar_url", "subscription",
             "max_agents", "max_rooms", "max_messages_per_month", "last_active", "created_at",
             "updated_at"],
    "VerificationToken": ["identifier", "token", "expires", "created_at", "updated_at"],
    "agents": ["id", "name", "prompt", "emoji", "color", "style", "created_by", "is_public",
               "usage_count", "created_at", "updated_at"],
    "rooms": ["id", "name", "description", "created_by", "is_active", "created_at", "updated_at"],
    "room_settings": ["room_id", "max_agents", "allow_agent_creation", "auto_summarize"],
    "room_participants": ["id", "room_id", "user_id", "role", "joined_at"],
    "room_agents": ["id", "room_id", "agent_id", "added_by", "added_at"],
    "messages": ["id", "room_id", "content", "type", "sender_id", "processing_time",
                 "agent_confidence", "context_length", "timestamp"],
    "message_mentions": ["id", "message_id", "mentioned_agent_id"],
    "room_invitations": ["id", "room_id", "invited_by", "invite_token", "email", "expires_at",
                         "used_at", "created_at"],
}
# SPEC §3 extensions.
EXTENSION_COLUMNS = {
    "agents": ["model"],
    "messages": ["status", "reply_to_id"],
    "api_tokens": ["id", "user_id", "token_hash"],
}
# (table, columns) that must be unique.
SEED_UNIQUE = [
    ("Account", {"provider", "providerAccountId"}),
    ("Session", {"sessionToken"}),
    ("User", {"email"}),
    ("VerificationToken", {"token"}),
    ("room_participants", {"room_id", "user_id"}),
    ("room_agents", {"room_id", "agent_id"}),
    ("room_invitations", {"invite_token"}),
]
# (table, indexed columns) from the seed's INDEX lines.
SEED_INDEXES = [
    ("Account", ["userId"]), ("Session", ["sessionToken"]), ("Session", ["userId"]),
    ("User", ["email"]), ("User", ["subscription"]),
    ("agents", ["created_by"]), ("agents", ["style"]), ("agents", ["usage_count"]),
    ("rooms", ["created_by"]), ("rooms", ["is_active"]),
    ("room_participants", ["room_id"]), ("room_participants", ["user_id"]),
    ("room_agents", ["room_id"]), ("room_agents", ["agent_id"]),
    ("messages", ["room_id", "timestamp"]), ("messages", ["sender_id"]), ("messages", ["type"]),
    ("message_mentions", ["message_id"]), ("message_mentions", ["mentioned_agent_id"]),
    ("room_invitations", ["room_id"]), ("room_invitations", ["invite_token"]),
    ("room_invitations", ["expires_at"]),
]
# (table, column, referred table) with ON DELETE CASCADE.
SEED_CASCADES = [
    ("Account", "userId", "User"), ("Session", "userId", "User"),
    ("agents", "created_by", "User"), ("rooms", "created_by", "User"),
    ("room_settings", "room_id", "rooms"), ("room_participants", "room_id", "rooms"),
    ("room_participants", "user_id", "User"), ("room_agents", "room_id", "rooms"),
    ("room_agents", "agent_id", "agents"), ("room_agents", "added_by", "User"),
    ("messages", "room_id", "rooms"), ("message_mentions", "message_id", "messages"),
    ("message_mentions", "mentioned_agent_id", "agents"),
    ("room_invitations", "room_id", "rooms"), ("room_invitations", "invited_by", "User"),
]


@pytest.fixture
def inspector(ctx):
    return sa.inspect(db.engine)


def test_every_seed_table_and_column_exists(inspector):
    tables = set(inspector.get_table_names())
    for table, columns in {**SEED_COLUMNS}.items():
        assert table in tables
        present = {c["name"] for c in inspector.get_columns(table)}
        assert set(columns) <= present, f"{table} lacks {set(columns) - present}"
    for table, columns in EXTENSION_COLUMNS.items():
        present = {c["name"] for c in inspector.get_columns(table)}
        assert set(columns) <= present


@pytest.mark.parametrize(("table", "columns"), SEED_UNIQUE)
def test_seed_unique_keys(inspector, table, columns):
    uniques = [set(u["column_names"]) for u in inspector.get_unique_constraints(table)]
    uniques += [set(i["column_names"]) for i in inspector.get_indexes(table) if i["unique"]]
    pk = set(inspector.get_pk_constraint(table)["constrained_columns"])
    assert columns in uniques or columns == pk


@pytest.mark.parametrize(("table", "columns"), SEED_INDEXES)
def test_seed_indexes(inspector, table, columns):
    indexed = [i["column_names"] for i in inspector.get_indexes(table)]
    indexed += [u["column_names"] for u in inspector.get_unique_constraints(table)]
    # MySQL backs every foreign key with an index it may have merged; any index
    # starting with the columns serves the same lookups.
    assert any(ix[: len(columns)] == columns for ix in indexed), f"{table}{columns}: {indexed}"


@pytest.mark.parametrize(("table", "column", "referred"), SEED_CASCADES)
def test_foreign_keys_cascade_on_delete(inspector, table, column, referred):
    fks = inspector.get_foreign_keys(table)
    match = [f for f in fks if f["constrained_columns"] == [column]]
    assert match, f"no foreign key on {table}.{column}"
    assert match[0]["referred_table"] == referred
    assert (match[0].get("options") or {}).get("ondelete", "").upper() == "CASCADE"


@pytest.mark.parametrize("emoji", ["🤖", "👩‍💻", "🇮🇩", "1️⃣", "🧑🏽‍🚀"])
def test_agent_emoji_column_keeps_multi_codepoint_emoji(ctx, emoji):
    user = factories.create_user()
    agent = Agent(name="Scout", prompt="Finds things quickly.", emoji=emoji, created_by=user.id)
    db.session.add(agent)
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Agent, agent.id).emoji == emoji


def test_deleting_a_room_deletes_its_messages(ctx):
    user = factories.create_user()
    room = Room(name="Launch", created_by=user.id)
    db.session.add(room)
    db.session.flush()
    db.session.add(Message(room_id=room.id, content="hello", type="user", sender_id=user.id))
    db.session.commit()
    db.session.delete(room)
    db.session.commit()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Message)) == 0


def test_message_ids_sort_in_creation_order_and_keep_milliseconds(ctx):
    user = factories.create_user()
    room = Room(name="Order", created_by=user.id)
    db.session.add(room)
    db.session.flush()
    sent = []
    for n in range(20):
        message = Message(room_id=room.id, content=f"m{n}", type="user", sender_id=user.id)
        db.session.add(message)
        db.session.flush()
        sent.append(message.content)
    db.session.commit()
    stored = db.session.scalars(
        sa.select(Message).where(Message.room_id == room.id).order_by(Message.id)
    ).all()
    assert [m.content for m in stored] == sent
    db.session.expire_all()
    # Millisecond precision survives the round trip (MariaDB would drop it without fsp=3).
    stamps = db.session.scalars(sa.select(Message.timestamp)).all()
    assert any(stamp.microsecond for stamp in stamps) or len(set(stamps)) == 1


def test_full_text_index_finds_new_messages(ctx):
    user = factories.create_user()
    room = Room(name="Search", created_by=user.id)
    db.session.add(room)
    db.session.flush()
    db.session.add(Message(room_id=room.id, content="the quarterly roadmap", type="user",
                           sender_id=user.id))
    db.session.commit()
    if IS_MYSQL:
        kinds = db.session.execute(sa.text(
            "SELECT index_type FROM information_schema.statistics WHERE table_schema=DATABASE()"
            " AND table_name='messages' AND index_name='idx_content'")).scalars().all()
        assert kinds == ["FULLTEXT"]
    else:
        found = db.session.execute(sa.text(
            "SELECT m.content FROM messages_fts f JOIN messages m ON m.rowid = f.rowid "
            "WHERE messages_fts MATCH 'roadmap'")).scalars().all()
        assert found == ["the quarterly roadmap"]
        db.session.execute(sa.text("UPDATE messages SET content='renamed plan'"))
        db.session.commit()
        assert not db.session.execute(sa.text(
            "SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'roadmap'")).all()


def _flask(args: list[str], database_url: str, instance: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "SECRET_KEY": "x" * 32, "DATABASE_URL": database_url,
           "DISCUX_BASE_URL": "http://localhost",  # required outside demo mode
           "DISCUX_INSTANCE_PATH": str(instance)}
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", *args],
        capture_output=True, text=True, env=env, timeout=120,
        cwd=Path(__file__).resolve().parent.parent,
    )


def test_migrations_upgrade_downgrade_upgrade(tmp_path, database_url):
    """`flask db downgrade base` works, and upgrading again rebuilds the schema."""
    if IS_MYSQL:
        scratch = database_url.rsplit("/", 1)[0] + "/discux_migration_check"
        admin = sa.create_engine(database_url)
        with admin.begin() as connection:
            connection.exec_driver_sql("DROP DATABASE IF EXISTS discux_migration_check")
            connection.exec_driver_sql(
                "CREATE DATABASE discux_migration_check CHARACTER SET utf8mb4")
    else:
        scratch = f"sqlite:///{tmp_path / 'migrations.db'}"
    try:
        steps = (["db", "upgrade"], ["db", "downgrade", "base"], ["db", "upgrade"],
                 ["db", "downgrade", "0001"], ["db", "upgrade"], ["db", "check"])
        for step in steps:
            result = _flask(step, scratch, tmp_path)
            # `db check` fails when the models and the migrations disagree.
            assert result.returncode == 0, (step, result.stderr[-2000:])
        engine = sa.create_engine(scratch)
        assert set(SEED_COLUMNS) <= set(sa.inspect(engine).get_table_names())
        engine.dispose()
    finally:
        if IS_MYSQL:
            with admin.begin() as connection:
                connection.exec_driver_sql("DROP DATABASE IF EXISTS discux_migration_check")
            admin.dispose()


def test_migration_0005_renames_duplicate_agent_names_and_counts_this_month(tmp_path,
                                                                                database_url):
    """Agents of one owner named "Nova", "nova" and "NOVA " from before 0005: the oldest keeps
    its name, the others get " (2)" and " (3)" in creation order; another owner's "Nova" stays.
    And each user's messages of this month fill their usage counter."""
    if IS_MYSQL:
        scratch = database_url.rsplit("/", 1)[0] + "/discux_migration_names"
        admin = sa.create_engine(database_url)
        with admin.begin() as connection:
            connection.exec_driver_sql("DROP DATABASE IF EXISTS discux_migration_names")
            connection.exec_driver_sql(
                "CREATE DATABASE discux_migration_names CHARACTER SET utf8mb4")
    else:
        scratch = f"sqlite:///{tmp_path / 'names.db'}"
    try:
        assert _flask(["db", "upgrade", "0004"], scratch, tmp_path).returncode == 0
        engine = sa.create_engine(scratch)
        with engine.begin() as connection:
            for user_id in ("u1", "u2"):
                connection.execute(sa.text(
                    'INSERT INTO "User" (id, email) VALUES (:id, :email)'.replace(
                        '"', "`" if IS_MYSQL else '"')), {"id": user_id,
                                                          "email": f"{user_id}@example.com"})
            for agent_id, owner, name, second in (("a1", "u1", "Nova", 1), ("a2", "u1", "nova", 2),
                                                  ("a3", "u1", "NOVA ", 3), ("a4", "u2", "Nova", 4),
                                                  ("a5", "u1", "Orion", 5)):
                connection.execute(sa.text(
                    "INSERT INTO agents (id, name, prompt, created_by, created_at) VALUES "
                    "(:id, :name, 'A helpful agent.', :owner, :at)"),
                    {"id": agent_id, "name": name, "owner": owner,
                     "at": f"2026-11-01 10:00:0{second}"})
            # This month's usage is counted from the messages still there; last month's is not.
            connection.execute(sa.text(
                "INSERT INTO rooms (id, name, created_by) VALUES ('r1', 'Room', 'u1')"))
            this_month = datetime.now(UTC).replace(day=1, hour=12, tzinfo=None)
            for n, (sender, kind, at) in enumerate((
                    ("u1", "user", this_month), ("u1", "user", this_month),
                    ("u1", "agent", this_month), ("u2", "user", this_month),
                    ("u2", "user", this_month - timedelta(days=3)))):
                connection.execute(sa.text(
                    "INSERT INTO messages (id, room_id, content, type, sender_id, timestamp) "
                    "VALUES (:id, 'r1', 'hello', :type, :sender, :at)"),
                    {"id": f"m{n}", "type": kind, "sender": sender,
                     "at": at.strftime("%Y-%m-%d %H:%M:%S")})
        result = _flask(["db", "upgrade"], scratch, tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
        with engine.connect() as connection:
            counted = connection.execute(sa.text(
                "SELECT user_id, month, messages_sent FROM usage_counters ORDER BY user_id")).all()
            assert [tuple(r) for r in counted] == [
                ("u1", this_month.strftime("%Y-%m"), 2), ("u2", this_month.strftime("%Y-%m"), 1)]
            rows = connection.execute(sa.text(
                "SELECT id, name, name_key FROM agents ORDER BY id")).all()
        assert [tuple(r) for r in rows] == [
            ("a1", "Nova", "nova"), ("a2", "nova (2)", "nova (2)"),
            ("a3", "NOVA (3)", "nova (3)"), ("a4", "Nova", "nova"), ("a5", "Orion", "orion")]
        with engine.connect() as connection, pytest.raises(sa.exc.IntegrityError):
            connection.execute(sa.text(
                "INSERT INTO agents (id, name, name_key, prompt, created_by) VALUES "
                "('a6', 'NoVa', 'nova', 'A helpful agent.', 'u1')"))
        engine.dispose()
        assert _flask(["db", "downgrade", "0004"], scratch, tmp_path).returncode == 0
    finally:
        if IS_MYSQL:
            with admin.begin() as connection:
                connection.exec_driver_sql("DROP DATABASE IF EXISTS discux_migration_names")
            admin.dispose()
