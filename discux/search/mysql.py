"""Search on MySQL/MariaDB: FULLTEXT `MATCH … AGAINST` in boolean mode where the index can
answer, and a bounded, room-scoped REGEXP scan where it cannot or would be slow.

What FULLTEXT cannot see. InnoDB does not index tokens shorter than `innodb_ft_min_token_size`
(3 by default) nor its stopwords ("the", "what", "with"…), and a `+term` it did not index makes
the whole query match nothing. So each term is sent to FULLTEXT only if the server indexes it
(its settings are read once); the others ("AI", "UX", "QA", "the", "ai*") become word-bounded
REGEXP conditions that every result must also satisfy. A query with at least one indexed term
is thus exact over the whole history: FULLTEXT narrows, REGEXP checks the rest on those rows.
A query made only of such words has nothing to narrow with, so it is scanned over the newest
messages of each room, walking idx_room_id_id (ranked: the newest FALLBACK_ROWS_PER_ROOM of
each room; newest first: up to that many per request, with a cursor to search further back).

Newest first. MariaDB answers `MATCH … ORDER BY id DESC LIMIT 20` by fetching every matching
row and sorting them (NOTES.md: 7.8k matches 469 ms, 793k 8.7 s). Instead the user's rooms are
walked newest-first in id windows: a window [lo, hi) is chosen so that no room has more than
WINDOW_ROWS messages in it (lo = the highest of each room's WINDOW_ROWS-th newest id below hi,
an index-only lookup), and the window is REGEXP-filtered through idx_room_id_id. A common term
fills a page in the first window, whatever the room size; cost follows the rows read, not the
matches. When a few windows have not filled the page the term is rare in recent history, and
then the FULLTEXT set is small: the rest of the page comes from `MATCH … AND id < lo ORDER BY
id DESC`, under a statement time limit. If that limit is hit, the page shows what the windows
found and a cursor to continue from `lo`, never an error. Windows are exclusive id ranges, so
pages neither repeat nor skip a message.

Ranked. MariaDB reads the row of every match before it sorts them for `ORDER BY MATCH … DESC
LIMIT` (26k matches: 1 s with a 128 MiB buffer pool, whatever the LIMIT or the other conditions).
InnoDB itself hands matches over best first (it ranks them in the index, then reads each row),
so `MATCH … LIMIT K` without ORDER BY reads only K rows: the table's RANKED_CANDIDATES best
matches, with whether each is in the user's rooms, finished, and satisfies the REGEXPs. Those
scoring above the last candidate are every such match of the table (a match left out may only
tie with the last one), so the user's among them are the start of the full ranking; when they
fill the page it is answered from them. Otherwise the full `ORDER BY MATCH … DESC, id DESC`
over the user's rooms runs, under the same time limit, capped at MAX_RANKED_RESULTS. The
scan-only case ranks by how often the terms occur.
"""

from __future__ import annotations

import string
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.mysql import match
from sqlalchemy.exc import DBAPIError

from discux.extensions import db
from discux.models import Message
from discux.search.common import UNFINISHED_STATUS, Found
from discux.search.query import ParsedQuery, Term, fold

# Newest-first windows: FIRST_WINDOW_ROWS of each room, then WINDOW_GROWTH times more each
# time, up to WINDOW_ROWS.
FIRST_WINDOW_ROWS = 100
WINDOW_GROWTH = 4
WINDOW_ROWS = 2000
# Rows per room a FULLTEXT-answerable query reads in windows before handing the rest of the
# page to the index (by then the term is rare in recent history, so its match set is small).
ROWS_BEFORE_FULLTEXT = 2100
# Rows per room per request when only a scan can answer (stopwords, short prefixes).
FALLBACK_ROWS_PER_ROOM = 20000
# Ranked FULLTEXT past the time limit ranks the matches among this many newest per room.
RECENT_ROWS_PER_ROOM = 2000
# Ranked FULLTEXT first reads the table's this many best matches (one row read each).
RANKED_CANDIDATES = 1000
# messages_fts_short indexes words of exactly this many letters or digits.
SHORT_TOKEN_CHARS = 2
TIME_LIMIT_SECONDS = 2.0
# ER_STATEMENT_TIMEOUT (MariaDB), ER_QUERY_TIMEOUT (MySQL 8), and HA_ERR_ABORTED_BY_USER (188),
# which is what MariaDB reports when the time limit stops a FULLTEXT search mid-way.
_TIMEOUT_ERRORS = {1969, 3024, 188}

