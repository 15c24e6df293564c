"""Full-text search over the messages of the rooms a user is in: one interface, the database
dialect picks the engine (sqlite.py: FTS5; mysql.py: FULLTEXT plus bounded scans)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from markupsafe import Markup
from sqlalchemy.orm import lazyload

from discux.errors import DiscuxError
from discux.extensions import db
from discux.models import Message, Room, RoomParticipant, User
from discux.search import mysql, sqlite
from discux.search.common import MAX_RANKED_RESULTS, Found
from discux.search.highlight import snippet
from discux.search.query import ParsedQuery, parse_query

ORDERS = ("relevance", "newest")
MAX_PER_PAGE = 50
_MESSAGE_ID = re.compile(r"^[0-9a-fA-F-]{36}$")


class RoomNotFound(DiscuxError):
    """A room filter naming a room the user is not in: answered like an unknown room."""

    status = 404
    code = "not_found"


@dataclass
class SearchHit:
    message_id: str
    room_id: str
    room_name: str
    type: str
    sender_name: str
    sender_emoji: str | None
    sender_color: str | None
    timestamp: datetime | None
    content: str
    snippet: Markup


@dataclass
class SearchResults:
    query: ParsedQuery
    order: str
    room_id: str | None
    hits: list[SearchHit]
    per_page: int
    page: int = 1  # relevance
    next_page: int | None = None  # relevance
    before: str | None = None  # newest: this page holds messages older than this id
    next_before: str | None = None  # newest: the cursor for the next page
    notice: str | None = None  # the engine searched a bounded part of the history
    rooms_searched: int = 0

    @property
    def has_more(self) -> bool:
        return self.next_page is not None or self.next_before is not None


def searchable_rooms(user: User) -> list[Room]:
    """The rooms whose messages `user` may search: those they are a participant of now."""
    return list(db.session.scalars(
        sa.select(Room)
        .join(RoomParticipant, RoomParticipant.room_id == Room.id)
        .where(RoomParticipant.user_id == user.id)
        .order_by(Room.name, Room.id)
    ))


def search_messages(user: User, query: str, *, room_id: str | None = None,
                    order: str = "relevance", before: str | None = None, page: int = 1,
                    per_page: int = 20) -> SearchResults:
    """The user's matching messages, one page, best or newest first, with marked snippets.

    Raises DiscuxError for a query with nothing searchable in it or a bad cursor, and
    RoomNotFound (404) when `room_id` is not one of the user's rooms.
    """
    parsed = parse_query(query)
    if order not in ORDERS:
        raise DiscuxError("Order results by relevance or newest first.", field="order")
    per_page = max(1, min(int(per_page), MAX_PER_PAGE))
    room_ids = _room_ids_of(user, room_id)
    results = SearchResults(parsed, order, room_id, [], per_page, rooms_searched=len(room_ids))
    if order == "newest":
        if before is not None and not _MESSAGE_ID.match(before):
            raise DiscuxError("That results page link is broken; search again.", field="before")
        results.before = before
        page = 1
    else:
        last_page = -(-MAX_RANKED_RESULTS // per_page)
        page = max(1, min(int(page), last_page))
        results.page = page
    if not room_ids:
        return results
    offset = (page - 1) * per_page
    found = _engine().find(parsed, room_ids, order=order, before=before, offset=offset,
                           limit=min(per_page, MAX_RANKED_RESULTS - offset))
    results.hits = _hits(found, parsed)
    results.notice = found.notice
    if order == "newest":
        results.next_before = found.next_before if found.has_more else None
    elif found.has_more and offset + per_page < MAX_RANKED_RESULTS:
        results.next_page = page + 1
    return results


def _engine():
    return sqlite if db.engine.dialect.name == "sqlite" else mysql


def _room_ids_of(user: User, room_id: str | None) -> list[str]:
    query = sa.select(RoomParticipant.room_id).where(RoomParticipant.user_id == user.id)
    if room_id:
        query = query.where(RoomParticipant.room_id == room_id)
    room_ids = list(db.session.scalars(query))
    if room_id and not room_ids:
        raise RoomNotFound("There is no such room among yours.", field="room")
    return room_ids


SENDER_FALLBACK = {"user": "Someone", "agent": "Agent", "system": "Discux"}


def _hits(found: Found, query: ParsedQuery) -> list[SearchHit]:
    if not found.ids:
        return []
    # Two primary-key lookups; a join lets a planner with stale statistics scan a room instead.
    by_id = {message.id: message for message in db.session.scalars(
        sa.select(Message).where(Message.id.in_(found.ids)).options(lazyload(Message.mentions))
    )}
    room_names = dict(db.session.execute(
        sa.select(Room.id, Room.name).where(Room.id.in_({m.room_id for m in by_id.values()}))
    ).all())
    hits = []
    for message_id in found.ids:
        if message_id not in by_id:  # deleted between the two queries
            continue
        message = by_id[message_id]
        hits.append(SearchHit(
            message_id=message.id,
            room_id=message.room_id,
            room_name=room_names.get(message.room_id, ""),
            type=message.type,
            sender_name=message.sender_name or SENDER_FALLBACK.get(message.type, "Someone"),
            sender_emoji=message.sender_emoji,
            sender_color=message.sender_color,
            timestamp=message.timestamp,
            content=message.content,
            snippet=snippet(message.content, query),
        ))
    return hits
