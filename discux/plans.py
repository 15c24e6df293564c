"""Plans and their limits: the one place that answers "may this user create another X"."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite

from discux.errors import DiscuxError, LimitReached
from discux.extensions import db
from discux.ids import utcnow
from discux.locks import lock_row
from discux.models import PLANS, Agent, Room, UsageCounter, User

# "Unlimited" is stored as a number no team reaches, so every check stays one comparison.
UNLIMITED = 1_000_000
# Tokens are counted in far larger numbers: "unlimited" tokens is its own, larger number.
UNLIMITED_TOKENS = 1_000_000_000_000


@dataclass(frozen=True)
class PlanLimits:
    agents: int
    rooms: int
    messages_per_month: int
    # Model tokens (prompt + completion) of the replies, summaries and Try it a user sets off.
    tokens_per_month: int


PLAN_LIMITS = {
    "free": PlanLimits(agents=3, rooms=1, messages_per_month=100, tokens_per_month=200_000),
    "pro": PlanLimits(agents=UNLIMITED, rooms=UNLIMITED, messages_per_month=UNLIMITED,
                      tokens_per_month=UNLIMITED_TOKENS),
    "team": PlanLimits(agents=UNLIMITED, rooms=UNLIMITED, messages_per_month=UNLIMITED,
                       tokens_per_month=UNLIMITED_TOKENS),
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


def month_key(now: datetime | None = None) -> str:
    """The calendar month (UTC) a usage counter row stands for: "2026-12"."""
    return (now or utcnow()).strftime("%Y-%m")


def messages_used_this_month(user: User) -> int:
    """Messages the user sent this calendar month, deleted ones included."""
    return db.session.scalar(
        sa.select(UsageCounter.messages_sent)
        .where(UsageCounter.user_id == user.id, UsageCounter.month == month_key())
    ) or 0


def _count_one_message(dialect: str) -> sa.Insert:
    """INSERT the month's row with 1, or add 1 to it: one statement, which also row-locks the
    counter (MariaDB) or takes the write lock (SQLite) until the post commits."""
    counters = UsageCounter.__table__
    values = {"user_id": sa.bindparam("user_id"), "month": sa.bindparam("month"),
              "messages_sent": 1}
    if dialect == "sqlite":
        return sqlite.insert(counters).values(values).on_conflict_do_update(
            index_elements=[counters.c.user_id, counters.c.month],
            set_={"messages_sent": counters.c.messages_sent + 1})
    return mysql.insert(counters).values(values).on_duplicate_key_update(
        messages_sent=counters.c.messages_sent + 1)


_COUNT_ONE_MESSAGE = {name: _count_one_message(name) for name in ("sqlite", "mysql")}
# MariaDB's answer to two first INSERTs of one key waiting on a third: roll one back.
DEADLOCK = 1213


def take_message_quota(user: User) -> None:
    """Count one message sent by `user` this month, in the caller's transaction (the one that
    stores it); LimitReached when that goes past the plan's limit, and the caller rolls back.

    Posts of one user run one at a time from the counter's update to their commit, so N posts
    at once count N and at most the limit of them are stored."""
    dialect = db.session.get_bind().dialect.name
    statement = _COUNT_ONE_MESSAGE["sqlite" if dialect == "sqlite" else "mysql"]
    params = {"user_id": user.id, "month": month_key()}
    for attempt in range(3):
        try:
            db.session.execute(statement, params)
            break
        except sa.exc.OperationalError as error:
            # Only reads came before in this transaction: rolled back, it can simply retry.
            if (getattr(error.orig, "args", None) or (None,))[0] != DEADLOCK or attempt == 2:
                raise
            db.session.rollback()
    if user.max_messages_per_month >= UNLIMITED:
        return
    # The row is ours until commit: this read sees every post counted before this one.
    if messages_used_this_month(user) > user.max_messages_per_month:
        raise _messages_limit(user)


def _messages_limit(user: User) -> LimitReached:
    return LimitReached(
        f"Your {user.subscription} plan allows "
        f"{describe_limit(user.max_messages_per_month, 'messages')} a month, and this "
        "month's are used. They renew on the 1st (UTC), or upgrade your plan."
    )


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
    """Raise LimitReached when this month's messages are used (posting itself counts and checks
    in one go: take_message_quota)."""
    if user.max_messages_per_month >= UNLIMITED:
        return
    if messages_used_this_month(user) >= user.max_messages_per_month:
        raise _messages_limit(user)


def set_plan(user: User, plan: str) -> None:
    """Move a user to a plan and give them its limits."""
    if plan not in PLANS:
        raise DiscuxError(f"Unknown plan {plan!r}: choose one of {', '.join(PLANS)}.", "plan")
    limits = PLAN_LIMITS[plan]
    user.subscription = plan
    user.max_agents = limits.agents
    user.max_rooms = limits.rooms
    user.max_messages_per_month = limits.messages_per_month
    user.max_tokens_per_month = limits.tokens_per_month
