"""The living room brief: a pinned, human-editable summary kept as numbered versions."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from discux.extensions import db
from discux.ids import new_id, utcnow
from discux.models.types import Text, TimestampMs

BRIEF_SOURCES = ("human", "summary")


class RoomBrief(db.Model):
    __tablename__ = "room_briefs"
    __table_args__ = (
        sa.UniqueConstraint("room_id", "version", name="unique_room_brief_version"),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    room_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("rooms.id", ondelete="CASCADE")
    )
    version: Mapped[int] = mapped_column(sa.Integer)
    content: Mapped[str] = mapped_column(Text)
    content_html: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(sa.String(16), default="human", server_default="human")
    created_by: Mapped[str | None] = mapped_column(
        sa.String(255), sa.ForeignKey("User.id", ondelete="SET NULL")
    )
    # The newest message the brief accounts for (summaries), for "N new messages since".
    upto_message_id: Mapped[str | None] = mapped_column(sa.String(36))
    created_at: Mapped[datetime | None] = mapped_column(
        TimestampMs, default=utcnow, server_default=sa.func.current_timestamp()
    )

    author = db.relationship("User")
