"""Invitation links into a room."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from discux.extensions import db
from discux.ids import new_id, utcnow
from discux.models.types import Timestamp


class RoomInvitation(db.Model):
    __tablename__ = "room_invitations"
    __table_args__ = (
        sa.Index("idx_room_invitations_room_id", "room_id"),
        sa.Index("idx_invite_token", "invite_token"),
        sa.Index("idx_expires_at", "expires_at"),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    room_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("rooms.id", ondelete="CASCADE")
    )
    invited_by: Mapped[str] = mapped_column(
        sa.String(255), sa.ForeignKey("User.id", ondelete="CASCADE")
    )
    invite_token: Mapped[str] = mapped_column(sa.String(255), unique=True)
    email: Mapped[str | None] = mapped_column(sa.String(255))
    expires_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    used_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    created_at: Mapped[datetime | None] = mapped_column(
        Timestamp, default=utcnow, server_default=sa.func.current_timestamp()
    )
    # Extension: a revoked link shows "revoked" rather than "unknown".
    revoked_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    used_by: Mapped[str | None] = mapped_column(
        sa.String(255), sa.ForeignKey("User.id", ondelete="SET NULL")
    )

    room = db.relationship("Room")
    inviter = db.relationship("User", foreign_keys=[invited_by])
