"""The one place that answers "may this user do X in this room"; views and templates ask it."""

from __future__ import annotations

import sqlalchemy as sa

from discux.extensions import db
from discux.models import Room, RoomParticipant, User

STAFF = frozenset({"owner", "admin"})
EVERYONE = frozenset({"owner", "admin", "member"})

# action -> roles allowed while the room is active
ACTIVE_RULES: dict[str, frozenset[str]] = {
    "view": EVERYONE,
    "post": EVERYONE,
    "delete_own_message": EVERYONE,
    "delete_any_message": STAFF,
    "add_agent": STAFF,  # members too when the room's settings allow it (see can())
    "remove_agent": STAFF,
    "invite": STAFF,
    "manage_members": STAFF,
    "edit_settings": STAFF,
    "edit_room": STAFF,
    "clear_history": STAFF,
    "summarize": EVERYONE,
    "archive": STAFF,
    "delete_room": frozenset({"owner"}),
    "transfer_ownership": frozenset({"owner"}),
    "leave": frozenset({"admin", "member"}),
    "export": EVERYONE,
}
# An archived room is read-only: only these still work.
ARCHIVED_ACTIONS = frozenset({"view", "archive", "delete_room", "leave", "export"})

# What a member who may not do an action is told (a non-member is told nothing: 404).
REFUSALS: dict[str, str] = {
    "add_agent": "Only the owner and admins may add agents to this room.",
    "remove_agent": "Only the owner and admins may remove agents from this room.",
    "invite": "Only the owner and admins may invite people to this room.",
    "manage_members": "Only the owner and admins may change roles or remove members.",
    "edit_settings": "Only the owner and admins may change this room's settings.",
    "edit_room": "Only the owner and admins may edit this room.",
    "archive": "Only the owner and admins may archive or unarchive this room.",
    "delete_room": "Only the room's owner may delete it.",
    "transfer_ownership": "Only the room's owner may transfer ownership.",
    "leave": "You own this room: transfer ownership to someone else before leaving.",
}
ARCHIVED_REFUSAL = "This room is archived, so it is read-only. Unarchive it to make changes."


def membership(user: User | None, room_id: str) -> RoomParticipant | None:
    """The user's participant row in the room, or None (signed out or not a member)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return db.session.scalar(
        sa.select(RoomParticipant).where(
            RoomParticipant.room_id == room_id, RoomParticipant.user_id == user.id
        )
    )


# Built once: every room request (each message posted) only binds the two ids.
_ROOM_AND_MEMBERSHIP = (
    sa.select(Room, RoomParticipant)
    .join(RoomParticipant, RoomParticipant.room_id == Room.id)
    .where(Room.id == sa.bindparam("room_id"), RoomParticipant.user_id == sa.bindparam("user_id"))
)


def room_and_membership(user: User | None, room_id: str) -> tuple[Room, RoomParticipant] | None:
    """The room and the user's participant row in it, in one query; None if either is missing."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    found = db.session.execute(
        _ROOM_AND_MEMBERSHIP, {"room_id": room_id, "user_id": user.id}
    ).first()
    return (found[0], found[1]) if found else None


def can(participant: RoomParticipant | None, action: str, room: Room) -> bool:
    """May the holder of `participant` (None = not a member) do `action` in `room`?"""
    if action not in ACTIVE_RULES:
        raise ValueError(f"unknown room action {action!r}")
    if participant is None or participant.room_id != room.id:
        return False
    if not room.is_active and action not in ARCHIVED_ACTIONS:
        return False
    if action == "add_agent" and participant.role == "member":
        return bool(room.settings and room.settings.allow_agent_creation)
    return participant.role in ACTIVE_RULES[action]


def can_manage(actor: RoomParticipant | None, target: RoomParticipant, room: Room) -> bool:
    """May `actor` change the role of, or remove, `target`? The owner manages everyone else;
    an admin manages plain members; nobody manages themselves (they leave instead)."""
    if not can(actor, "manage_members", room) or target.room_id != room.id:
        return False
    if target.user_id == actor.user_id or target.role == "owner":
        return False
    return actor.role == "owner" or target.role == "member"


def allowed_actions(participant: RoomParticipant | None, room: Room) -> dict[str, bool]:
    """Every action's answer at once, for templates (which show, never decide)."""
    return {action: can(participant, action, room) for action in ACTIVE_RULES}


def refusal(action: str, room: Room) -> str:
    """The sentence a member is shown when `can()` said no to `action`."""
    if not room.is_active and action not in ARCHIVED_ACTIONS:
        return ARCHIVED_REFUSAL
    return REFUSALS.get(action, "You don't have permission to do that in this room.")
