"""Search on SQLite: the FTS5 table `messages_fts` (external content over messages.rowid).

Newest first walks the FTS index in descending rowid order, which FTS5 does natively and which
is insertion order (= UUIDv7 id order, bar two inserts racing within a millisecond), so a page
costs the same in a room of a hundred messages or a million; the cursor is the last message id,
turned back into its rowid. Relevance is bm25 (about 1 µs a match), capped at
MAX_RANKED_RESULTS: the table's best RANKED_CANDIDATES matches are ranked from the FTS index
alone and filtered to the user's rooms, and only when too few of them are the user's is every
match in the user's rooms joined and ranked.
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
    "ORDER BY bm25(messages_fts), messages_fts.rowid DESC LIMIT :limit OFFSET :offset"
).bindparams(sa.bindparam("rooms", expanding=True))
# The best matches of the whole table, ranked from the FTS index alone, with what the room
# filter needs; same order as _RANKED, so the user's rows among them are a prefix of its answer.
_BEST = sa.text(
    "SELECT m.id, m.room_id, m.status FROM ("
    "  SELECT rowid, bm25(messages_fts) AS score FROM messages_fts"
    "  WHERE messages_fts MATCH :match ORDER BY score, rowid DESC LIMIT :candidates"
    ") AS best CROSS JOIN messages AS m ON m.rowid = best.rowid "
    "ORDER BY best.score, best.rowid DESC"
)
# How many of the table's best matches are ranked before filtering to the user's rooms.
RANKED_CANDIDATES = 1000
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
    ids = _ranked_from_best(params["match"], room_ids, offset, limit)
    if ids is None:
        ids = list(db.session.scalars(_RANKED, {**params, "offset": offset}))
    return Found(ids[:limit], len(ids) > limit)


def _ranked_from_best(match: str, room_ids: Sequence[str], offset: int,
                      limit: int) -> list[str] | None:
    """The page (plus one) from the table's RANKED_CANDIDATES best matches, or None when they
    do not settle it. Joining every match to its message to filter by room costs more than
    ranking them (42k matches: ~2 µs each); most searches are settled by the best thousand."""
    best = db.session.execute(_BEST, {"match": match, "candidates": RANKED_CANDIDATES}).all()
    rooms = set(room_ids)
    mine = [row.id for row in best if row.room_id in rooms and row.status != UNFINISHED_STATUS]
    if len(best) < RANKED_CANDIDATES or len(mine) > offset + limit:
        return mine[offset:offset + limit + 1]
    return None


def _rowid_below(before: str | None) -> int:
    """The rowid the next newest-first page starts under (exclusive)."""
    if before is None:
        return 2**63 - 1
    rowid = db.session.scalar(_ROWID_OF, {"id": before})
    if rowid is None:  # the cursor's message was deleted meanwhile: the newest older one
        rowid = db.session.scalar(_ROWID_BEFORE, {"id": before})
        return (rowid + 1) if rowid is not None else 0
    return rowid
