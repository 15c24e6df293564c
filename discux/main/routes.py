from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, render_template
from flask_login import current_user

from discux.extensions import db
from discux.models import Message, Room, RoomParticipant

bp = Blueprint("main", __name__)


def rooms_of(user_id: str, limit: int = 20) -> list[tuple[Room, str]]:
    """The user's active rooms with their role, most recently updated first."""
    rows = db.session.execute(
        sa.select(Room, RoomParticipant.role)
        .join(RoomParticipant, RoomParticipant.room_id == Room.id)
        .where(RoomParticipant.user_id == user_id, Room.is_active.is_(True))
        .order_by(Room.updated_at.desc())
        .limit(limit)
    )
    return [(room, role) for room, role in rows]


def recent_activity(user_id: str, limit: int = 10) -> list[tuple[Message, Room]]:
    """The newest messages across the user's rooms."""
    rows = db.session.execute(
        sa.select(Message, Room)
        .join(Room, Room.id == Message.room_id)
        .join(RoomParticipant, RoomParticipant.room_id == Message.room_id)
        .where(RoomParticipant.user_id == user_id, Message.status == "complete")
        .order_by(Message.id.desc())
        .limit(limit)
    )
    return [(message, room) for message, room in rows]


@bp.get("/")
def index():
    if not current_user.is_authenticated:
        return render_template("main/landing.html")
    return render_template(
        "main/dashboard.html",
        rooms=rooms_of(current_user.id),
        activity=recent_activity(current_user.id),
    )
