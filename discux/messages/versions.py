"""Versions of a regenerated agent reply: the newest is the one the room shows and agents read;
the ones it replaced stay readable under "Earlier versions" (migration 0012)."""

from __future__ import annotations

import sqlalchemy as sa

from discux.extensions import db
from discux.messages.rendering import MessageView
from discux.messages.service import message_payload
from discux.models import Message
from discux.realtime import publish

MAX_VERSIONS = 50  # how far back "Earlier versions" walks a chain


def retire_replaced(reply: Message) -> Message | None:
    """In the caller's transaction: the version `reply` replaces leaves the chat column (its
    changed_at moves, so `?after=` replays it). None when that version is gone."""
    replaced = db.session.scalar(sa.select(Message).where(
        Message.id == reply.replaces_id, Message.room_id == reply.room_id))
    if replaced is None:
        return None
    replaced.replaced_by_id = reply.id
    return replaced


def publish_replaced(replaced: Message) -> None:
    """Tell every screen a version was replaced (HTML sockets take it off the list)."""
    publish(replaced.room_id, "message.updated", message_payload(replaced))


def earlier_versions(reply: Message) -> list[MessageView]:
    """The versions `reply` replaced, newest first (a deleted one ends the chain)."""
    found, seen, current = [], {reply.id}, reply.replaces_id
    while current and current not in seen and len(found) < MAX_VERSIONS:
        version = db.session.scalar(sa.select(Message).where(
            Message.id == current, Message.room_id == reply.room_id))
        if version is None:
            break
        found.append(MessageView.from_message(version))
        seen.add(current)
        current = version.replaces_id
    return found