# information_schema.INNODB_FT_DEFAULT_STOPWORD, which needs the PROCESS privilege to read.
INNODB_DEFAULT_STOPWORDS = frozenset({
    "a", "about", "an", "are", "as", "at", "be", "by", "com", "de", "en", "for", "from", "how",
    "i", "in", "is", "it", "la", "of", "on", "or", "that", "the", "this", "to", "was", "what",
    "when", "where", "who", "will", "with", "und", "www",
})


@dataclass(frozen=True)
class FulltextSettings:
    """What the server's FULLTEXT index holds (as configured; the index must be rebuilt after
    changing them, see docs/search.md)."""

    min_token: int = 3
    max_token: int = 84
    stopwords: frozenset[str] = INNODB_DEFAULT_STOPWORDS

    def indexes(self, word: str) -> bool:
        return self.min_token <= len(word) <= self.max_token and word not in self.stopwords


_settings_by_engine: dict[str, FulltextSettings] = {}


def fulltext_settings() -> FulltextSettings:
    """The server's FULLTEXT token sizes and stopwords, read once per database."""
    key = db.engine.url.render_as_string(hide_password=True)
    if key not in _settings_by_engine:
        _settings_by_engine[key] = _read_settings()
    return _settings_by_engine[key]


def _read_settings() -> FulltextSettings:
    row = db.session.execute(sa.text(
        "SELECT @@innodb_ft_min_token_size, @@innodb_ft_max_token_size, "
        "@@innodb_ft_enable_stopword, @@innodb_ft_server_stopword_table"
    )).one()
    min_token, max_token, enabled, table = row
    stopwords = frozenset()
    if enabled:
        stopwords = INNODB_DEFAULT_STOPWORDS
        if table:  # "database/table", set by the administrator
            schema, _, name = str(table).partition("/")
            try:
                stopwords = frozenset(
                    str(word).lower() for word in db.session.scalars(
                        sa.select(sa.column("value")).select_from(sa.table(name, schema=schema))
                    )
                )
            except sa.exc.DBAPIError:
                db.session.rollback()
    return FulltextSettings(int(min_token), int(max_token), stopwords)


# ---- Turning terms into FULLTEXT and REGEXP --------------------------------------------

_LETTER = r"[\p{L}\p{N}]"
_NOT_LETTER = r"[^\p{L}\p{N}]"


def _accent_classes() -> dict[str, str]:
    """'e' → '[eèéêë…]': REGEXP compares accents exactly, FULLTEXT and FTS5 ignore them."""
    variants: dict[str, list[str]] = {c: [c] for c in string.ascii_lowercase}
    for code in range(0xC0, 0x250):
        char = chr(code)
        base = fold(char)
        if base in variants and char.lower() == char:
            variants[base].append(char)
    return {c: f"[{''.join(v)}]" for c, v in variants.items() if len(v) > 1}


_ACCENTED = _accent_classes()


def _pcre_word(word: str) -> str:
    return "".join(
        _ACCENTED.get(c, c) if c.isalnum() else "\\" + c for c in fold(word)
    )


def pcre_pattern(term: Term) -> str:
    """A case-insensitive REGEXP matching `term` as whole words (a prefix: word start)."""
    body = f"{_NOT_LETTER}+".join(_pcre_word(word) for word in term.words)
    end = "" if term.kind == "prefix" else f"(?!{_LETTER})"
    return f"(?i)(?<!{_LETTER}){body}{end}"


