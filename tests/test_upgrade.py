"""An install one release behind upgrades to head with nothing lost: a database at the previous
migration head, a row in every table, `flask db upgrade`, and every value still there; the
upgraded install still signs people in and finds their messages."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade

from discux import create_app
from discux.extensions import db
from discux.ids import epoch_ms, sha256_hex
from tests.conftest import base_config
from tests.support.scratch_databases import (
    drop_mysql_database,
    migration_scripts,
    previous_head,
    scratch_database_url,
)

RAW_SESSION = "upgrade-test-session-token"
# Values a person would notice, for the columns that carry meaning; the rest get generic data.
MEANINGFUL = {
    ("messages", "content"): "The AI roadmap ships in spring.",
    ("messages", "status"): "complete",
    ("messages", "humans_only"): False,
    ("Session", "sessionToken"): sha256_hex(RAW_SESSION),
    ("Session", "expires"): epoch_ms() + 24 * 3600 * 1000,
    ("User", "email"): "ana@example.com",
    ("User", "disabled_at"): None,  # a disabled user's session would not sign in afterwards
    ("rooms", "is_active"): True,
}
# Kept by triggers from `messages`, not written by hand.
DERIVED_TABLES = ("messages_fts", "alembic_version")
WHEN = dt.datetime(2026, 1, 2, 3, 4, 5)


def value_for(table: sa.Table, column: sa.Column, written: dict[str, dict]):
    """A value `column` accepts: the referenced row's key for a foreign key, an allowed value
    for an enumeration (as the models at head name them), else one of the column's type."""
    if (table.name, column.name) in MEANINGFUL:
        return MEANINGFUL[(table.name, column.name)]
    for foreign_key in column.foreign_keys:
        target = foreign_key.column
        if target.table.name == table.name:
            return None if column.nullable else written.setdefault(table.name, {}).get(target.name)
        return written[target.table.name][target.name]
    head_column = db.metadata.tables.get(table.name, sa.Table("-", sa.MetaData())).c.get(
        column.name)
    enums = getattr(column.type, "enums", None) or getattr(
        getattr(head_column, "type", None), "enums", None)
    if enums:
        return enums[0]
    try:
        kind = column.type.python_type
    except NotImplementedError:
        kind = str
    if kind is bool:
        return True
    if kind is int:
        return 1
    if kind is float or kind.__name__ == "Decimal":
        return 0.5
    if kind is dt.datetime:
        return WHEN
    if kind is dt.date:
        return WHEN.date()
    if kind is dict:
        return {"kept": "yes"}
    if kind is bytes:
        return b"kept"
    text = f"{table.name}.{column.name}"
    length = getattr(column.type, "length", None)
    return text[:length] if length else f"{text} (kept through the upgrade)"


def fill_every_table(connection: sa.Connection) -> list[str]:
    """One row in each table the schema has at this revision; returns the tables filled."""
    schema = sa.MetaData()
    schema.reflect(connection)
    written: dict[str, dict] = {}
    filled = []
    for table in schema.sorted_tables:
        if table.name.startswith(DERIVED_TABLES):
            continue
        row = {}
        for column in table.columns:
            if column.autoincrement is True or (
                    column.primary_key and isinstance(column.type, sa.Integer)
                    and len(table.primary_key.columns) == 1):
                continue  # the database numbers it
            row[column.name] = value_for(table, column, written)
            written.setdefault(table.name, {})[column.name] = row[column.name]
        connection.execute(table.insert().values(**row))
        filled.append(table.name)
    return filled


def every_row(connection: sa.Connection, tables: list[str]) -> dict[str, list[dict]]:
    schema = sa.MetaData()
    schema.reflect(connection, only=tables)
    return {name: [dict(row._mapping) for row in connection.execute(sa.select(schema.tables[name]))]
            for name in tables}


@pytest.fixture
def upgrade_database(migrated_database, tmp_path):
    url = scratch_database_url(migrated_database, tmp_path, "upgrade")
    app = create_app(base_config(url))
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    drop_mysql_database(url)


def test_an_install_at_the_previous_head_upgrades_with_all_its_data(upgrade_database):
    app = upgrade_database
    with app.app_context():
        older = previous_head()
        assert older != migration_scripts().get_current_head()
        upgrade(revision=older)
        with db.engine.begin() as connection:
            tables = fill_every_table(connection)
        with db.engine.connect() as connection:
            before = every_row(connection, tables)
        assert {"User", "Session", "rooms", "messages", "agents"} <= set(tables)
        assert all(len(rows) == 1 for rows in before.values())

        upgrade()

        with db.engine.connect() as connection:
            after = every_row(connection, tables)
            assert connection.execute(sa.text("SELECT version_num FROM alembic_version")
                                      ).scalar() == migration_scripts().get_current_head()
    for table in tables:
        [old], [new] = before[table], after[table]
        assert {name: new[name] for name in old} == old, f"{table} changed in the upgrade"

    client = app.test_client()
    client.set_cookie("discux_session", RAW_SESSION, domain="localhost")
    assert client.get("/readyz").status_code == 200
    for word in ("roadmap", "AI"):  # FULLTEXT/FTS5 and the short-word index both hold it
        found = client.get(f"/search?q={word}")
        assert found.status_code == 200
        assert "ships in spring" in found.get_data(as_text=True), word
