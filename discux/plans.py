"""Plans and their limits: the one place that answers "may this user create another X"."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from discux.errors import DiscuxError, LimitReached
from discux.extensions import db
from discux.ids import utcnow
from discux.locks import lock_row
from discux.models import PLANS, Agent, Message, Room, User

# "Unlimited" is stored as a number no team reaches, so every check stays one comparison.
UNLIMITED = 1_000_000


@dataclass(frozen=True)
class PlanLimits:
    agents: int
    rooms: int
    messages_per_month: int


PLAN_LIMITS = {
    "free": PlanLimits(agents=3, rooms=1, messages_per_month=100),
    "pro": PlanLimits(agents=UNLIMITED, rooms=UNLIMITED, messages_per_month=UNLIMITED),
    "team": PlanLimits(agents=UNLIMITED, rooms=UNLIMITED, messages_per_month=UNLIMITED),
}


def describe_limit(limit: int, noun: str) -> str:
    return f"unlimited {noun}" if limit >= UNLIMITED else f"{limit} {noun}"


def month_start(now: datetime | None = None) -> datetime:
    now = now or utcnow()
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def lock_usage(user_id: str) -> None:
    """Serialize "count what the user has, then add one" per user: call it first in the
    transaction that checks a limit and writes (rooms, agents), then count with `locking=True`."""
    lock_row(User, user_id)


def _counted(query: sa.Select, locking: bool) -> int:
    return db.session.scalar(query.with_for_update() if locking else query)


def agents_used(user: User, *, locking: bool = False) -> int:
    return _counted(
        sa.select(sa.func.count()).select_from(Agent).where(Agent.created_by == user.id), locking
    )


def active_rooms_used(user: User, *, locking: bool = False) -> int:
    return _counted(
        sa.select(sa.func.count())
        .select_from(Room)
        .where(Room.created_by == user.id, Room.is_active.is_(True)),
        locking,
    )


def messages_used_this_month(user: User, up_to: int | None = None) -> int:
    """Messages the user wrote this calendar month; with `up_to`, counting stops there (a
    quota check only needs to know whether the limit is reached, not by how much)."""
    sent = sa.select(Message.id).where(
        Message.sender_id == user.id,
        Message.type == "user",
        Message.timestamp >= month_start(),
    )
    if up_to is not None:
        sent = sent.limit(up_to)
    return db.session.scalar(sa.select(sa.func.count()).select_from(sent.subquery()))


def check_can_create_agent(user: User) -> None:
    """Raise LimitReached when the plan's agents are all used (call after `lock_usage`)."""
    if agents_used(user, locking=True) >= user.max_agents:
        raise LimitReached(
            f"Your {user.subscription} plan allows {describe_limit(user.max_agents, 'agents')}, "
            "and you have used them all. Delete an agent or upgrade your plan."
        )


def check_can_create_room(user: User) -> None:
    """Raise LimitReached when the plan's active rooms are all used (call after `lock_usage`)."""
    if active_rooms_used(user, locking=True) >= user.max_rooms:
        raise LimitReached(
            f"Your {user.subscription} plan allows "
            f"{describe_limit(user.max_rooms, 'active rooms')}. "
            "Archive a room or upgrade your plan."
        )


def check_can_post_message(user: User) -> None:
    # Unlimited plans skip the count: it grows with every message the user ever sent this month.
    if user.max_messages_per_month >= UNLIMITED:
        return
    limit = user.max_messages_per_month
    if messages_used_this_month(user, up_to=limit) >= limit:
        raise LimitReached(
            f"Your {user.subscription} plan allows "
            f"{describe_limit(user.max_messages_per_month, 'messages')} a month, and this "
            "month's are used. They renew on the 1st (UTC), or upgrade your plan."
        )


def set_plan(user: User, plan: str) -> None:
    """Move a user to a plan and give them its limits."""
    if plan not in PLANS:
        raise DiscuxError(f"Unknown plan {plan!r}: choose one of {', '.join(PLANS)}.", "plan")
    limits = PLAN_LIMITS[plan]
    user.subscription = plan
    user.max_agents = limits.agents
    user.max_rooms = limits.rooms
    user.max_messages_per_month = limits.messages_per_month