@dataclass(frozen=True)
class Plan:
    """How one parsed query runs here."""

    boolean: str | None  # AGAINST (… IN BOOLEAN MODE) over the terms FULLTEXT indexes
    residual: tuple[str, ...]  # REGEXPs for the terms it does not: results must match these too
    every_term: tuple[str, ...]  # a REGEXP for every term, for the scans
    unindexed: tuple[str, ...]  # the terms FULLTEXT cannot see, to name them to the user
    # Two-letter words FULLTEXT does not index, which messages_fts_short does (migration 0004),
    # and the REGEXPs of the unindexed terms that table does not answer exactly by itself.
    short: tuple[str, ...] = ()
    short_residual: tuple[str, ...] = ()


def plan_for(query: ParsedQuery, settings: FulltextSettings) -> Plan:
    required: list[str] = []
    residual: list[str] = []
    unindexed: list[str] = []
    short: list[str] = []
    short_residual: list[str] = []
    for term in query.terms:
        indexed = [word for word in term.words if settings.indexes(word)]
        if term.kind == "phrase" and len(indexed) == len(term.words):
            # InnoDB checks a quoted phrase by re-reading and re-parsing every document holding
            # all its words (25 s for "release notes" in 1M messages); the words narrow as
            # well, and a REGEXP on those rows is the cheaper check of their order.
            required.extend(f"+{word}" for word in dict.fromkeys(term.words))
            residual.append(pcre_pattern(term))
            continue
        if term.kind != "phrase" and indexed:
            required.append(f"+{indexed[0]}" + ("*" if term.kind == "prefix" else ""))
            continue
        # A phrase with a short word or stopword in it: its indexed words narrow, REGEXP decides.
        required.extend(f"+{word}" for word in indexed)
        residual.append(pcre_pattern(term))
        unindexed.append(term.text)
        # A prefix ("ux*") may be a longer word: only whole words narrow through the table.
        two_letter = [w for w in term.words if len(w) == SHORT_TOKEN_CHARS
                      and w not in indexed and term.kind != "prefix"]
        short.extend(w for w in two_letter if w not in short)
        if term.kind != "word" or not two_letter:
            short_residual.append(pcre_pattern(term))
    return Plan(
        boolean=" ".join(required) or None,
        residual=tuple(residual),
        every_term=tuple(pcre_pattern(term) for term in query.terms),
        unindexed=tuple(unindexed),
        short=tuple(short),
        short_residual=tuple(short_residual),
    )


# ---- Queries ---------------------------------------------------------------------------

def find(query: ParsedQuery, room_ids: Sequence[str], *, order: str, before: str | None,
         offset: int, limit: int) -> Found:
    plan = plan_for(query, fulltext_settings())
    index_only = plan.boolean is None and bool(plan.short)
    if order == "newest":
        if index_only:
            return _newest_short(plan, room_ids, before, limit)
        return _newest(plan, room_ids, before, limit)
    if plan.boolean:
        return _ranked_fulltext(plan, room_ids, offset, limit)
    if index_only:
        return _ranked_short(plan, room_ids, offset, limit)
    return _ranked_scan(plan, room_ids, offset, limit)


def _base(room_ids: Sequence[str]) -> sa.Select:
    return sa.select(Message.id).where(
        Message.room_id.in_(list(room_ids)), Message.status != UNFINISHED_STATUS
    )


def _along_rooms(statement: sa.Select) -> sa.Select:
    """Read through idx_room_id_id. Left alone, the optimizer may walk the primary key over
    every room's messages in the id range (and stale statistics after bulk loads make it
    likelier), which costs the whole table's traffic instead of the user's rooms'."""
    hint = "FORCE INDEX (idx_room_id_id)"
    return statement.with_hint(Message, hint, "mysql").with_hint(Message, hint, "mariadb")


def _regexps(patterns: Sequence[str]) -> list[sa.ColumnElement[bool]]:
    return [Message.content.regexp_match(pattern) for pattern in patterns]


def _fulltext(plan: Plan):
    return match(Message.content, against=plan.boolean).in_boolean_mode()


