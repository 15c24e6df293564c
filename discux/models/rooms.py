"""Rooms, their settings, their people and their agents."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from discux.extensions import db
from discux.ids import new_id, utcnow
from discux.models.types import Text, Timestamp

ROLES = ("owner", "admin", "member")


class Room(db.Model):
    __tablename__ = "rooms"
    __table_args__ = (
        sa.Index("idx_rooms_created_by", "created_by"),
        sa.Index("idx_active", "is_active"),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(
        sa.String(255), sa.ForeignKey("User.id", ondelete="CASCADE")
    )
    is_active: Mapped[bool | None] = mapped_column(
        sa.Boolean, default=True, server_default=sa.true()
    )
    created_at: Mapped[datetime | None] = mapped_column(
        Timestamp, default=utcnow, server_default=sa.func.current_timestamp()
    )
    updated_at: Mapped[datetime | None] = mapped_column(
        Timestamp, default=utcnow, onupdate=utcnow, server_default=sa.func.current_timestamp()
    )

    # One row per room, read on every post (archived? auto-summarize?): loaded in the same
    # query as the room (a LEFT JOIN on its primary key) rather than by a SELECT of its own.
    settings: Mapped[RoomSettings] = db.relationship(
        back_populates="room", uselist=False, cascade="all, delete-orphan", passive_deletes=True,
        lazy="joined",
    )

    def __repr__(self) -> str:
        return f"<Room {self.name}>"


class RoomSettings(db.Model):
    __tablename__ = "room_settings"

    room_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("rooms.id", ondelete="CASCADE"), primary_key=True
    )
    max_agents: Mapped[int | None] = mapped_column(sa.Integer, default=5, server_default="5")
    allow_agent_creation: Mapped[bool | None] = mapped_column(
        sa.Boolean, default=True, server_default=sa.true()
    )
    auto_summarize: Mapped[bool | None] = mapped_column(
        sa.Boolean, default=False, server_default=sa.false()
    )

    room: Mapped[Room] = db.relationship(back_populates="settings")


class RoomParticipant(db.Model):
    __tablename__ = "room_participants"
    __table_args__ = (
        sa.UniqueConstraint("room_id", "user_id", name="unique_room_user"),
        sa.Index("idx_room_participants_room_id", "room_id"),
        sa.Index("idx_user_id", "user_id"),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    room_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("rooms.id", ondelete="CASCADE")
    )
    user_id: Mapped[str] = mapped_column(
        sa.String(255), sa.ForeignKey("User.id", ondelete="CASCADE")
    )
    role: Mapped[str | None] = mapped_column(
        sa.Enum(*ROLES, name="participant_role"), default="member", server_default="member"
    )
    joined_at: Mapped[datetime | None] = mapped_column(
        Timestamp, default=utcnow, server_default=sa.func.current_timestamp()
    )
    # The newest message this member has seen (UUIDv7 ids sort by time): unread = newer ones.
    last_read_message_id: Mapped[str | None] = mapped_column(sa.String(36))
    # When this member was last emailed about a mention here (one mail per room per 15 min).
    mention_mailed_at: Mapped[datetime | None] = mapped_column(Timestamp)

    room = db.relationship("Room")
    user = db.relationship("User")


class RoomAgent(db.Model):
    __tablename__ = "room_agents"
    __table_args__ = (
        sa.UniqueConstraint("room_id", "agent_id", name="unique_room_agent"),
        sa.Index("idx_room_agents_room_id", "room_id"),
        sa.Index("idx_room_agents_agent_id", "agent_id"),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    room_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("rooms.id", ondelete="CASCADE")
    )
    agent_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("agents.id", ondelete="CASCADE")
    )
    added_by: Mapped[str] = mapped_column(
        sa.String(255), sa.ForeignKey("User.id", ondelete="CASCADE")
    )
    added_at: Mapped[datetime | None] = mapped_column(
        Timestamp, default=utcnow, server_default=sa.func.current_timestamp()
    )

    room = db.relationship("Room")
    agent = db.relationship("Agent")
