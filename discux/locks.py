"""Row locks for "read, check, then write" rules (plan limits, the brief's next version) that two
requests at once must not both pass."""

from __future__ import annotations

import sqlalchemy as sa

from discux.extensions import db


def lock_row(model, row_id: str) -> None:
    """Hold the row of `model` with primary key `row_id` until the transaction ends.

    MariaDB: SELECT ... FOR UPDATE; a second transaction locking the same row waits here.
    SQLite ignores FOR UPDATE, and its reads before a transaction's first write see no lock: a
    write that changes nothing takes the database's one write lock now (others wait on
    busy_timeout), so every read after it sees what the writer before committed.

    Reads after the lock must be locking reads on MariaDB too (`with_for_update()`): under
    REPEATABLE READ a plain SELECT may answer from the snapshot taken before the lock."""
    table = model.__table__
    key = next(iter(table.primary_key.columns))
    dialect = db.session.get_bind().dialect
    if dialect.name == "sqlite":
        quote = dialect.identifier_preparer
        column = quote.quote(key.name)
        db.session.execute(
            sa.text(f"UPDATE {quote.format_table(table)} SET {column} = {column} "
                    f"WHERE {column} = :row_id"),
            {"row_id": row_id},
        )
    else:
        db.session.execute(sa.select(key).where(key == row_id).with_for_update())
