"""Reading a room's history newest-first by keyset (never OFFSET), so cost ignores room size."""

from __future__ import annotations

import sqlalchemy as sa

from discux.extensions import db
from discux.models import Message, Room, RoomParticipant

PAGE_SIZE = 50


def page_before(room_id: str, before_id: str | None = None, limit: int = PAGE_SIZE):
    """Up to `limit` messages older than `before_id`, oldest first, and whether more exist."""
    query = sa.select(Message).where(Message.room_id == room_id)
    if before_id:
        query = query.where(Message.id < before_id)
    rows = list(db.session.scalars(query.order_by(Message.id.desc()).limit(limit + 1)))
    has_earlier = len(rows) > limit
    return list(reversed(rows[:limit])), has_earlier


def chat_context(room: Room, participant: RoomParticipant) -> dict:
    """What the chat column of the room page needs."""
    messages, has_earlier = page_before(room.id)
    return {"messages": messages, "has_earlier": has_earlier, "participant": participant}
