"""Search on SQLite: the FTS5 table `messages_fts` (external content over messages.rowid).

Newest first walks the FTS index in descending rowid order, which FTS5 does natively and which
is insertion order (= UUIDv7 id order, bar two inserts racing within a millisecond), so a page
costs the same in a room of a hundred messages or a million; the cursor is the last message id,
turned back into its rowid. Relevance is bm25 over every match in the user's rooms (about 1 µs a
match), capped at MAX_RANKED_RESULTS.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from discux.extensions import db
from discux.search.common import UNFINISHED_STATUS, Found
from discux.search.query import ParsedQuery, Term

_IN_MY_ROOMS = """
    FROM messages_fts CROSS JOIN messages AS m ON m.rowid = messages_fts.rowid
    WHERE messages_fts MATCH :match AND m.room_id IN :rooms AND m.status != :unfinished
"""
_NEWEST = sa.text(
    f"SELECT m.id {_IN_MY_ROOMS} AND messages_fts.rowid < :below "
    "ORDER BY messages_fts.rowid DESC LIMIT :limit"
).bindparams(sa.bindparam("rooms", expanding=True))
_RANKED = sa.text(
    f"SELECT m.id {_IN_MY_ROOMS} "
    "ORDER BY bm25(messages_fts), m.id DESC LIMIT :limit OFFSET :offset"
).bindparams(sa.bindparam("rooms", expanding=True))
_ROWID_OF = sa.text("SELECT rowid FROM messages WHERE id = :id")
# Walks the primary key index: any room will do, only a rowid boundary is wanted.
_ROWID_BEFORE = sa.text("SELECT rowid FROM messages WHERE id < :id ORDER BY id DESC LIMIT 1")


def fts_term(term: Term) -> str:
    """FTS5 syntax for one term. Words are letters and digits only (query.py), and each is
    quoted, so AND/OR/NOT/NEAR or `content:` can never act as operators."""
    quoted = '"' + " ".join(term.words) + '"'
    return quoted + "*" if term.kind == "prefix" else quoted


def fts_expression(query: ParsedQuery) -> str:
    """Every term must match (FTS5's implicit AND)."""
    return " ".join(fts_term(term) for term in query.terms)


def find(query: ParsedQuery, room_ids: Sequence[str], *, order: str, before: str | None,
         offset: int, limit: int) -> Found:
    params = {"match": fts_expression(query), "rooms": list(room_ids),
              "unfinished": UNFINISHED_STATUS, "limit": limit + 1}
    if order == "newest":
        params["below"] = _rowid_below(before)
        ids = list(db.session.scalars(_NEWEST, params))
        has_more = len(ids) > limit
        ids = ids[:limit]
        return Found(ids, has_more, next_before=ids[-1] if has_more else None)
    ids = list(db.session.scalars(_RANKED, {**params, "offset": offset}))
    return Found(ids[:limit], len(ids) > limit)


def _rowid_below(before: str | None) -> int:
    """The rowid the next newest-first page starts under (exclusive)."""
    if before is None:
        return 2**63 - 1
    rowid = db.session.scalar(_ROWID_OF, {"id": before})
    if rowid is None:  # the cursor's message was deleted meanwhile: the newest older one
        rowid = db.session.scalar(_ROWID_BEFORE, {"id": before})
        return (rowid + 1) if rowid is not None else 0
    return rowid
