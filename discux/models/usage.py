"""What each user has used of their plan, counted as it happens (deleting gives nothing back)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from discux.extensions import db


class UsageCounter(db.Model):
    """Messages a user sent in one calendar month (UTC): raised in the transaction that stores
    each message, never lowered (discux.plans)."""

    __tablename__ = "usage_counters"

    user_id: Mapped[str] = mapped_column(
        sa.String(255), sa.ForeignKey("User.id", ondelete="CASCADE"), primary_key=True
    )
    month: Mapped[str] = mapped_column(sa.String(7), primary_key=True)  # "2026-12"
    messages_sent: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