def _ranked_fulltext(plan: Plan, room_ids: Sequence[str], offset: int, limit: int) -> Found:
    """Best first: from the table's best matches when they settle the page, else ranking every
    match in the user's rooms, which reads the row of each (see docs/search.md)."""
    best = _best_matches(plan, room_ids)
    ids = None if best is None else _page_from_best(best, offset, limit)
    if best is not None and ids is None:
        ids = _ranked_in_rooms(plan, room_ids, offset, limit)
    if ids is None:  # too many matches to rank in time: rank the recent ones instead
        found = _ranked_scan(plan, room_ids, offset, limit, rows_per_room=RECENT_ROWS_PER_ROOM)
        found.notice = (_TOO_SLOW + " These are the best matches among the newest "
                        f"{RECENT_ROWS_PER_ROOM:,} messages of each room.")
        return found
    return Found(ids[:limit], len(ids) > limit)


def _ranked_in_rooms(plan: Plan, room_ids: Sequence[str], offset: int,
                     limit: int) -> list[str] | None:
    """The page (plus one) ranked over every match in the user's rooms, or None past the time
    limit."""
    score = _fulltext(plan)
    return _run_time_limited(
        _base(room_ids).where(score, *_regexps(plan.residual))
        .order_by(score.desc(), Message.id.desc()).offset(offset).limit(limit + 1)
    )


def _best_matches(plan: Plan, room_ids: Sequence[str]) -> list[sa.Row] | None:
    """The table's first RANKED_CANDIDATES matches in the index's order (best first), each
    with its score and whether it is one of the user's results; None past the time limit."""
    score = sa.type_coerce(_fulltext(plan), sa.Double())
    mine = sa.and_(Message.room_id.in_(list(room_ids)), Message.status != UNFINISHED_STATUS,
                   *_regexps(plan.residual))
    return _run_time_limited_rows(
        sa.select(Message.id, score.label("score"), mine.label("mine"))
        .where(_fulltext(plan)).limit(RANKED_CANDIDATES)
    )


def _page_from_best(best: list[sa.Row], offset: int, limit: int) -> list[str] | None:
    """The page (plus one) of the user's results among the best matches, in the full ranking's
    order (score, then newest), or None when they do not settle it."""
    scores = [row.score for row in best]
    if any(later > earlier for earlier, later in zip(scores, scores[1:], strict=False)):
        return None  # not handed over best first: only the full ranking is sure
    if len(best) == RANKED_CANDIDATES:
        # Matches left out score no higher than the last candidate and may tie with it.
        best = [row for row in best if row.score > best[-1].score]
        complete = False
    else:
        complete = True
    mine = sorted((row for row in best if row.mine), key=lambda row: (row.score, row.id),
                  reverse=True)
    if complete or len(mine) > offset + limit:
        return [row.id for row in mine[offset:offset + limit + 1]]
    return None


def _ranked_scan(plan: Plan, room_ids: Sequence[str], offset: int, limit: int,
                 rows_per_room: int | None = None) -> Found:
    """Rank by occurrences of the terms among the newest FALLBACK_ROWS_PER_ROOM (or
    `rows_per_room`) of each room."""
    rows_per_room = rows_per_room or FALLBACK_ROWS_PER_ROOM
    scopes, bounded = [], []
    for room_id in room_ids:
        floor = _nth_newest_id(room_id, rows_per_room)
        if floor is None:
            scopes.append(Message.room_id == room_id)
        else:
            scopes.append(sa.and_(Message.room_id == room_id, Message.id >= floor))
            bounded.append(room_id)
    occurrences = sum(
        sa.func.char_length(sa.func.regexp_replace(Message.content, pattern, "##"))
        - sa.func.char_length(sa.func.regexp_replace(Message.content, pattern, "#"))
        for pattern in plan.every_term
    )
    statement = (
        _along_rooms(_base(room_ids)).where(sa.or_(*scopes), *_regexps(plan.every_term))
        .order_by(occurrences.desc(), Message.id.desc()).offset(offset).limit(limit + 1)
    )
    ids = _run_time_limited(statement)
    if ids is None:
        return Found([], False, notice=_TOO_SLOW)
    notice = _scan_notice(plan, f"the newest {rows_per_room:,} messages of each room"
                          ) if bounded else None
    return Found(ids[:limit], len(ids) > limit, notice=notice)


