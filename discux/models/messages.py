"""Messages of a room and the agents they mention."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from discux.extensions import db
from discux.ids import new_id, utcnow
from discux.models.types import Text, TimestampMs

MESSAGE_TYPES = ("user", "agent", "system")
MESSAGE_STATUSES = ("complete", "streaming", "failed", "stopped")


class Message(db.Model):
    __tablename__ = "messages"
    __table_args__ = (
        sa.Index("idx_room_timestamp", "room_id", "timestamp"),
        # Keyset paging walks (room_id, id): UUIDv7 ids sort in creation order.
        sa.Index("idx_room_id_id", "room_id", "id"),
        sa.Index("idx_sender_id", "sender_id"),
        sa.Index("idx_type", "type"),
        # Deleting a message looks up replies to it (ON DELETE SET NULL).
        sa.Index("idx_reply_to_id", "reply_to_id"),
        # The admin page's figures count the last 30 days of every room.
        sa.Index("idx_messages_timestamp", "timestamp"),
        # A reconnecting socket asks for the room's messages changed since its `after` id.
        sa.Index("idx_room_changed_at", "room_id", "changed_at"),
        # A regenerated reply's versions are found from either end (migration 0012).
        sa.Index("idx_messages_replaces_id", "replaces_id"),
        sa.Index("idx_messages_replaced_by_id", "replaced_by_id"),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    room_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("rooms.id", ondelete="CASCADE")
    )
    content: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(sa.Enum(*MESSAGE_TYPES, name="message_type"))
    sender_id: Mapped[str] = mapped_column(sa.String(255))
    processing_time: Mapped[float | None] = mapped_column(sa.Numeric(10, 3, asdecimal=False))
    agent_confidence: Mapped[float | None] = mapped_column(sa.Numeric(3, 2, asdecimal=False))
    context_length: Mapped[int | None] = mapped_column(sa.Integer)
    timestamp: Mapped[datetime | None] = mapped_column(
        TimestampMs, default=utcnow, server_default=sa.func.current_timestamp()
    )
    # Extensions beyond the seed (SPEC §3).
    status: Mapped[str] = mapped_column(
        sa.String(16), default="complete", server_default="complete"
    )
    reply_to_id: Mapped[str | None] = mapped_column(
        sa.String(36), sa.ForeignKey("messages.id", ondelete="SET NULL")
    )
    # Sanitized HTML rendered once at write time, never per view.
    content_html: Mapped[str | None] = mapped_column(Text)
    # The sender as it looked when it spoke, so deleted agents and renamed users still read right.
    sender_name: Mapped[str | None] = mapped_column(sa.String(255))
    sender_emoji: Mapped[str | None] = mapped_column(sa.String(16))
    sender_color: Mapped[str | None] = mapped_column(sa.String(7))
    humans_only: Mapped[bool] = mapped_column(
        sa.Boolean, default=False, server_default=sa.false()
    )
    # JSON: what an agent was sent for this reply (message ids, brief version, token estimate).
    context_receipt: Mapped[str | None] = mapped_column(Text)
    # Set on insert and on every update (ORM or Core), so a reconnecting socket can be sent
    # what changed after the message it saw last (discux.realtime.sockets.replay).
    changed_at: Mapped[datetime | None] = mapped_column(TimestampMs, default=utcnow,
                                                        onupdate=utcnow)
    # When its author last edited the text (NULL: never edited).
    edited_at: Mapped[datetime | None] = mapped_column(TimestampMs)
    # A regenerated agent reply and the version it replaces; the replaced one names its
    # successor and leaves the chat column and the agents' context (discux.messages.versions).
    replaces_id: Mapped[str | None] = mapped_column(sa.String(36))
    replaced_by_id: Mapped[str | None] = mapped_column(sa.String(36))

    mentions = db.relationship(
        "MessageMention", cascade="all, delete-orphan", passive_deletes=True, lazy="selectin"
    )


class MessageMention(db.Model):
    __tablename__ = "message_mentions"
    __table_args__ = (
        sa.Index("idx_message_id", "message_id"),
        sa.Index("idx_message_mentions_agent_id", "mentioned_agent_id"),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    message_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("messages.id", ondelete="CASCADE")
    )
    mentioned_agent_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("agents.id", ondelete="CASCADE")
    )


class MessageDeletion(db.Model):
    """A deleted message's id, kept a while so reconnecting sockets are told it went."""

    __tablename__ = "message_deletions"
    __table_args__ = (sa.Index("idx_room_deleted_at", "room_id", "deleted_at"),)

    message_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    room_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("rooms.id", ondelete="CASCADE")
    )
    deleted_at: Mapped[datetime | None] = mapped_column(TimestampMs, default=utcnow)
