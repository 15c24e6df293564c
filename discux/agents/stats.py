"""How an agent is doing: replies, speed, confidence, rooms, and a 30-day chart drawn as SVG
on the server (no chart library, no script)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa

from discux.extensions import db
from discux.ids import utcnow
from discux.models import Agent, Message, Room, RoomAgent, RoomParticipant, User

CHART_DAYS = 30
CHART_WIDTH = 600
CHART_HEIGHT = 120
BAR_GAP = 2


@dataclass(frozen=True)
class DayCount:
    day: date
    replies: int


@dataclass(frozen=True)
class Bar:
    day: date
    replies: int
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Chart:
    """Bars of a daily-replies chart in SVG user units (viewBox 0 0 width height)."""

    days: list[DayCount]
    bars: list[Bar]  # only days with replies; empty days are the gaps between them
    width: int
    height: int
    busiest: DayCount | None

    @property
    def total(self) -> int:
        return sum(day.replies for day in self.days)

    @property
    def first_day(self) -> date:
        return self.days[0].day

    @property
    def last_day(self) -> date:
        return self.days[-1].day


@dataclass(frozen=True)
class AgentStats:
    replies: int
    average_seconds: float | None
    average_confidence: float | None  # 0–1, None when no reply had logprobs
    room_count: int
    my_rooms: list[Room]  # the rooms it is in that the viewer may see
    chart: Chart

    @property
    def unused(self) -> bool:
        return self.replies == 0 and self.room_count == 0


def _replies_of(agent_id: str):
    return (
        Message.type == "agent",
        Message.sender_id == agent_id,
        Message.status == "complete",
    )


def agent_stats(agent: Agent, viewer: User, today: date | None = None) -> AgentStats:
    """The numbers on the agent page, as `viewer` may see them."""
    replies, average_seconds, average_confidence = db.session.execute(
        sa.select(
            sa.func.count(),
            sa.func.avg(Message.processing_time),
            sa.func.avg(Message.agent_confidence),
        ).where(*_replies_of(agent.id))
    ).one()
    room_count = db.session.scalar(
        sa.select(sa.func.count()).select_from(RoomAgent).where(RoomAgent.agent_id == agent.id)
    )
    # Only rooms the viewer belongs to are named: the rest are someone else's business.
    my_rooms = list(
        db.session.scalars(
            sa.select(Room)
            .join(RoomAgent, RoomAgent.room_id == Room.id)
            .join(RoomParticipant, RoomParticipant.room_id == Room.id)
            .where(RoomAgent.agent_id == agent.id, RoomParticipant.user_id == viewer.id)
            .order_by(sa.func.lower(Room.name), Room.id)
        )
    )
    return AgentStats(
        replies=replies or 0,
        average_seconds=float(average_seconds) if average_seconds is not None else None,
        average_confidence=float(average_confidence) if average_confidence is not None else None,
        room_count=room_count or 0,
        my_rooms=my_rooms,
        chart=daily_chart(daily_replies(agent.id, today=today)),
    )


def daily_replies(agent_id: str, days: int = CHART_DAYS, today: date | None = None) -> list[DayCount]:
    """Completed replies per UTC day for the last `days` days, today included, zeros kept."""
    today = today or utcnow().date()
    first = today - timedelta(days=days - 1)
    day_of = sa.func.date(Message.timestamp)
    rows = db.session.execute(
        sa.select(day_of, sa.func.count())
        .where(
            *_replies_of(agent_id),
            Message.timestamp >= datetime.combine(first, datetime.min.time()),
            Message.timestamp < datetime.combine(today + timedelta(days=1), datetime.min.time()),
        )
        .group_by(day_of)
    ).all()
    # SQLite answers date() with a string, MySQL with a date.
    counts = {str(day)[:10]: count for day, count in rows}
    return [
        DayCount(day, counts.get(day.isoformat(), 0))
        for day in (first + timedelta(days=offset) for offset in range(days))
    ]


def daily_chart(days: list[DayCount], width: int = CHART_WIDTH, height: int = CHART_HEIGHT) -> Chart:
    """Lay out one bar per day with replies, scaled so the busiest day fills the height."""
    slot = width / len(days)
    peak = max((day.replies for day in days), default=0)
    bars = []
    for index, day in enumerate(days):
        if not day.replies:
            continue
        bar_height = max(2.0, height * day.replies / peak)
        bars.append(Bar(
            day=day.day,
            replies=day.replies,
            x=round(index * slot + BAR_GAP / 2, 2),
            y=round(height - bar_height, 2),
            width=round(slot - BAR_GAP, 2),
            height=round(bar_height, 2),
        ))
    busiest = max(days, key=lambda d: d.replies) if peak else None
    return Chart(days=days, bars=bars, width=width, height=height, busiest=busiest)
