"""Reading a room's history newest-first by keyset (never OFFSET), so cost ignores room size,
and everything the chat column of the room page shows."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from functools import lru_cache
from typing import NamedTuple

import sqlalchemy as sa
from flask import current_app
from markupsafe import Markup
from sqlalchemy.orm import aliased

from discux.extensions import db
from discux.messages.rendering import (
    QUOTE_LENGTH,
    MessageView,
    day_label_of,
    day_of,
    quote_of,
)
from discux.messages.service import MAX_LENGTH, may_delete, room_agents
from discux.models import Agent, Message, Room, RoomParticipant
from discux.rooms.permissions import can

PAGE_SIZE = 50
ID_PATTERN = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)


def page_before(room_id: str, before_id: str | None = None, limit: int = PAGE_SIZE):
    """Up to `limit` messages older than `before_id`, oldest first, and whether more exist."""
    query = sa.select(Message).where(Message.room_id == room_id)
    if before_id:
        query = query.where(Message.id < before_id)
    rows = list(db.session.scalars(query.order_by(Message.id.desc()).limit(limit + 1)))
    has_earlier = len(rows) > limit
    return list(reversed(rows[:limit])), has_earlier


# What the chat column shows of a message. The context receipt (kilobytes per agent reply) is
# reduced to two flags in SQL: the page only says whether one exists and whether it was the demo.
VIEW_COLUMNS = (
    Message.id, Message.room_id, Message.type, Message.sender_id, Message.sender_name,
    Message.content, Message.content_html, Message.status, Message.timestamp,
    Message.sender_emoji, Message.sender_color, Message.processing_time,
    Message.agent_confidence, Message.context_length, Message.humans_only, Message.reply_to_id,
    Message.context_receipt.is_not(None).label("has_receipt"),
    Message.context_receipt.contains('"demo":true').label("is_demo"),
    Message.edited_at, Message.replaces_id, Message.replaced_by_id,
)
# The message a person's message replies to, for its quote (agents' replies name their trigger
# in reply_to_id too, but show no quote).
Quoted = aliased(Message, name="quoted")
QUOTE_COLUMNS = (
    Quoted.sender_name.label("quote_name"),
    sa.func.substr(Quoted.content, 1, QUOTE_LENGTH + 40).label("quote_text"),
)


def _view_select():
    """The chat column's select: VIEW_COLUMNS and the quote, versions replaced by a
    regenerated reply left out."""
    return (sa.select(*VIEW_COLUMNS, *QUOTE_COLUMNS)
            .outerjoin(Quoted, sa.and_(Quoted.id == Message.reply_to_id,
                                       Message.type == "user"))
            .where(Message.replaced_by_id.is_(None)))


def _rows(statement, **params) -> list[sa.Row]:
    return list(db.session.execute(statement, params))


# Built once: building an 18-column select and its cache key costs more than running it.
_NEWEST_ROWS = (_view_select().where(Message.room_id == sa.bindparam("room_id"))
                .order_by(Message.id.desc()).limit(sa.bindparam("limit")))
_ROWS_BEFORE = _NEWEST_ROWS.where(Message.id < sa.bindparam("before_id"))
_ROWS_FROM = (_view_select()
              .where(Message.room_id == sa.bindparam("room_id"),
                     Message.id >= sa.bindparam("message_id"))
              .order_by(Message.id).limit(sa.bindparam("limit")))
# Any one message, a replaced version too (its page, its delete confirmation).
_ONE_ROW = (sa.select(*VIEW_COLUMNS, *QUOTE_COLUMNS)
            .outerjoin(Quoted, sa.and_(Quoted.id == Message.reply_to_id, Message.type == "user"))
            .where(Message.room_id == sa.bindparam("room_id"),
                   Message.id == sa.bindparam("message_id")))


def rows_before(room_id: str, before_id: str | None = None,
                limit: int = PAGE_SIZE) -> tuple[list[sa.Row], bool]:
    """`page_before` as the chat column shows it: rows of VIEW_COLUMNS, no ORM objects, no
    mentions."""
    if before_id:
        rows = _rows(_ROWS_BEFORE, room_id=room_id, before_id=before_id, limit=limit + 1)
    else:
        rows = _rows(_NEWEST_ROWS, room_id=room_id, limit=limit + 1)
    return list(reversed(rows[:limit])), len(rows) > limit


def message_view(room_id: str, message_id: str) -> MessageView | None:
    """One message of the room as the chat column shows it; None if it is not there."""
    found = _rows(_ONE_ROW, room_id=room_id, message_id=message_id)
    return MessageView.from_row(found[0]) if found else None


@lru_cache(maxsize=2048)
def _cached_article(row: sa.Row, own: bool, can_delete: bool) -> Markup:
    return _article(row, own, can_delete)


def _article(row: sa.Row, own: bool, can_delete: bool) -> Markup:
    macro = current_app.jinja_env.get_template("messages/_message.html").module.message_article
    return macro(MessageView.from_row(row), own, can_delete)


def forget_rendered_articles() -> None:
    """Empty the kept articles (the next view renders every message again)."""
    _cached_article.cache_clear()


def article_renderer() -> Callable[[sa.Row, bool, bool], Markup]:
    """What makes a message's markup for one kind of viewer (row of VIEW_COLUMNS, own, may
    delete): asked once per page.

    Every view of a room re-renders the same articles, so they are kept: the row holds every
    value the markup shows, so a message whose status, text or receipt changed is a new key
    and a deleted one is simply never asked for again. While templates reload (development)
    nothing is kept.
    """
    return _article if current_app.jinja_env.auto_reload else _cached_article


class Entry(NamedTuple):
    """One message as the chat column shows it to one viewer."""

    id: str
    html: Markup
    day: str
    day_break: str | None  # the day's label when this message starts a new day


def entries_for(rows: list[sa.Row], participant: RoomParticipant, room: Room) -> list[Entry]:
    entries, previous_day = [], None
    render = article_renderer()
    me = participant.user_id
    for row in rows:
        own = row.type == "user" and row.sender_id == me
        day = day_of(row.timestamp)
        entries.append(Entry(
            row.id,
            render(row, own, may_delete(row, participant, room)),
            day,
            day_label_of(row.timestamp) if day != previous_day else None,
        ))
        previous_day = day
    return entries


def id_floor(epoch_ms: int) -> str:
    """The smallest UUIDv7 of that millisecond: every message created later sorts after it."""
    digits = f"{max(epoch_ms, 0):012x}"
    return f"{digits[:8]}-{digits[8:]}-7000-8000-000000000000"


def id_epoch_ms(message_id: str) -> int:
    return int(message_id.replace("-", "")[:12], 16)


def replay_from(newest_id: str | None) -> str:
    """The `?after=` a page gives its socket: the newest message it shows (or now, for an empty
    room). The socket also sends what changed from a little before it, so a message whose id
    was taken just before the page was read but committed just after still arrives."""
    return newest_id or id_floor(time.time_ns() // 1_000_000)


def composer_context(room: Room, participant: RoomParticipant, text: str = "",
                     error: str | None = None, humans_only: bool = False,
                     reply: MessageView | None = None) -> dict:
    """The composer form: kept text and its error after a refused post, and the message it
    replies to (quoted above it)."""
    return {
        "reply": ({"id": reply.id, "name": reply.sender_name or "Someone",
                   "text": quote_of(reply.content)} if reply is not None else None),
        "room_id": room.id,
        "text": text,
        "error": error,
        "humans_only": humans_only,
        "can_post": can(participant, "post", room),
        "archived": not room.is_active,
        "max_length": MAX_LENGTH,
    }


def agent_choices(agents: list[Agent]) -> list[dict]:
    """The room's agents as the `@` picker lists them."""
    return [
        {"id": agent.id, "name": agent.name, "emoji": agent.emoji or "🤖",
         "style": agent.style or "professional"}
        for agent in agents
    ]


