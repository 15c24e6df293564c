"""Posting and deleting messages: the rules, the write, and the event that tells every socket.

The discussion engine reuses `render_markdown`, `post_system_message` and the `publish_message_*`
helpers so agent replies are stored and pushed exactly like people's messages.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Protocol

import sqlalchemy as sa

from discux import plans
from discux.errors import DiscuxError, Forbidden
from discux.extensions import db
from discux.ids import new_id, utcnow
from discux.messages.mentions import resolve_mentions
from discux.messages.rendering import MessageView, render_markdown
from discux.models import (
    Agent,
    Message,
    MessageDeletion,
    MessageMention,
    Room,
    RoomAgent,
    RoomParticipant,
    User,
)
from discux.realtime import publish
from discux.rooms.permissions import can, membership

__all__ = [
    "MAX_LENGTH", "AlongPost", "InvalidMessage", "MessageNotFound", "delete_message", "message_payload", "post_system_message",
    "post_user_message", "publish_message_completed", "publish_message_created",
    "publish_message_delta", "record_deletion", "render_markdown", "room_agents",
    "validate_content",
]

MAX_LENGTH = 4000
SYSTEM_SENDER = "system"
# How long a deleted message's id is kept for sockets reconnecting with an older `?after=`.
DELETIONS_KEPT = timedelta(days=7)


class MessageNotFound(DiscuxError):
    status = 404
    code = "not_found"


class InvalidMessage(DiscuxError):
    """The text cannot be posted as it is; the composer shows why and keeps the text."""

    status = 422
    code = "invalid_message"


def validate_content(content: str | None) -> str:
    """The text to store (trimmed), or InvalidMessage saying what to change."""
    text = (content or "").strip()
    if not text:
        raise InvalidMessage("Write something before sending.", "content")
    if len(text) > MAX_LENGTH:
        raise InvalidMessage(
            f"Messages can be at most {MAX_LENGTH:,} characters; this one has {len(text):,}. "
            f"Shorten it by {len(text) - MAX_LENGTH:,} or split it in two.",
            "content",
        )
    if "\x00" in text:
        raise InvalidMessage("The message contains a NUL character, which cannot be stored.",
                             "content")
    return text


def room_agents(room_id: str) -> list[Agent]:
    """The room's agents in the order they joined (the order `@all` addresses them)."""
    return list(
        db.session.scalars(
            sa.select(Agent)
            .join(RoomAgent, RoomAgent.agent_id == Agent.id)
            .where(RoomAgent.room_id == room_id)
            .order_by(RoomAgent.added_at, RoomAgent.id)
        )
    )


def message_payload(message: Message) -> dict:
    """The JSON `data` of message.created / message.completed events."""
    return MessageView.from_message(message).to_payload()


def publish_message_created(message: Message) -> None:
    """Push a committed message to every socket of its room (it appears at the bottom)."""
    publish(message.room_id, "message.created", message_payload(message))


def publish_message_completed(message: Message) -> None:
    """Push the final state of a (streamed) message: sockets replace it in place."""
    publish(message.room_id, "message.completed", message_payload(message))


def publish_message_delta(room_id: str, message_id: str, delta: str, offset: int) -> None:
    """Push a piece of a streaming reply, `offset` characters into its text; HTML sockets
    append it to the message's text."""
    publish(room_id, "message.delta", {"id": message_id, "delta": delta, "offset": offset})


def commit_keeping_loaded() -> None:
    """Commit without expiring what the session holds.

    The message, its room, the poster and their membership were all written or read in this
    transaction, so their loaded values are still true. Expiring them (the session default)
    would make the next reader (the payload, the route, the discussion engine) SELECT each row
    again: on MariaDB that is a round trip apiece for every message posted."""
    session = db.session()
    expiring = session.expire_on_commit
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = expiring


# Built once: the post writes its rows with these (see _insert_posted).
_INSERT_MESSAGE = sa.insert(Message.__table__)
_INSERT_MENTIONS = sa.insert(MessageMention.__table__)


def _row_of(instance) -> dict:
    """The column values set on a new `instance`, keyed by column (unset ones get their
    defaults from the table, as the ORM would leave them)."""
    state = sa.inspect(instance)
    return {prop.columns[0].key: state.dict[prop.key]
            for prop in state.mapper.column_attrs if prop.key in state.dict}


def _insert_posted(message: Message) -> None:
    """INSERT a new message and its mentions, as the ORM would, without its unit of work.

    Nothing else is pending in a post, so the flush machinery (a fifth of a post's CPU) only
    rediscovers these rows. `message` stays out of the session: callers read the values it was
    built with (all of them set, the timestamp included), never anything loaded."""
    db.session.execute(_INSERT_MESSAGE, _row_of(message))
    if message.mentions:
        db.session.execute(_INSERT_MENTIONS, [_row_of(m) for m in message.mentions])


