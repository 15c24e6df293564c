"""How a request gets at a room: signed in, a member (else 404), allowed (else 403)."""

from __future__ import annotations

from functools import wraps

from flask import abort, redirect, request, url_for
from flask_login import current_user

from discux.errors import Forbidden
from discux.external import site_url
from discux.models import Room, RoomParticipant, User
from discux.rooms.permissions import can, refusal, room_and_membership


def sign_in_required(view):
    """Send signed-out visitors to sign in, coming back to this page afterwards.

    Flask-Login's own redirect carries an absolute `next` URL, which `safe_next` rightly
    refuses; a path comes back. A refused POST comes back to the page it was posted from.
    """

    @wraps(view)
    def wrapped(*args, **kwargs):
        if not current_user.is_authenticated:
            target = request.full_path.rstrip("?") if request.method == "GET" else None
            return redirect(url_for("auth.login", next=target or _referring_path()))
        return view(*args, **kwargs)

    return wrapped


def _referring_path() -> str | None:
    """The path of the page a form was posted from, when it is a page of this site."""
    referrer = request.referrer or ""
    site = site_url() + "/"
    return referrer[len(site) - 1:] if referrer.startswith(site) else None


def room_for(user: User | None, room_id: str, action: str = "view") -> tuple[Room, RoomParticipant]:
    """The room and the user's participant row if they may do `action` in it.

    Unknown rooms and rooms the user is not in abort with 404 (their existence is not
    revealed); a member who may not do `action` gets a 403 saying why.
    """
    found = room_and_membership(user, room_id)
    if found is None:
        abort(404)
    room, participant = found
    if not can(participant, action, room):
        raise Forbidden(refusal(action, room))
    return room, participant
