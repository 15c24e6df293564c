"""What model calls used, what a model's tokens cost, and the instance's daily cap."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from discux.extensions import db
from discux.ids import utcnow
from discux.models.types import TimestampMs

USAGE_KINDS = ("reply", "summary", "try", "generator", "test")
# reserved: counted at prompt estimate + max_tokens while the call runs; settled: its real usage.
USAGE_STATES = ("reserved", "settled")
Money = sa.Numeric(14, 6, asdecimal=False)


class UsageEntry(db.Model):
    """One model call: who it was for, where, what model, how many tokens and what it cost."""

    __tablename__ = "usage_ledger"
    __table_args__ = (
        sa.Index("idx_usage_room_created", "room_id", "created_at"),
        sa.Index("idx_usage_user_created", "user_id", "created_at"),
        sa.Index("idx_usage_agent_created", "agent_id", "created_at"),
        sa.Index("idx_usage_created", "created_at"),
        sa.Index("idx_usage_message", "message_id"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(TimestampMs, default=utcnow)
    kind: Mapped[str] = mapped_column(sa.String(16))
    state: Mapped[str] = mapped_column(sa.String(16), default="settled",
                                       server_default="settled")
    # Plain ids, no foreign keys: what was spent stays counted after a delete.
    user_id: Mapped[str | None] = mapped_column(sa.String(255))
    room_id: Mapped[str | None] = mapped_column(sa.String(36))
    agent_id: Mapped[str | None] = mapped_column(sa.String(36))
    message_id: Mapped[str | None] = mapped_column(sa.String(36))
    model: Mapped[str | None] = mapped_column(sa.String(255))
    prompt_tokens: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    completion_tokens: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    # What budgets count: the reservation while `reserved`, prompt + completion once settled.
    tokens: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    estimated: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    cost_usd: Mapped[float | None] = mapped_column(Money)


class ModelPrice(db.Model):
    """USD per million input and output tokens of one model, as the instance admin set it."""

    __tablename__ = "model_prices"

    model: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    input_usd_per_million: Mapped[Decimal] = mapped_column(sa.Numeric(12, 4))
    output_usd_per_million: Mapped[Decimal] = mapped_column(sa.Numeric(12, 4))
    updated_at: Mapped[datetime | None] = mapped_column(TimestampMs, default=utcnow,
                                                        onupdate=utcnow)


class InstanceSettings(db.Model):
    """The instance's one row of settings admins change in /admin (id is always 1)."""

    __tablename__ = "instance_settings"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    daily_token_cap: Mapped[int | None] = mapped_column(sa.BigInteger)
