"""Unread counts, read markers and mention emails.

A member's read marker is the id of the newest message they have seen in a room (UUIDv7 ids
sort by time), so "unread" is the room's messages from others with a greater id: a range of the
(room_id, id) index. Posting never touches markers; the room page and the open tab move them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

import sqlalchemy as sa
from flask import Flask, current_app

from discux.auth import mail
from discux.extensions import db
from discux.ids import utcnow
from discux.messages.signals import message_posted
from discux.models import Message, Room, RoomParticipant, User
from discux.realtime import presence_states

MENTION_MAIL_EVERY = timedelta(minutes=15)  # at most one mention email per room per person
SNIPPET_LENGTH = 120
MAIL_SNIPPET_LENGTH = 500


def message_in_room(room_id: str, message_id: str) -> bool:
    return db.session.scalar(
        sa.select(Message.id).where(Message.room_id == room_id, Message.id == message_id)
    ) is not None


@dataclass(frozen=True)
class RoomOverview:
    """One of my rooms as the dashboard lists it."""

    room: Room
    role: str
    unread: int
    last_message: sa.Row | None  # sender_name, sender_id, type, content, timestamp
    last_activity: datetime | None


def unread_counts(user_id: str, room_ids: list[str]) -> dict[str, int]:
    """{room id: messages from others newer than the user's read marker} for those rooms."""
    if not room_ids:
        return {}
    rows = db.session.execute(
        sa.select(Message.room_id, sa.func.count())
        .join(RoomParticipant, sa.and_(RoomParticipant.room_id == Message.room_id,
                                       RoomParticipant.user_id == user_id))
        .where(Message.room_id.in_(room_ids), Message.sender_id != user_id,
               sa.or_(RoomParticipant.last_read_message_id.is_(None),
                      Message.id > RoomParticipant.last_read_message_id))
        .group_by(Message.room_id)
    )
    return dict(rows.all())


def rooms_overview(user: User, limit: int = 20) -> list[RoomOverview]:
    """The user's active rooms, most recent activity first, each with its unread count and
    newest message: three queries whatever the number of rooms."""
    newest = (sa.select(sa.func.max(Message.id)).where(Message.room_id == Room.id)
              .correlate(Room).scalar_subquery())
    rows = db.session.execute(
        sa.select(Room, RoomParticipant.role, newest.label("newest_id"))
        .join(RoomParticipant, RoomParticipant.room_id == Room.id)
        .where(RoomParticipant.user_id == user.id, Room.is_active.is_(True))
    ).all()
    newest_ids = [newest_id for _, _, newest_id in rows if newest_id]
    last = {row.room_id: row for row in db.session.execute(
        sa.select(Message.room_id, Message.sender_name, Message.sender_id, Message.type,
                  Message.content, Message.timestamp).where(Message.id.in_(newest_ids))
    )} if newest_ids else {}
    unread = unread_counts(user.id, [room.id for room, _, _ in rows])
    overview = [
        RoomOverview(room, role, unread.get(room.id, 0), last.get(room.id),
                     last[room.id].timestamp if room.id in last
                     else room.updated_at or room.created_at)
        for room, role, _ in rows
    ]
    overview.sort(key=lambda o: (o.last_activity or datetime.min, o.room.id), reverse=True)
    return overview[:limit]


def snippet(text: str, length: int = SNIPPET_LENGTH) -> str:
    """One line of a message's text, cut at a word near `length`."""
    line = " ".join((text or "").split())
    if len(line) <= length:
        return line
    return line[:length].rsplit(" ", 1)[0] + "…"


# ---- mention emails ----

def set_email_mentions(user: User, enabled: bool) -> None:
    """Opt the user in to (or out of) mention emails."""
    user.email_mentions = bool(enabled)
    db.session.commit()


def mention_mail_available(app: Flask) -> bool:
    """Mention emails need a mail server and the site's address for the link in them."""
    return bool(app.config.get("DISCUX_SMTP_URL") and app.config.get("DISCUX_BASE_URL"))


def mentions_person(text: str, name: str) -> bool:
    """Whether `text` says @name (any case; "@Ann" is not "@Anna")."""
    pattern = "@" + re.escape(name.casefold()) + r"(?![\w])"
    return re.search(pattern, text.casefold()) is not None


def _on_message_posted(app: Flask, message: Message, room: Room, poster: User) -> None:
    # Nothing to do for most posts: no "@", or no mail server.
    if "@" not in message.content or not mention_mail_available(app):
        return
    room_id, message_id = room.id, message.id
    mail.outbox(app).run(lambda: send_mention_mails(room_id, message_id), "mention emails")


def send_mention_mails(room_id: str, message_id: str) -> int:
    """Email the people @mentioned in a message who opted in and have the room open nowhere,
    at most once per room per MENTION_MAIL_EVERY each; how many were sent."""
    message = db.session.get(Message, message_id)
    room = db.session.get(Room, room_id)
    if message is None or room is None:
        return 0
    people = db.session.execute(
        sa.select(RoomParticipant.id, User)
        .join(User, User.id == RoomParticipant.user_id)
        .where(RoomParticipant.room_id == room_id, User.id != message.sender_id,
               User.email_mentions.is_(True), User.disabled_at.is_(None))
    ).all()
    mentioned = [(pid, user) for pid, user in people
                 if mentions_person(message.content, user.display_name)]
    if not mentioned:
        return 0
    present = presence_states(room_id)  # anyone with a socket open there, on any worker
    now = utcnow()
    sent = 0
    for participant_id, user in mentioned:
        if user.id in present:
            continue
        # One conditional UPDATE: of two posts at once, only one takes the slot.
        taken = db.session.execute(
            sa.update(RoomParticipant)
            .where(RoomParticipant.id == participant_id,
                   sa.or_(RoomParticipant.mention_mailed_at.is_(None),
                          RoomParticipant.mention_mailed_at <= now - MENTION_MAIL_EVERY))
            .values(mention_mailed_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        db.session.commit()
        if taken:
            mail.deliver(_mention_message(user, message, room))
            sent += 1
    return sent


def _mention_message(user: User, message: Message, room: Room) -> EmailMessage:
    base = current_app.config["DISCUX_BASE_URL"].rstrip("/")
    who = message.sender_name or "Someone"
    email = EmailMessage()
    email["Subject"] = f"{who} mentioned you in {room.name}"
    email["From"] = current_app.config["DISCUX_MAIL_FROM"]
    email["To"] = user.email
    email.set_content(
        f"{who} mentioned you in the Discux room “{room.name}”:\n\n"
        f"{snippet(message.content, MAIL_SNIPPET_LENGTH)}\n\n"
        f"Open the room: {base}/rooms/{room.id}#message-{message.id}\n\n"
        "You get at most one such email per room every 15 minutes, and only while you do not "
        f"have the room open. Turn them off in Settings: {base}/settings#notifications\n"
    )
    return email


def init_app(app: Flask) -> None:
    """Follow this app's posts for mention emails."""
    message_posted.connect(_on_message_posted, sender=app, weak=False)
