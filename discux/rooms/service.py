"""Room rules: creating and running rooms, their settings, agents and people.

Every function checks the actor's permission itself (views check first too, for the right
HTTP status), commits one transaction, and raises a DiscuxError a user can read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from discux import plans
from discux.errors import DiscuxError, Forbidden, LimitReached
from discux.extensions import db
from discux.locks import lock_row
from discux.models import Agent, Message, Room, RoomAgent, RoomParticipant, RoomSettings, User
from discux.realtime import close_sockets
from discux.rooms.permissions import can, can_manage, membership, refusal
from discux.rooms.signals import role_changed

NAME_MAX = 200
DESCRIPTION_MAX = 1000
MAX_AGENTS_RANGE = (1, 20)
ASSIGNABLE_ROLES = ("admin", "member")


class RoomNotFound(DiscuxError):
    """The room, or the person or agent named in it, is not there for this actor."""

    status = 404
    code = "not_found"

    def __init__(self, message: str = "There is no such room, or you are not in it."):
        super().__init__(message)


def require_participant(actor: User, room: Room, action: str) -> RoomParticipant:
    """The actor's participant row if they may do `action` in the room; raises otherwise."""
    participant = membership(actor, room.id)
    if participant is None:
        raise RoomNotFound()
    if not can(participant, action, room):
        raise Forbidden(refusal(action, room))
    return participant


def _clean_name(name: str | None) -> str:
    name = (name or "").strip()
    if not name:
        raise DiscuxError("Give the room a name.", "name")
    if len(name) > NAME_MAX:
        raise DiscuxError(f"Keep the name to {NAME_MAX} characters or fewer.", "name")
    return name


def _clean_description(description: str | None) -> str | None:
    description = (description or "").strip()
    if len(description) > DESCRIPTION_MAX:
        raise DiscuxError(
            f"Keep the description to {DESCRIPTION_MAX} characters or fewer.", "description"
        )
    return description or None


def _lock_user(user_id: str) -> None:
    # Serializes "count active rooms, then add one" per user (the agent limit takes it too).
    plans.lock_usage(user_id)


def _check_active_room_slot(owner: User, actor: User) -> None:
    try:
        plans.check_can_create_room(owner)
    except LimitReached as error:
        if owner.id == actor.id:
            raise
        raise LimitReached(
            f"The room's owner is on the {owner.subscription} plan, which allows "
            f"{plans.describe_limit(owner.max_rooms, 'active rooms')}, all in use."
        ) from error


def create_room(user: User, name: str, description: str | None = None) -> Room:
    """A new active room owned by `user`, with its settings row, within the plan's limit."""
    name = _clean_name(name)
    description = _clean_description(description)
    try:
        _lock_user(user.id)
        plans.check_can_create_room(user)
        room = Room(name=name, description=description, created_by=user.id, is_active=True)
        room.settings = RoomSettings()
        db.session.add(room)
        db.session.flush()
        db.session.add(RoomParticipant(room_id=room.id, user_id=user.id, role="owner"))
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return room


def update_room(actor: User, room: Room, name: str, description: str | None) -> Room:
    """Rename the room and change its description."""
    require_participant(actor, room, "edit_room")
    room.name = _clean_name(name)
    room.description = _clean_description(description)
    db.session.commit()
    return room


def archive_room(actor: User, room: Room) -> None:
    """Make the room read-only; it stops counting toward its owner's active-room limit."""
    require_participant(actor, room, "archive")
    room.is_active = False
    db.session.commit()


def unarchive_room(actor: User, room: Room) -> None:
    """Make an archived room active again, if its owner's plan has a free slot."""
    require_participant(actor, room, "archive")
    if room.is_active:
        return
    owner = db.session.get(User, room.created_by)
    try:
        _lock_user(owner.id)
        _check_active_room_slot(owner, actor)
        room.is_active = True
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise


def delete_room(actor: User, room: Room) -> None:
    """Delete the room and everything in it (messages, agents list, people, invitations)."""
    require_participant(actor, room, "delete_room")
    room_id = room.id
    db.session.execute(sa.delete(Room).where(Room.id == room_id))
    db.session.commit()
    close_sockets(room_id, reason="This room was deleted.")