def earlier_context(room: Room, participant: RoomParticipant, before: str | None) -> dict:
    """A page of messages older than `before` ("Load earlier")."""
    rows, has_earlier = rows_before(room.id, before)
    return {
        "room_id": room.id,
        "entries": entries_for(rows, participant, room),
        "has_earlier": has_earlier,
        "oldest_id": rows[0].id if rows else None,
    }


def page_around(room_id: str, message_id: str, limit: int = PAGE_SIZE):
    """The messages around `message_id` (half before, half from it on), oldest first, whether
    older ones exist, and whether newer ones were left out; None if it is not in the room."""
    found = db.session.scalar(
        sa.select(Message.id).where(Message.room_id == room_id, Message.id == message_id))
    if found is None:
        return None
    older, has_earlier = rows_before(room_id, message_id, limit // 2)
    newer = _rows(_ROWS_FROM, room_id=room_id, message_id=message_id,
                  limit=limit - len(older) + 1)
    has_later = len(newer) > limit - len(older)
    return older + newer[: limit - len(older)], has_earlier, has_later


def newest_message_id(room_id: str) -> str | None:
    return db.session.scalar(
        sa.select(Message.id).where(Message.room_id == room_id)
        .order_by(Message.id.desc()).limit(1))


def chat_context(room: Room, participant: RoomParticipant, around: str | None = None,
                 agents: list[Agent] | None = None) -> dict:
    """What the chat column of the room page needs: the newest page, or the page around one
    message (a search result's "jump to") with a way back to the newest. `agents`: the room's
    agents when the caller has them already."""
    window = page_around(room.id, around) if around and ID_PATTERN.match(around) else None
    if window is not None and window[2]:
        rows, has_earlier, _ = window
        newest_id = newest_message_id(room.id)  # the socket carries on from the real newest
    else:
        rows, has_earlier = rows_before(room.id)
        newest_id = rows[-1].id if rows else None
        window = None
    return {
        "window_around": around if window is not None else None,
        "room_id": room.id,
        "me": participant.user_id,
        "participant": participant,
        "entries": entries_for(rows, participant, room),
        "has_earlier": has_earlier,
        "oldest_id": rows[0].id if rows else None,
        "newest_id": newest_id,
        "socket_url": f"/rooms/{room.id}/ws?after={replay_from(newest_id)}",
        "composer": composer_context(room, participant),
        "agents": agent_choices(room_agents(room.id) if agents is None else agents),
    }
