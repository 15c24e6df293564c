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
ARCHIVED_ACTIONS = frozenset({"view", "archive", "delete_room", "leave", "export", "edit_room"})


def membership(user: User | None, room_id: str) -> RoomParticipant | None:
    """The user's participant row in the room, or None (signed out or not a member)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return db.session.scalar(
        sa.select(RoomParticipant).where(
            RoomParticipant.room_id == room_id, RoomParticipant.user_id == user.id
        )
    )


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
