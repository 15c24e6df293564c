"""Agent turns waiting or running, stored so they outlive the worker that queued them."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from discux.extensions import db
from discux.ids import new_id, utcnow
from discux.models.types import TimestampMs

TURN_KINDS = ("reply", "summary")
# queued → running → done; running → queued again while its agent is at its rate limit
# (with `not_before`); queued → cancelled (Stop, a newer mention); running → interrupted
# (its worker died: another one found the room's lease gone).
TURN_STATES = ("queued", "running", "done", "cancelled", "interrupted")


class AgentGeneration(db.Model):
    """What one user message set off: its trigger and the budget its turns share."""

    __tablename__ = "agent_generations"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    room_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("rooms.id", ondelete="CASCADE"))
    # Not a foreign key: a deleted trigger must not take its replies' bookkeeping with it.
    trigger_id: Mapped[str] = mapped_column(sa.String(36))
    replies: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    handovers: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    handover_limit: Mapped[int] = mapped_column(sa.Integer)
    reply_limit: Mapped[int] = mapped_column(sa.Integer)
    planned: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    # A regeneration: the agent reply its one reply replaces (discux.messages.versions).
    replaces_id: Mapped[str | None] = mapped_column(sa.String(36))
    created_at: Mapped[datetime | None] = mapped_column(TimestampMs, default=utcnow)


class AgentTurn(db.Model):
    """One agent's reply (or a summary) to run in a room; the id is the room's order."""

    __tablename__ = "agent_turns"
    __table_args__ = (sa.Index("idx_agent_turns_room_state", "room_id", "state"),
                      sa.Index("idx_agent_turns_state", "state"))

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    room_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("rooms.id", ondelete="CASCADE"))
    generation_id: Mapped[str | None] = mapped_column(
        sa.String(36), sa.ForeignKey("agent_generations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(sa.String(16))
    agent_id: Mapped[str | None] = mapped_column(sa.String(36))
    handed_over_by: Mapped[str | None] = mapped_column(sa.String(36))
    requested_by: Mapped[str | None] = mapped_column(sa.String(255))
    state: Mapped[str] = mapped_column(sa.String(16), default="queued", server_default="queued")
    created_at: Mapped[datetime | None] = mapped_column(TimestampMs, default=utcnow)
    # When a worker took it (running) and when it ended (done, or cancelled/interrupted).
    started_at: Mapped[datetime | None] = mapped_column(TimestampMs)
    ended_at: Mapped[datetime | None] = mapped_column(TimestampMs)
    # A queued turn must not start before this (its agent is at its rate limit); it stays
    # first in its room meanwhile, and no thread waits for it.
    not_before: Mapped[datetime | None] = mapped_column(TimestampMs)