# ---- Two-letter words from messages_fts_short ---------------------------------------------

_SHORT = sa.table("messages_fts_short", sa.column("token"), sa.column("room_id"),
                  sa.column("message_id"), sa.column("occurrences"))


def _short_matches(plan: Plan, room_ids: Sequence[str]
                   ) -> tuple[sa.Select, sa.ColumnElement, sa.ColumnElement]:
    """Messages (in `room_ids`) holding every two-letter word of the plan, and their total
    occurrences; the other unindexed terms are checked on the message with REGEXP."""
    first, *others = [_SHORT.alias(f"short_{k}") for k in range(len(plan.short))]
    statement = sa.select(first.c.message_id.label("id")).where(
        first.c.token == plan.short[0], first.c.room_id.in_(list(room_ids)))
    occurrences = first.c.occurrences
    for alias, token in zip(others, plan.short[1:], strict=True):
        statement = statement.join(alias, sa.and_(
            alias.c.token == token, alias.c.room_id == first.c.room_id,
            alias.c.message_id == first.c.message_id))
        occurrences = occurrences + alias.c.occurrences
    if plan.short_residual:
        statement = statement.join(Message, Message.id == first.c.message_id).where(
            Message.status != UNFINISHED_STATUS, *_regexps(plan.short_residual))
    return statement, first.c.message_id, occurrences


def _ranked_short(plan: Plan, room_ids: Sequence[str], offset: int, limit: int) -> Found:
    """Most occurrences first: each room's best `offset + limit + 1`, read in order from the
    (token, room_id, occurrences) index, merged; the cost follows the page, not the matches."""
    per_room = []
    for room_id in room_ids:
        statement, message_id, occurrences = _short_matches(plan, [room_id])
        per_room.append(statement.add_columns(occurrences.label("score"))
                        .order_by(occurrences.desc(), message_id.desc())
                        .limit(offset + limit + 1))
    merged = sa.union_all(*per_room).subquery("merged")
    ranked = (sa.select(merged.c.id).order_by(merged.c.score.desc(), merged.c.id.desc())
              .offset(offset).limit(limit + 1))
    rows = _run_time_limited_rows(ranked)
    if rows is None:
        return Found([], False, notice=_TOO_SLOW)
    ids = [row.id for row in rows]
    return Found(ids[:limit], len(ids) > limit)


def _newest_short(plan: Plan, room_ids: Sequence[str], before: str | None,
                  limit: int) -> Found:
    """Each room's newest matches walking the (token, room_id, message_id) key backwards,
    `limit + 1` at most per room, merged: the cost follows the page, not the history."""
    per_room = []
    for room_id in room_ids:
        statement, message_id, _ = _short_matches(plan, [room_id])
        if before is not None:
            statement = statement.where(message_id < before)
        per_room.append(statement.order_by(message_id.desc()).limit(limit + 1))
    merged = sa.union_all(*per_room).subquery("merged")
    statement = sa.select(merged.c.id).order_by(merged.c.id.desc()).limit(limit + 1)
    ids = _run_time_limited(statement)
    if ids is None:
        return Found([], True, next_before=before, notice=_TOO_SLOW)
    has_more = len(ids) > limit
    return Found(ids[:limit], has_more, next_before=ids[limit - 1] if has_more else None)


# ---- Newest first: id windows over the user's rooms ---------------------------------------

def _window_sizes(total_rows: int) -> Iterator[int]:
    """Rows per room of each window: small first (a common word fills a page from a few
    hundred rows), then growing up to WINDOW_ROWS, until `total_rows` per room are read."""
    size, read = FIRST_WINDOW_ROWS, 0
    while read < total_rows:
        size = min(size, WINDOW_ROWS, total_rows - read)
        yield size
        read += size
        size *= WINDOW_GROWTH