def update_settings(
    actor: User, room: Room, max_agents: int, allow_agent_creation: bool, auto_summarize: bool
) -> RoomSettings:
    """Change the room's settings; the agent limit cannot drop below the agents already in."""
    require_participant(actor, room, "edit_settings")
    low, high = MAX_AGENTS_RANGE
    if not isinstance(max_agents, int) or not low <= max_agents <= high:
        raise DiscuxError(f"Max agents must be a whole number from {low} to {high}.", "max_agents")
    in_room = agent_count(room)
    if max_agents < in_room:
        raise DiscuxError(
            f"This room has {in_room} agents; remove some before lowering the limit to "
            f"{max_agents}.",
            "max_agents",
        )
    settings = room.settings
    settings.max_agents = max_agents
    settings.allow_agent_creation = bool(allow_agent_creation)
    settings.auto_summarize = bool(auto_summarize)
    db.session.commit()
    # This worker counts messages towards the next summary in memory: count again from the
    # new setting (other workers recount within SUMMARY_RECOUNT_SECONDS; the summary itself
    # checks the setting before it writes).
    from discux.discussion.engine import engine_for

    engine_for().summary_clock.forget(room.id)
    return settings


def agent_count(room: Room, *, locking: bool = False) -> int:
    query = sa.select(sa.func.count()).select_from(RoomAgent).where(RoomAgent.room_id == room.id)
    return db.session.scalar(query.with_for_update() if locking else query)


def agent_named_in_room(room_id: str, name_key: str, *, except_agent_id: str | None = None,
                        locking: bool = False) -> str | None:
    """The name of the room's agent whose name matches `name_key` (whatever the case), if any:
    a room holds one agent per name, or @mentions could not tell them apart."""
    query = (sa.select(Agent.name).join(RoomAgent, RoomAgent.agent_id == Agent.id)
             .where(RoomAgent.room_id == room_id, Agent.name_key == name_key).limit(1))
    if except_agent_id:
        query = query.where(Agent.id != except_agent_id)
    return db.session.scalar(query.with_for_update() if locking else query)


def name_clash_message(name: str, namesake: str) -> str:
    return (f'This room already has an agent called "{namesake}", so "@{name}" could not tell '
            f"them apart. Rename one of them, or remove {namesake} from the room first.")


def member_count(room: Room) -> int:
    return db.session.scalar(
        sa.select(sa.func.count())
        .select_from(RoomParticipant)
        .where(RoomParticipant.room_id == room.id)
    )


def agents_user_may_add(user_id: str | sa.BindParameter) -> sa.ColumnElement[bool]:
    """The rule for which agents a user (their id, or a bound parameter standing for it) may
    bring into a room: their own, or public ones."""
    return sa.or_(Agent.created_by == user_id, Agent.is_public.is_(True))


def add_agent_to_room(actor: User, room: Room, agent: Agent) -> RoomAgent:
    """Bring `agent` (the actor's own or a public one) into the room, within its agent limit."""
    require_participant(actor, room, "add_agent")
    if agent.created_by != actor.id and not agent.is_public:
        raise DiscuxError("You can only add your own agents or public ones.", "agent_id")
    try:
        # Lock the room row so two people adding at once cannot both take the last slot (or
        # bring in two agents of one name).
        lock_row(Room, room.id)
        already = db.session.scalar(
            sa.select(RoomAgent.id).where(
                RoomAgent.room_id == room.id, RoomAgent.agent_id == agent.id
            ).with_for_update()
        )
        if already:
            raise DiscuxError(f"{agent.name} is already in this room.", "agent_id")
        namesake = agent_named_in_room(room.id, agent.name_key, locking=True)
        if namesake is not None:
            raise DiscuxError(name_clash_message(agent.name, namesake), "agent_id")
        limit = room.settings.max_agents or MAX_AGENTS_RANGE[0]
        if agent_count(room, locking=True) >= limit:
            raise DiscuxError(
                f"This room allows at most {limit} agent{'s' if limit != 1 else ''}. Remove one "
                "or raise the limit in the room's settings.",
                "agent_id",
            )
        room_agent = RoomAgent(room_id=room.id, agent_id=agent.id, added_by=actor.id)
        db.session.add(room_agent)
        db.session.commit()
    except sa.exc.IntegrityError:
        db.session.rollback()
        raise DiscuxError(f"{agent.name} is already in this room.", "agent_id") from None
    except Exception:
        db.session.rollback()
        raise
    return room_agent


def remove_agent_from_room(actor: User, room: Room, agent_id: str) -> None:
    """Take an agent out of the room (the agent itself is untouched)."""
    require_participant(actor, room, "remove_agent")
    deleted = db.session.execute(
        sa.delete(RoomAgent).where(RoomAgent.room_id == room.id, RoomAgent.agent_id == agent_id)
    ).rowcount
    if not deleted:
        db.session.rollback()
        raise RoomNotFound("That agent is not in this room.")
    db.session.commit()


def _target(room: Room, user_id: str) -> RoomParticipant:
    target = membership(db.session.get(User, user_id), room.id) if user_id else None
    if target is None:
        raise RoomNotFound("That person is not in this room.")
    return target


