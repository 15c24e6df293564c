"""Rooms, people and many messages for search and export tests, written straight through the
models and Core bulk inserts (so they need nothing but the schema)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from datetime import timedelta

import sqlalchemy as sa

from discux.extensions import db
from discux.ids import new_id, utcnow
from discux.models import Agent, Message, MessageMention, Room, RoomParticipant, RoomSettings

_counter = itertools.count(1)
CHUNK = 5000


def room(owner_id: str, name: str | None = None, description: str | None = None) -> str:
    """A room owned by `owner_id` (no plan limits: tests set up what they need)."""
    created = Room(name=name or f"Room {next(_counter)}", description=description,
                   created_by=owner_id)
    db.session.add(created)
    db.session.flush()
    db.session.add(RoomSettings(room_id=created.id))
    db.session.add(RoomParticipant(room_id=created.id, user_id=owner_id, role="owner"))
    db.session.commit()
    return created.id


def join(room_id: str, user_id: str, role: str = "member") -> None:
    db.session.add(RoomParticipant(room_id=room_id, user_id=user_id, role=role))
    db.session.commit()


def leave(room_id: str, user_id: str) -> None:
    db.session.execute(sa.delete(RoomParticipant).where(
        RoomParticipant.room_id == room_id, RoomParticipant.user_id == user_id))
    db.session.commit()


def agent(creator_id: str, name: str) -> str:
    made = Agent(name=name, prompt="You help the team think clearly.", created_by=creator_id)
    db.session.add(made)
    db.session.commit()
    return made.id


def messages(room_id: str, contents: Iterable[str], *, sender_name: str = "Ada",
             type: str = "user", sender_id: str = "someone", **columns) -> list[str]:
    """One message per content, oldest first, with ids (and timestamps) in that order."""
    return bulk_messages(room_id, list(contents), sender_name=sender_name, type=type,
                         sender_id=sender_id, **columns)


def bulk_messages(room_id: str, contents: list[str] | int,
                  content_for: Callable[[int], str] | None = None, **columns) -> list[str]:
    """Insert messages fast with Core executemany in chunks (FTS5 triggers still fire).
    `contents` is a list, or a count with `content_for(i)` making each one."""
    count = contents if isinstance(contents, int) else len(contents)
    make = content_for if content_for else (lambda i: contents[i])
    start = utcnow()
    defaults = {
        "type": "user", "sender_id": "someone", "sender_name": "Ada", "sender_emoji": None,
        "sender_color": None, "processing_time": None, "agent_confidence": None,
        "context_length": None, "status": "complete", "reply_to_id": None,
        "content_html": None, "humans_only": False,
    }
    defaults.update(columns)
    ids: list[str] = []
    for chunk_start in range(0, count, CHUNK):
        rows = []
        for i in range(chunk_start, min(count, chunk_start + CHUNK)):
            message_id = new_id()
            ids.append(message_id)
            rows.append({**defaults, "id": message_id, "room_id": room_id, "content": make(i),
                         "timestamp": start + timedelta(milliseconds=i)})
        db.session.execute(sa.insert(Message.__table__), rows)
        db.session.commit()
    return ids


def mention(message_id: str, agent_id: str) -> None:
    db.session.add(MessageMention(message_id=message_id, mentioned_agent_id=agent_id))
    db.session.commit()
