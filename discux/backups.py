"""Backing up and restoring the whole database: SQLite through its online backup API, MySQL and
MariaDB through `mysqldump --single-transaction` and `mysql`. A backup is consistent while the
server runs and writes; a restore replaces everything and is meant for a stopped server."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import sqlalchemy as sa

SQLITE_HEADER = b"SQLite format 3\x00"
DUMP_HEADERS = ("-- MySQL dump", "-- MariaDB dump")
DUMP_TIMEOUT_SECONDS = 3600


class BackupError(Exception):
    """The backup or restore could not be made; the message says why in plain words."""


def describe(url: sa.engine.URL) -> str:
    """The database, as people may see it: no password."""
    return url.render_as_string(hide_password=True)


def backup(url: sa.engine.URL, target: Path) -> int:
    """Copy the database at `url` into the file `target`; returns its size in bytes. The file
    appears whole or not at all."""
    target = Path(target)
    if target.is_dir():
        raise BackupError(f"{target} is a folder: name the backup file, e.g. {target}/discux.bak")
    if not target.parent.is_dir():
        raise BackupError(f"the folder {target.parent} does not exist")
    partial = target.with_name(f".{target.name}.partial")
    try:
        if url.get_backend_name() == "sqlite":
            _sqlite_backup(_sqlite_path(url), partial)
        else:
            _mysql_backup(url, partial)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target.stat().st_size


def restore(url: sa.engine.URL, source: Path) -> None:
    """Replace everything in the database at `url` with the backup in `source`."""
    source = Path(source)
    if not source.is_file():
        raise BackupError(f"there is no backup file at {source}")
    if url.get_backend_name() == "sqlite":
        _sqlite_restore(source, _sqlite_path(url))
    else:
        _mysql_restore(url, source)


# -- SQLite -------------------------------------------------------------------------------------

def _sqlite_path(url: sa.engine.URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(url.database)


def _sqlite_backup(database: Path, target: Path) -> None:
    if not database.is_file():
        raise BackupError(f"there is no database file at {database}")
    # Read-only: a backup must never create or change the live database. One step copies every
    # page under one read transaction, so writers (WAL) go on and the copy is one moment.
    source = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)
    except sqlite3.Error as error:
        raise BackupError(f"SQLite could not copy {database}: {error}") from None
    finally:
        copy.close()
        source.close()


def _sqlite_restore(source: Path, database: Path) -> None:
    with source.open("rb") as file:
        if file.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
            raise BackupError(f"{source} is not a SQLite backup")
    backup_file = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        try:
            tables = {row[0] for row in backup_file.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as error:
            raise BackupError(f"{source} is not a readable SQLite backup: {error}") from None
        if "alembic_version" not in tables:
            raise BackupError(f"{source} is a SQLite file but not a Discux backup")
        try:
            target = sqlite3.connect(database, timeout=15)
            try:
                backup_file.backup(target)  # one transaction: the old database stays if it fails
            finally:
                target.close()
        except sqlite3.Error as error:
            raise BackupError(f"SQLite could not restore into {database}: {error}") from None
    finally:
        backup_file.close()


# -- MySQL / MariaDB ----------------------------------------------------------------------------

def _client(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise BackupError(
        f"{names[0]} is not installed on this machine: install the MariaDB or MySQL client "
        "(Debian: apt-get install mariadb-client) and run this again")


def _connection_arguments(url: sa.engine.URL) -> tuple[list[str], dict[str, str]]:
    """Command-line options for the mysql tools, and their environment (the password travels
    in MYSQL_PWD, not on the command line where `ps` would show it)."""
    arguments = ["--default-character-set=utf8mb4"]
    socket = url.query.get("unix_socket")
    if socket:
        arguments.append(f"--socket={socket}")
    else:
        arguments += [f"--host={url.host or '127.0.0.1'}", f"--port={url.port or 3306}",
                      "--protocol=TCP"]
    if url.username:
        arguments.append(f"--user={url.username}")
    environment = dict(os.environ)
    if url.password:
        environment["MYSQL_PWD"] = str(url.password)
    return arguments, environment


def _mysql_backup(url: sa.engine.URL, target: Path) -> None:
    dump = _client("mysqldump", "mariadb-dump")
    arguments, environment = _connection_arguments(url)
    command = [dump, *arguments, "--single-transaction", "--routines", "--triggers",
               "--no-tablespaces", "--skip-lock-tables", "--hex-blob", url.database]
    with target.open("wb") as file:
        finished = subprocess.run(command, stdout=file, stderr=subprocess.PIPE, env=environment,
                                  timeout=DUMP_TIMEOUT_SECONDS, check=False)
    if finished.returncode != 0:
        raise BackupError(f"mysqldump failed: {_last_lines(finished.stderr)}")


def _mysql_restore(url: sa.engine.URL, source: Path) -> None:
    with source.open("r", encoding="utf-8", errors="replace") as file:
        # MariaDB's dump may open with a "sandbox mode" comment before its header.
        opening = [file.readline() for _ in range(3)]
    if not any(line.startswith(DUMP_HEADERS) for line in opening):
        raise BackupError(f"{source} is not a mysqldump backup")
    client = _client("mysql", "mariadb")
    arguments, environment = _connection_arguments(url)
    with source.open("rb") as file:
        finished = subprocess.run([client, *arguments, url.database], stdin=file,
                                  capture_output=True, env=environment, timeout=DUMP_TIMEOUT_SECONDS, check=False)
    if finished.returncode != 0:
        raise BackupError(f"mysql could not load {source}: {_last_lines(finished.stderr)}")


def _last_lines(output: bytes, count: int = 3) -> str:
    lines = output.decode("utf-8", errors="replace").strip().splitlines()
    return " / ".join(lines[-count:]) or "no message"
