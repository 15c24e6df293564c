"""Databases of a test's own, on the engine the suite runs on, and the migration revisions
they can be built at."""

from __future__ import annotations

import pymysql
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from discux.extensions import migrate


def scratch_database_url(suite_url: str, tmp_path, name: str) -> str:
    """An empty database named after `name`: a file under `tmp_path` on SQLite, a fresh
    `<suite database>_<name>` on the suite's MySQL/MariaDB server."""
    url = sa.engine.make_url(suite_url)
    if url.get_backend_name() == "sqlite":
        return f"sqlite:///{tmp_path / f'{name}.db'}"
    database = f"{url.database}_{name}"
    recreate_mysql_database(url, database)
    return url.set(database=database).render_as_string(hide_password=False)


def recreate_mysql_database(url: sa.engine.URL, database: str) -> None:
    connection = pymysql.connect(host=url.host, port=url.port or 3306, user=url.username,
                                 password=url.password or "")
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")
            cursor.execute(f"CREATE DATABASE `{database}` "
                           "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    finally:
        connection.close()


def drop_mysql_database(url: str) -> None:
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return
    connection = pymysql.connect(host=parsed.host, port=parsed.port or 3306,
                                 user=parsed.username, password=parsed.password or "")
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{parsed.database}`")
    finally:
        connection.close()


def migration_scripts() -> ScriptDirectory:
    """The migrations this checkout ships (inside an app context)."""
    return ScriptDirectory.from_config(migrate.get_config())


def previous_head() -> str:
    """The revision just before head: what an install one release behind is at."""
    scripts = migration_scripts()
    head = scripts.get_revision(scripts.get_current_head())
    assert isinstance(head.down_revision, str), "head has no single previous revision"
    return head.down_revision
