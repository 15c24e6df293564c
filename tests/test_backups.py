"""`flask discux backup` while the server writes, and `flask discux restore` into an empty
database: rooms, messages, search and sign-in all work on what comes back."""

from __future__ import annotations

import re
import sqlite3
import threading

import pytest
import sqlalchemy as sa

from discux import create_app
from discux.extensions import db
from discux.models import Message
from tests.conftest import IS_MYSQL, base_config
from tests.support import chat_factories, factories
from tests.support.scratch_databases import drop_mysql_database, scratch_database_url


@pytest.fixture
def team(app):
    """Ana, signed in, with a room of messages; returns what a person would check afterwards."""
    with app.app_context():
        ana = factories.create_user(email="ana@example.com", name="Ana")
        room = chat_factories.create_room(ana.id, name="Launch plan")
        for text in ("The rocketship launches on Friday.", "Budget review after the AI demo."):
            chat_factories.create_message(room, ana, text)
        return {"room_id": room.id, "session": factories.create_session_token(ana.id)}


@pytest.fixture
def restore_target(migrated_database, tmp_path):
    """An app on an empty database of the test's own (test_<name>_restore on MariaDB)."""
    url = scratch_database_url(migrated_database, tmp_path, "restore")
    app = create_app(base_config(url))
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    drop_mysql_database(url)


def csrf_of(client) -> str:
    return re.search(r'"X-CSRFToken": "([^"]+)"', client.get("/").get_data(as_text=True)).group(1)


def test_a_restored_backup_has_rooms_messages_search_and_sign_in(
        app, runner, team, restore_target, tmp_path):
    backup_file = tmp_path / "discux.backup"
    made = runner.invoke(args=["discux", "backup", str(backup_file)])
    assert made.exit_code == 0, made.output
    assert f"to {backup_file}" in made.output and "password" not in made.output

    restored = restore_target.test_cli_runner().invoke(
        args=["discux", "restore", "--yes", str(backup_file)])
    assert restored.exit_code == 0, restored.output

    client = restore_target.test_client()
    client.set_cookie("discux_session", team["session"], domain="localhost")  # still signed in
    assert "Launch plan" in client.get("/rooms").get_data(as_text=True)
    room_page = client.get(f"/rooms/{team['room_id']}").get_data(as_text=True)
    assert "The rocketship launches on Friday." in room_page
    found = client.get("/search?q=rocketship").get_data(as_text=True)
    assert "launches on Friday" in found
    assert "Budget review" in client.get("/search?q=AI").get_data(as_text=True)  # short words too
    assert client.get("/readyz").status_code == 200  # at the migration head

    newcomer = restore_target.test_client()
    signed_in = newcomer.post("/login/demo", data={
        "email": "bo@example.com", "name": "Bo", "next": "", "csrf_token": csrf_of(newcomer)})
    assert signed_in.status_code == 303
    assert "Welcome, Bo" in newcomer.get("/").get_data(as_text=True)


def test_restore_asks_first_and_leaves_the_database_alone_on_no(
        app, runner, team, restore_target, tmp_path):
    backup_file = tmp_path / "discux.backup"
    assert runner.invoke(args=["discux", "backup", str(backup_file)]).exit_code == 0
    with app.app_context():
        chat_factories.create_message(team["room_id"], "someone", "written after the backup")

    refused = runner.invoke(args=["discux", "restore", str(backup_file)], input="n\n")
    assert refused.exit_code == 1
    assert "Replace everything in" in refused.output
    with app.app_context():
        assert "written after the backup" in db.session.scalars(sa.select(Message.content)).all()


def test_restoring_a_file_that_is_no_backup_says_so_and_changes_nothing(
        app, runner, team, tmp_path):
    not_a_backup = tmp_path / "notes.txt"
    not_a_backup.write_text("shopping list\n")
    result = runner.invoke(args=["discux", "restore", "--yes", str(not_a_backup)])
    assert result.exit_code == 1
    assert "is not a" in result.output and "backup" in result.output
    assert "Traceback" not in result.output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Message)) == 2

    missing = runner.invoke(args=["discux", "restore", "--yes", str(tmp_path / "nope.bak")])
    assert missing.exit_code == 1 and "there is no backup file" in missing.output


@pytest.mark.skipif(IS_MYSQL, reason="SQLite's online backup API")
def test_a_sqlite_backup_taken_while_messages_pour_in_is_whole(app, runner, team, tmp_path):
    stop = threading.Event()
    written = []

    def keep_writing():
        with app.app_context():
            while not stop.is_set():
                chat_factories.create_message(team["room_id"], "someone", f"live {len(written)}")
                written.append(1)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        while len(written) < 20:  # the server is busy writing when the backup starts
            stop.wait(0.01)
        backup_file = tmp_path / "during-writes.backup"
        result = runner.invoke(args=["discux", "backup", str(backup_file)])
    finally:
        stop.set()
        writer.join(timeout=30)
    assert result.exit_code == 0, result.output

    copy = sqlite3.connect(backup_file)
    try:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        # The search index holds exactly the messages the copy holds (FTS5's own check).
        copy.execute("INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')")
        count = copy.execute("SELECT count(*) FROM messages").fetchone()[0]
        assert 2 + 20 <= count <= 2 + len(written)
    finally:
        copy.close()


@pytest.mark.skipif(not IS_MYSQL, reason="mysqldump is for MySQL/MariaDB")
def test_without_mysqldump_the_backup_says_what_to_install(runner, team, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # a machine without the MariaDB client
    result = runner.invoke(args=["discux", "backup", str(tmp_path / "discux.sql")])
    assert result.exit_code == 1
    assert "mysqldump is not installed" in result.output
    assert not (tmp_path / "discux.sql").exists()