def _newest(plan: Plan, room_ids: Sequence[str], before: str | None, limit: int) -> Found:
    found: list[str] = []
    upper = before
    budget = FALLBACK_ROWS_PER_ROOM if plan.boolean is None else ROWS_BEFORE_FULLTEXT
    for rows in _window_sizes(budget):
        lower = _window_floor(room_ids, upper, rows)
        statement = _along_rooms(_base(room_ids).where(*_regexps(plan.every_term)))
        if upper is not None:
            statement = statement.where(Message.id < upper)
        if lower is not None:
            statement = statement.where(Message.id >= lower)
        statement = statement.order_by(Message.id.desc()).limit(limit + 1 - len(found))
        found.extend(db.session.scalars(statement))
        if len(found) > limit:
            return Found(found[:limit], True, next_before=found[limit - 1])
        if lower is None:  # every room read back to its first message
            return Found(found, False)
        upper = lower
    if plan.boolean:
        statement = (
            _base(room_ids).where(_fulltext(plan), *_regexps(plan.residual), Message.id < upper)
            .order_by(Message.id.desc()).limit(limit + 1 - len(found))
        )
        rest = _run_time_limited(statement)
        if rest is not None:
            found.extend(rest)
            has_more = len(found) > limit
            return Found(found[:limit], has_more,
                         next_before=found[limit - 1] if has_more else None)
        notice = (_TOO_SLOW + " These are the matches among the newest messages; "
                  "search further back to continue.")
    else:
        notice = _scan_notice(plan, f"up to {FALLBACK_ROWS_PER_ROOM:,} messages of each room "
                              "at a time; search further back to continue")
    return Found(found, True, next_before=upper, notice=notice)


def _nth_newest_id(room_id: str, n: int, below: str | None = None) -> str | None:
    """The id of the room's n-th newest message (below `below`), read from idx_room_id_id."""
    return db.session.scalar(_nth_newest(room_id, n, below))


def _nth_newest(room_id: str, n: int, below: str | None) -> sa.Select:
    statement = _along_rooms(sa.select(Message.id).where(Message.room_id == room_id))
    if below is not None:
        statement = statement.where(Message.id < below)
    return statement.order_by(Message.id.desc()).offset(n - 1).limit(1)


def _window_floor(room_ids: Sequence[str], upper: str | None, rows: int) -> str | None:
    """The lowest id such that no room has more than `rows` messages in [floor, upper);
    None when every room has fewer left (the window reaches back to the start). One
    statement, index-only lookups in idx_room_id_id."""
    each = sa.union_all(*[_nth_newest(r, rows, upper) for r in room_ids]).subquery("floors")
    return db.session.scalar(sa.select(sa.func.max(each.c.id)))


_TOO_SLOW = "That search took too long on this server, so it stopped early."


def _scan_notice(plan: Plan, scope: str) -> str:
    words = ", ".join(f"“{term}”" for term in plan.unindexed)
    return (f"This server's full-text index skips short and very common words ({words}), "
            f"so they were looked for in {scope}.")


def _run_time_limited(statement: sa.Select) -> list[str] | None:
    """The statement's ids, or None if it ran past TIME_LIMIT_SECONDS."""
    rows = _run_time_limited_rows(statement)
    return None if rows is None else [row[0] for row in rows]


def _run_time_limited_rows(statement: sa.Select) -> list[sa.Row] | None:
    """The statement's rows, or None if it ran past TIME_LIMIT_SECONDS."""
    try:
        with _time_limit(TIME_LIMIT_SECONDS):
            return list(db.session.execute(statement))
    except DBAPIError as error:
        if error.orig is not None and error.orig.args and error.orig.args[0] in _TIMEOUT_ERRORS:
            return None
        raise


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Bound the statements run inside: max_statement_time (MariaDB, seconds) or
    max_execution_time (MySQL, milliseconds, SELECT only); the previous value comes back after."""
    connection = db.session.connection()
    if connection.dialect.is_mariadb:
        variable, value = "max_statement_time", f"{seconds:.3f}"
    else:
        variable, value = "max_execution_time", str(int(seconds * 1000))
    previous = connection.exec_driver_sql(f"SELECT @@SESSION.{variable}").scalar()
    connection.exec_driver_sql(f"SET SESSION {variable} = {value}")
    try:
        yield
    finally:
        connection.exec_driver_sql(f"SET SESSION {variable} = {previous}")