def change_role(actor: User, room: Room, user_id: str, role: str) -> RoomParticipant:
    """Make a member an admin or an admin a member (ownership moves only by transfer)."""
    participant = require_participant(actor, room, "manage_members")
    target = _target(room, user_id)
    if role not in ASSIGNABLE_ROLES:
        raise DiscuxError("Choose admin or member.", "role")
    if not can_manage(participant, target, room):
        raise Forbidden(_manage_refusal(participant, target))
    target.role = role
    db.session.commit()
    role_changed.send(room.id, user_id=target.user_id)  # open sockets take the new rights
    return target


def remove_member(actor: User, room: Room, user_id: str) -> None:
    """Take someone out of the room."""
    participant = require_participant(actor, room, "manage_members")
    target = _target(room, user_id)
    if not can_manage(participant, target, room):
        raise Forbidden(_manage_refusal(participant, target))
    db.session.delete(target)
    db.session.commit()
    close_sockets(room.id, user_id)


def _manage_refusal(actor: RoomParticipant, target: RoomParticipant) -> str:
    if target.user_id == actor.user_id:
        return "You can't change your own role or remove yourself; leave the room instead."
    if target.role == "owner":
        return "The owner's role changes only when they transfer ownership."
    return "Only the owner may change an admin's role or remove an admin."


def transfer_ownership(actor: User, room: Room, new_owner_id: str) -> None:
    """Make another member the owner; the old owner becomes an admin. Exactly one owner remains,
    and the room now counts toward the new owner's active-room limit."""
    participant = require_participant(actor, room, "transfer_ownership")
    target = _target(room, new_owner_id)
    if target.user_id == actor.id:
        raise DiscuxError("You already own this room. Choose someone else.", "new_owner_id")
    new_owner = db.session.get(User, target.user_id)
    changed = (actor.id, new_owner.id)
    try:
        if room.is_active:
            _lock_user(new_owner.id)
            try:
                plans.check_can_create_room(new_owner)
            except LimitReached:
                raise LimitReached(
                    f"{new_owner.display_name} is on the {new_owner.subscription} plan and has "
                    "no free active-room slot, so they can't take over an active room. Archive "
                    "it first, or ask them to free a slot.",
                    "new_owner_id",
                ) from None
        # Conditional updates: if anything moved underneath us, nothing changes.
        demoted = db.session.execute(
            sa.update(RoomParticipant)
            .where(RoomParticipant.id == participant.id, RoomParticipant.role == "owner")
            .values(role="admin")
        ).rowcount
        promoted = db.session.execute(
            sa.update(RoomParticipant)
            .where(RoomParticipant.id == target.id, RoomParticipant.role != "owner")
            .values(role="owner")
        ).rowcount
        if demoted != 1 or promoted != 1:
            raise DiscuxError("Ownership changed while you were deciding. Reload and try again.")
        db.session.execute(
            sa.update(Room).where(Room.id == room.id).values(created_by=new_owner.id)
        )
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    db.session.expire_all()
    for user_id in changed:
        role_changed.send(room.id, user_id=user_id)


def leave_room(actor: User, room: Room) -> None:
    """Leave the room; the owner must transfer ownership first."""
    participant = require_participant(actor, room, "leave")
    db.session.delete(participant)
    db.session.commit()
    close_sockets(room.id, actor.id, reason="You left this room.")


@dataclass(frozen=True)
class RoomSummary:
    room: Room
    role: str
    last_activity: datetime | None
    member_count: int


def rooms_for(user: User) -> list[RoomSummary]:
    """Every room the user is in, with their role, most recently active first. Last activity
    is the newest message, or when the room last changed if it has none."""
    my_rooms = sa.select(RoomParticipant.room_id).where(RoomParticipant.user_id == user.id)
    last_message = (
        sa.select(Message.room_id, sa.func.max(Message.timestamp).label("at"))
        .where(Message.room_id.in_(my_rooms))
        .group_by(Message.room_id)
        .subquery()
    )
    members = (
        sa.select(RoomParticipant.room_id, sa.func.count().label("n"))
        .where(RoomParticipant.room_id.in_(my_rooms))
        .group_by(RoomParticipant.room_id)
        .subquery()
    )
    rows = db.session.execute(
        sa.select(Room, RoomParticipant.role, last_message.c.at, members.c.n)
        .join(RoomParticipant, RoomParticipant.room_id == Room.id)
        .outerjoin(last_message, last_message.c.room_id == Room.id)
        .outerjoin(members, members.c.room_id == Room.id)
        .where(RoomParticipant.user_id == user.id)
    ).all()
    summaries = [
        RoomSummary(room, role, at or room.updated_at or room.created_at, n or 1)
        for room, role, at, n in rows
    ]
    return sorted(summaries, key=lambda s: (s.last_activity or datetime.min, s.room.id),
                  reverse=True)
