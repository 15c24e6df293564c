"""A room's whole history written out as Markdown or JSON, a batch of messages at a time.

Both writers are generators over keyset batches (`id > last ORDER BY id LIMIT BATCH_SIZE`,
never OFFSET), reading plain rows rather than ORM objects, so memory stays flat however long
the room is. They run inside one read transaction, so the export is a consistent snapshot.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator
from datetime import datetime

import sqlalchemy as sa

from discux.extensions import db
from discux.ids import utcnow
from discux.models import Agent, Message, MessageMention, Room
from discux.usage import usage_shape

BATCH_SIZE = 500
SENDER_FALLBACK = {"user": "Someone", "agent": "Agent", "system": "Discux"}
_MESSAGE_COLUMNS = (
    Message.id, Message.type, Message.sender_name, Message.sender_emoji, Message.content,
    Message.timestamp, Message.processing_time, Message.agent_confidence, Message.status,
    Message.prompt_tokens, Message.completion_tokens, Message.usage_estimated, Message.cost_usd,
)


def iso(moment: datetime | None) -> str | None:
    """ISO-8601 UTC with milliseconds and a Z, e.g. 2025-03-01T09:30:00.250Z."""
    return moment.isoformat(timespec="milliseconds") + "Z" if moment else None


def message_batches(room_id: str, batch_size: int = BATCH_SIZE) -> Iterator[list[dict]]:
    """The room's messages oldest first, as dicts, `batch_size` at a time."""
    last_id = ""
    while True:
        rows = db.session.execute(
            sa.select(*_MESSAGE_COLUMNS)
            .where(Message.room_id == room_id, Message.id > last_id)
            .order_by(Message.id).limit(batch_size)
        ).all()
        if not rows:
            return
        mentions = _mentions_of([row.id for row in rows])
        yield [
            {
                "id": row.id,
                "type": row.type,
                "sender_name": row.sender_name or SENDER_FALLBACK.get(row.type, "Someone"),
                "sender_emoji": row.sender_emoji,
                "content": row.content,
                "timestamp": iso(row.timestamp),
                "mentions": mentions.get(row.id, []),
                "processing_time": row.processing_time,
                "agent_confidence": row.agent_confidence,
                "status": row.status,
                "usage": usage_shape(row) if row.type == "agent" else None,
            }
            for row in rows
        ]
        if len(rows) < batch_size:
            return
        last_id = rows[-1].id


def _mentions_of(message_ids: list[str]) -> dict[str, list[str]]:
    """Names of the agents each message mentions (agents deleted since are gone from it)."""
    names: dict[str, list[str]] = {}
    rows = db.session.execute(
        sa.select(MessageMention.message_id, Agent.name)
        .join(Agent, Agent.id == MessageMention.mentioned_agent_id)
        .where(MessageMention.message_id.in_(message_ids))
        .order_by(MessageMention.message_id, Agent.name)
    )
    for message_id, name in rows:
        names.setdefault(message_id, []).append(name)
    return names


def room_summary(room: Room) -> dict:
    return {
        "id": room.id,
        "name": room.name,
        "description": room.description,
        "archived": not room.is_active,
        "created_at": iso(room.created_at),
        "exported_at": iso(utcnow()),
    }


def export_json(room: Room) -> Iterator[str]:
    """`{"room": {...}, "messages": [...]}`, one message per line, valid JSON once complete."""
    yield '{"room": ' + json.dumps(room_summary(room), ensure_ascii=False) + ',\n"messages": ['
    separator = "\n"
    for batch in message_batches(room.id):
        chunk = []
        for message in batch:
            message.pop("sender_emoji")
            chunk.append(separator + json.dumps(message, ensure_ascii=False))
            separator = ",\n"
        yield "".join(chunk)
    yield "\n]}\n"


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")


def markdown_text(text: str) -> str:
    """A name as literal Markdown text: its special characters backslash-escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def export_markdown(room: Room) -> Iterator[str]:
    """A heading for the room, then each message: sender, time, agent metrics, content."""
    summary = room_summary(room)
    head = [f"# {markdown_text(room.name)}\n"]
    if room.description:
        head.append(f"\n{markdown_text(room.description)}\n")
    head.append(f"\n*Exported from Discux on {_readable(summary['exported_at'])}.*\n")
    yield "".join(head)
    for batch in message_batches(room.id):
        yield "".join(_markdown_message(message) for message in batch)


def _markdown_message(message: dict) -> str:
    sender = markdown_text(message["sender_name"])
    if message["sender_emoji"]:
        sender = f"{message['sender_emoji']} {sender}"
    details = []
    if message["type"] == "agent":
        details.append("agent")
        if message["agent_confidence"] is not None:
            details.append(f"confidence {round(message['agent_confidence'] * 100)}%")
        if message["processing_time"] is not None:
            details.append(f"{message['processing_time']:.1f} s")
        counted = message["usage"]
        if counted is not None:
            details.append(f"{'≈ ' if counted['estimated'] else ''}"
                           f"{counted['prompt_tokens'] + counted['completion_tokens']:,} tokens"
                           + (f" (${counted['cost_usd']:.4f})"
                              if counted["cost_usd"] is not None else ""))
    elif message["type"] == "system":
        details.append("system message")
    if message["status"] != "complete":
        details.append(message["status"])
    if message["mentions"]:
        details.append("mentions " + ", ".join("@" + markdown_text(n) for n in message["mentions"]))
    lines = [f"\n---\n\n### {sender} · {_readable(message['timestamp'])}\n"]
    if details:
        lines.append(f"\n*{' · '.join(details)}*\n")
    lines.append(f"\n{message['content'].rstrip()}\n")
    return "".join(lines)


def _readable(timestamp: str | None) -> str:
    if not timestamp:
        return "unknown time"
    return timestamp[:19].replace("T", " ") + " UTC"


def download_name(room: Room, extension: str) -> str:
    """An ASCII file name from the room's name: `discux-launch-plan-2025-03-01.md`."""
    ascii_name = unicodedata.normalize("NFKD", room.name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:60].strip("-") or "room"
    return f"discux-{slug}-{utcnow():%Y-%m-%d}.{extension}"
