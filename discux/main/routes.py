from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user

from discux.errors import DiscuxError
from discux.extensions import db
from discux.main.sample_room import create_sample_room, sample_room_refusal
from discux.models import Message, Room, RoomParticipant
from discux.notifications.service import rooms_overview, snippet
from discux.rooms.access import sign_in_required

bp = Blueprint("main", __name__)


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
    user = current_user._get_current_object()
    overview = rooms_overview(user)
    return render_template(
        "main/dashboard.html",
        overview=overview,
        snippet=snippet,
        # First run: nothing to list yet, so offer the sample room (or say why it can't be).
        sample_refusal=None if overview else sample_room_refusal(user),
        activity=recent_activity(current_user.id),
    )


@bp.post("/start/sample-room")
@sign_in_required
def sample_room():
    """First run: one click makes the sample room (a second click lands in it too)."""
    try:
        room = create_sample_room(current_user._get_current_object())
    except DiscuxError as error:
        flash(error.message, "error")
        return redirect(url_for("main.index"), 303)
    return redirect(url_for("rooms.show", room_id=room.id), 303)
