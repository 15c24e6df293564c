"""Posting and deleting messages: the rules, the write, and the event that tells every socket.

The discussion engine reuses `render_markdown`, `post_system_message` and the `publish_message_*`
helpers so agent replies are stored and pushed exactly like people's messages.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Protocol

import sqlalchemy as sa
from flask import current_app

from discux import plans
from discux.errors import DiscuxError, Forbidden
from discux.extensions import db
from discux.ids import new_id, utcnow
from discux.messages.mentions import resolve_mentions
from discux.messages.rendering import MessageView, render_markdown
from discux.messages.signals import message_posted
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
    "MAX_LENGTH", "AlongPost", "InvalidMessage", "MessageNotFound", "clear_history",
    "delete_message", "edit_message", "may_edit", "message_payload", "post_system_message",
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


def reply_target(room: Room, reply_to: str | None) -> Message | None:
    """The message of `room` a new one answers (None for none), or InvalidMessage when the id
    names nothing there (it was deleted meanwhile, or belongs elsewhere)."""
    if not reply_to:
        return None
    target = db.session.scalar(sa.select(Message).where(
        Message.id == str(reply_to)[:36], Message.room_id == room.id,
        Message.replaced_by_id.is_(None)))
    if target is None:
        raise InvalidMessage("The message you were replying to is gone (deleted or cleared); "
                             "your text is kept: send it without the reply, or pick another.",
                             "reply_to")
    return target


class AlongPost(Protocol):
    """What a post sets off (its agents' turns): written in its transaction, started once it
    commits, abandoned if it does not."""

    def write(self, message: Message) -> None: ...

    def start(self) -> None: ...

    def abandon(self) -> None: ...


def post_user_message(user: User, room: Room, content: str | None,
                      humans_only: bool = False,
                      participant: RoomParticipant | None = None,
                      reply_to: str | None = None,
                      along: Callable[[str, list[str]], AlongPost] | None = None) -> Message:
    """Validate, count it against the plan's monthly quota, resolve mentions, store, and push.

    `participant` is the user's row in the room when the caller already has it; `reply_to`
    the id of the message it answers (quoted above it). `along(room id, mentioned agent ids)`
    is called before the post's first write (it may take locks of its own); what it returns
    writes what the message sets off (its agents' turns) in the same transaction, so one
    commit stores both, and is started after the commit."""
    if participant is None or participant.user_id != user.id or participant.room_id != room.id:
        participant = membership(user, room.id)
    if not can(participant, "post", room):
        raise Forbidden(
            "This room is archived: it is read-only." if participant and not room.is_active
            else "You can't post in this room."
        )
    text = validate_content(content)
    replied = reply_target(room, reply_to)
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
        reply_to_id=replied.id if replied is not None else None,
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
    message_posted.send(current_app._get_current_object(), message=message, room=room,
                        poster=user)
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
    # A deleted regenerated reply gives the chat column back the version it had replaced.
    restored = db.session.scalar(sa.select(Message).where(
        Message.replaced_by_id == message_id, Message.room_id == room.id))
    if restored is not None:
        restored.replaced_by_id = None
    db.session.delete(message)
    record_deletion(room.id, message_id)
    db.session.commit()
    publish(room.id, "message.deleted", {"id": message_id})
    if restored is not None:
        publish(room.id, "message.updated", message_payload(restored))


def may_edit(message: Message | MessageView, participant: RoomParticipant | None,
             room: Room) -> bool:
    """Only its author edits a message, while they may post in the room (not once it is
    archived); nobody edits agents' or Discux's messages."""
    return (participant is not None and message.type == "user"
            and message.sender_id == participant.user_id and can(participant, "post", room))


def require_may_edit(message, participant: RoomParticipant | None, room: Room) -> None:
    """Raise unless `message` (None if missing) exists and the participant may edit it."""
    if message is None:
        raise MessageNotFound("That message does not exist (it may have been deleted).")
    if not may_edit(message, participant, room):
        raise Forbidden("You can only edit your own messages." if room.is_active
                        else "This room is archived: it is read-only.")


def edit_message(user: User, room: Room, message_id: str, content: str | None) -> Message:
    """Replace the text of the user's own message, validated like a post, and show the new
    text on every screen (marked "edited"). Agents read it from the next turn on; an edit
    addresses nobody new: its mentions stay those of the post, and no agent is asked."""
    message = db.session.scalar(
        sa.select(Message).where(Message.id == message_id, Message.room_id == room.id))
    require_may_edit(message, membership(user, room.id), room)
    text = validate_content(content)
    if text != message.content:
        message.content = text
        message.content_html = render_markdown(text)
        message.edited_at = utcnow()  # changed_at moves with it: `?after=` replays the edit
        db.session.commit()
        publish(room.id, "message.updated", message_payload(message))
    return message


def clear_history(user: User, room: Room) -> Message:
    """Delete every message of the room (staff only), tell every screen, and leave one system
    message saying who did it. A reply still being written is spared: the caller stops the
    agents first, and that reply ends "stopped" in place (its turn still holds the row)."""
    participant = membership(user, room.id)
    if not can(participant, "clear_history", room):
        raise Forbidden("Only the owner and admins may clear this room's history."
                        if room.is_active else "This room is archived: it is read-only.")
    now = utcnow()
    doomed = (sa.select(Message.id, Message.room_id, sa.literal(now))
              .where(Message.room_id == room.id, Message.status != "streaming"))
    # Sockets reconnecting with an older `?after=` are told each message went.
    db.session.execute(sa.delete(MessageDeletion).where(
        MessageDeletion.room_id == room.id,
        MessageDeletion.message_id.in_(doomed.with_only_columns(Message.id))))
    db.session.execute(sa.insert(MessageDeletion).from_select(
        ["message_id", "room_id", "deleted_at"], doomed))
    db.session.execute(sa.delete(Message).where(
        Message.room_id == room.id, Message.status != "streaming"
    ).execution_options(synchronize_session=False))
    db.session.commit()
    publish(room.id, "history.cleared", {"by": user.display_name})
    return post_system_message(room, f"🧹 **{user.display_name}** cleared the history of "
                                     "this room.")


def record_deletion(room_id: str, message_id: str) -> None:
    """Note, in the caller's transaction, that a message of the room is deleted, so sockets
    that reconnect are told; the room's notes older than DELETIONS_KEPT go at the same time."""
    now = utcnow()
    db.session.execute(sa.delete(MessageDeletion).where(
        MessageDeletion.room_id == room_id, MessageDeletion.deleted_at < now - DELETIONS_KEPT))
    db.session.add(MessageDeletion(message_id=message_id, room_id=room_id, deleted_at=now))
