"""Instance administration: who the admins are, the users they see, plans, disabling users,
and the figures of the last 30 days."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from discux import plans
from discux.auth.sessions import forget_user_everywhere, sign_out_everywhere
from discux.discussion.engine import COULD_NOT_ANSWER
from discux.errors import DiscuxError
from discux.extensions import db
from discux.ids import utcnow
from discux.models import Message, Room, RoomParticipant, UsageCounter, User
from discux.realtime import close_sockets

# One line per admin action, for the operator's log: who did what to whom (ids only).
log = logging.getLogger(__name__)

USERS_PER_PAGE = 50
SEARCH_MAX = 200
FIGURE_DAYS = 30


class UserNotFound(DiscuxError):
    status = 404
    code = "not_found"


def is_admin(user) -> bool:
    """Whether `user` (signed in or not) is named in DISCUX_ADMIN_EMAILS."""
    return bool(getattr(user, "is_authenticated", False)
                and user.email.lower() in current_app.config["DISCUX_ADMIN_EMAILS"])


@dataclass(frozen=True)
class UserRow:
    user: User
    rooms: int  # active rooms they own: what the plan's room limit counts
    messages_this_month: int


@dataclass(frozen=True)
class UserPage:
    rows: list[UserRow]
    search: str
    page: int
    pages: int
    total: int


def _search_filter(search: str):
    return sa.or_(User.email.icontains(search, autoescape=True),
                  User.name.icontains(search, autoescape=True))


def user_page(search: str = "", page: int = 1) -> UserPage:
    """One page of users by email, those whose email or name contains `search` when given."""
    search = search.strip()[:SEARCH_MAX]
    count_query = sa.select(sa.func.count()).select_from(User)
    if search:
        count_query = count_query.where(_search_filter(search))
    total = db.session.scalar(count_query)
    pages = max(1, -(-total // USERS_PER_PAGE))
    page = min(max(page, 1), pages)
    rooms = (sa.select(sa.func.count()).select_from(Room)
             .where(Room.created_by == User.id, Room.is_active.is_(True))
             .correlate(User).scalar_subquery())
    messages = (sa.select(UsageCounter.messages_sent)
                .where(UsageCounter.user_id == User.id, UsageCounter.month == plans.month_key())
                .correlate(User).scalar_subquery())
    query = sa.select(User, rooms, sa.func.coalesce(messages, 0)).order_by(User.email)
    if search:
        query = query.where(_search_filter(search))
    rows = db.session.execute(
        query.limit(USERS_PER_PAGE).offset((page - 1) * USERS_PER_PAGE)).all()
    return UserPage(
        rows=[UserRow(user, rooms or 0, sent or 0) for user, rooms, sent in rows],
        search=search, page=page, pages=pages, total=total,
    )


def user_by_id(user_id: str) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise UserNotFound("There is no such user.")
    return user


def change_plan(admin: User, user_id: str, plan: str) -> User:
    """Move a user to `plan`; its limits apply from their next request."""
    user = user_by_id(user_id)
    plans.set_plan(user, plan)
    db.session.commit()
    log.info("admin %s moved user %s to the %s plan", admin.id, user.id, plan)
    return user


def check_may_disable(admin: User, user: User) -> None:
    """Raise DiscuxError when `admin` may not disable `user` (themselves)."""
    if user.id == admin.id:
        raise DiscuxError("You cannot disable your own account: another admin has to.")


def disable_user(admin: User, user_id: str) -> User:
    """Disable a user: their next request with a session or an API token is refused, their
    open room sockets close now, and no sign-in lets them back in until they are enabled."""
    user = user_by_id(user_id)
    check_may_disable(admin, user)
    if user.disabled_at is None:
        user.disabled_at = utcnow()
        db.session.commit()
        forget_user_everywhere(user.id)
        log.info("admin %s disabled user %s", admin.id, user.id)
    room_ids = db.session.scalars(
        sa.select(RoomParticipant.room_id).where(RoomParticipant.user_id == user.id)).all()
    for room_id in room_ids:
        close_sockets(room_id, user.id, reason="This account has been disabled.")
    return user


def enable_user(user_id: str, admin: User | None = None) -> User:
    """Let a disabled user sign in again (their API tokens work again; sessions left from
    before were ended on their next use, and any left are ended now); `admin` is None from
    the command line."""
    user = user_by_id(user_id)
    if user.disabled_at is not None:
        user.disabled_at = None
        db.session.commit()
        sign_out_everywhere(user)
        log.info("%s enabled user %s", f"admin {admin.id}" if admin else "the command line",
                 user.id)
    return user


@dataclass(frozen=True)
class DayFigures:
    day: date
    rooms: int
    messages: int
    agent_replies: int
    model_errors: int


@dataclass(frozen=True)
class Figures:
    days: list[DayFigures]  # oldest first, today last, days with nothing included
    users: int
    disabled_users: int
    active_rooms: int

    def total(self, name: str) -> int:
        return sum(getattr(day, name) for day in self.days)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time())


def _counted_by_day(day_of, *columns, where) -> dict[str, tuple[int, ...]]:
    rows = db.session.execute(sa.select(day_of, *columns).where(*where).group_by(day_of)).all()
    # SQLite answers date() with a string, MySQL with a date.
    return {str(row[0])[:10]: tuple(int(value or 0) for value in row[1:]) for row in rows}


def figures(days: int = FIGURE_DAYS, today: date | None = None) -> Figures:
    """Rooms created, messages, agent replies and model errors per UTC day, today included.

    A model error is an agent reply cut off by a failure (status "failed") or, when the model
    failed before writing anything, the notice Discux leaves in the room instead of a reply."""
    today = today or utcnow().date()
    first = today - timedelta(days=days - 1)
    since, until = _day_start(first), _day_start(today + timedelta(days=1))

    def count_if(condition):
        return sa.func.sum(sa.case((condition, 1), else_=0))

    message_day = sa.func.date(Message.timestamp)
    failed_reply = sa.and_(Message.type == "agent", Message.status == "failed")
    failure_notice = sa.and_(Message.type == "system",
                             Message.content.contains(COULD_NOT_ANSWER, autoescape=True))
    messages = _counted_by_day(
        message_day,
        count_if(Message.type == "user"),
        count_if(Message.type == "agent"),
        count_if(sa.or_(failed_reply, failure_notice)),
        where=(Message.timestamp >= since, Message.timestamp < until),
    )
    room_day = sa.func.date(Room.created_at)
    rooms = _counted_by_day(room_day, sa.func.count(),
                            where=(Room.created_at >= since, Room.created_at < until))
    day_figures = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        sent, replies, errors = messages.get(day.isoformat(), (0, 0, 0))
        day_figures.append(DayFigures(day, rooms.get(day.isoformat(), (0,))[0], sent, replies,
                                      errors))
    users, disabled = db.session.execute(
        sa.select(sa.func.count(), sa.func.count(User.disabled_at))).one()
    active_rooms = db.session.scalar(
        sa.select(sa.func.count()).select_from(Room).where(Room.is_active.is_(True)))
    return Figures(days=day_figures, users=users, disabled_users=disabled,
                   active_rooms=active_rooms)