class AlongPost(Protocol):
    """What a post sets off (its agents' turns): written in its transaction, started once it
    commits, abandoned if it does not."""

    def write(self, message: Message) -> None: ...

    def start(self) -> None: ...

    def abandon(self) -> None: ...


def post_user_message(user: User, room: Room, content: str | None,
                      humans_only: bool = False,
                      participant: RoomParticipant | None = None,
                      along: Callable[[str, list[str]], AlongPost] | None = None) -> Message:
    """Validate, count it against the plan's monthly quota, resolve mentions, store, and push.

    `participant` is the user's row in the room when the caller already has it. `along(room id,
    mentioned agent ids)` is called before the post's first write (it may take locks of its
    own); what it returns writes what the message sets off (its agents' turns) in the same
    transaction, so one commit stores both, and is started after the commit."""
    if participant is None or participant.user_id != user.id or participant.room_id != room.id:
        participant = membership(user, room.id)
    if not can(participant, "post", room):
        raise Forbidden(
            "This room is archived: it is read-only." if participant and not room.is_active
            else "You can't post in this room."
        )
    text = validate_content(content)
    # Rendered, and its mentions found, before the post's first write: on SQLite that write takes
    # the database's one write lock until the commit, and every other post waits for it. The id
    # and timestamp come after it, so one person's posts are numbered in the order they commit.
    html = render_markdown(text)
    # A humans-only message addresses no agent, so it records no mentions for the engine to act on.
    mentioned = ([] if humans_only or "@" not in text
                 else resolve_mentions(text, room_agents(room.id)))
    staged = along(room.id, [agent.id for agent in mentioned]) if along is not None else None
    try:
        plans.take_message_quota(user)  # the post's first write: it holds the user's counter
    except Exception:
        db.session.rollback()
        if staged is not None:
            staged.abandon()
        raise
    message = Message(
        id=new_id(),
        room_id=room.id,
        content=text,
        content_html=html,
        type="user",
        sender_id=user.id,
        sender_name=user.display_name,
        status="complete",
        humans_only=bool(humans_only),
        timestamp=utcnow(),  # the column's default, set here so the event carries it
    )
    # Ids are generated in mention order, so ORDER BY id gives the order they were written.
    message.mentions = [
        MessageMention(id=new_id(), message_id=message.id, mentioned_agent_id=agent.id)
        for agent in mentioned
    ]
    try:
        _insert_posted(message)
        if staged is not None:
            staged.write(message)
        commit_keeping_loaded()
    except Exception:
        db.session.rollback()  # the message and its count go together, or neither
        if staged is not None:
            staged.abandon()
        raise
    publish(room.id, "message.created", message_payload(message))
    if staged is not None:
        staged.start()
    return message


def post_system_message(room: Room, text: str) -> Message:
    """A notice from Discux itself (a failure, a summary…), stored and pushed like any message."""
    message = Message(
        id=new_id(),
        room_id=room.id,
        content=text,
        content_html=render_markdown(text),
        type="system",
        sender_id=SYSTEM_SENDER,
        sender_name="Discux",
        status="complete",
    )
    db.session.add(message)
    db.session.commit()
    publish_message_created(message)
    return message


def may_delete(message: Message | MessageView, participant: RoomParticipant | None,
               room: Room) -> bool:
    """Own messages by their sender; any message by the room's staff."""
    own = (participant is not None and message.type == "user"
           and message.sender_id == participant.user_id)
    if own and can(participant, "delete_own_message", room):
        return True
    return can(participant, "delete_any_message", room)


def require_may_delete(message, participant: RoomParticipant | None, room: Room) -> None:
    """Raise unless `message` (a Message or a chat-column row; None if missing) exists and the
    participant may delete it."""
    if message is None:
        raise MessageNotFound("That message does not exist (it may already be deleted).")
    if not may_delete(message, participant, room):
        raise Forbidden("You can delete your own messages; only the room's owner and admins "
                        "can delete other people's.")


def delete_message(user: User, room: Room, message_id: str) -> None:
    """Delete a message of `room` if `user` may, and remove it from every screen."""
    message = db.session.scalar(
        sa.select(Message).where(Message.id == message_id, Message.room_id == room.id)
    )
    require_may_delete(message, membership(user, room.id), room)
    db.session.delete(message)
    record_deletion(room.id, message_id)
    db.session.commit()
    publish(room.id, "message.deleted", {"id": message_id})


def record_deletion(room_id: str, message_id: str) -> None:
    """Note, in the caller's transaction, that a message of the room is deleted, so sockets
    that reconnect are told; the room's notes older than DELETIONS_KEPT go at the same time."""
    now = utcnow()
    db.session.execute(sa.delete(MessageDeletion).where(
        MessageDeletion.room_id == room_id, MessageDeletion.deleted_at < now - DELETIONS_KEPT))
    db.session.add(MessageDeletion(message_id=message_id, room_id=room_id, deleted_at=now))
