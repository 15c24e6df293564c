"""AI agents: a persona, a style and a look, owned by the user who made them."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from discux.extensions import db
from discux.ids import new_id, utcnow
from discux.models.types import Text, Timestamp

STYLES = ("professional", "direct", "friendly", "creative", "analytical")


class Agent(db.Model):
    __tablename__ = "agents"
    __table_args__ = (
        sa.Index("idx_agents_created_by", "created_by"),
        sa.Index("idx_style", "style"),
        sa.Index("idx_usage_count", "usage_count"),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(100))
    prompt: Mapped[str] = mapped_column(Text)
    # One grapheme cluster, which may be many code points (👩‍💻 is 3, 11 bytes).
    emoji: Mapped[str] = mapped_column(sa.String(16), default="🤖", server_default="🤖")
    color: Mapped[str | None] = mapped_column(
        sa.String(7), default="#3B82F6", server_default="#3B82F6"
    )
    style: Mapped[str | None] = mapped_column(
        sa.Enum(*STYLES, name="agent_style"), default="professional", server_default="professional"
    )
    created_by: Mapped[str] = mapped_column(
        sa.String(255), sa.ForeignKey("User.id", ondelete="CASCADE")
    )
    is_public: Mapped[bool | None] = mapped_column(
        sa.Boolean, default=False, server_default=sa.false()
    )
    usage_count: Mapped[int | None] = mapped_column(sa.Integer, default=0, server_default="0")
    model: Mapped[str | None] = mapped_column(sa.String(200))
    created_at: Mapped[datetime | None] = mapped_column(
        Timestamp, default=utcnow, server_default=sa.func.current_timestamp()
    )
    updated_at: Mapped[datetime | None] = mapped_column(
        Timestamp, default=utcnow, onupdate=utcnow, server_default=sa.func.current_timestamp()
    )

    creator = db.relationship("User")

    def __repr__(self) -> str:
        return f"<Agent {self.name}>"
