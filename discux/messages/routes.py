"""Posting, paging back and deleting messages over HTTP (htmx, or plain forms without JS)."""

from __future__ import annotations

from urllib.parse import parse_qsl

import sqlalchemy as sa
from flask import Blueprint, abort, make_response, redirect, render_template, request, url_for
from flask_login import current_user
from markupsafe import escape

from discux.discussion.engine import agent_turns_for
from discux.errors import DiscuxError
from discux.extensions import csrf, db, limiter
from discux.messages import service
from discux.messages.history import ID_PATTERN, composer_context, earlier_context, message_view
from discux.models import Message, Room, RoomParticipant
from discux.rooms.permissions import can, room_and_membership

bp = Blueprint("messages", __name__)


def _user_key() -> str:
    return f"user:{current_user.id}" if current_user.is_authenticated else request.remote_addr


def _is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def _room_of_member(room_id: str) -> tuple[Room, RoomParticipant]:
    """The room if the signed-in user is in it; 404 otherwise (its existence stays hidden)."""
    if not current_user.is_authenticated:
        login = url_for("auth.login", next=_room_url(room_id))
        if _is_htmx():
            abort(make_response("", 401, {"HX-Redirect": login}))
        abort(redirect(login))
    # The user itself, not the proxy: each attribute read through `current_user` costs a lookup.
    found = room_and_membership(current_user._get_current_object(), room_id)  # one query
    if found is None or not can(found[1], "view", found[0]):
        abort(404)
    return found[0], found[1]


def room_id_of(message_id: str) -> str:
    """The room of message `message_id`, for the short addresses that name only the message
    (404 when there is no such message; membership is checked after, as for any room)."""
    room_id = db.session.scalar(sa.select(Message.room_id).where(
        Message.id == message_id)) if ID_PATTERN.match(message_id) else None
    if room_id is None:
        abort(404)
    return room_id


def _room_url(room_id: str, anchor: str | None = None) -> str:
    return f"/rooms/{room_id}" + (f"#{anchor}" if anchor else "")


def _form_is_utf8() -> bool:
    """Whether the raw form body decodes as UTF-8 (werkzeug would quietly patch bad bytes)."""
    raw = request.get_data(cache=True)
    try:
        if request.mimetype == "application/x-www-form-urlencoded":
            parse_qsl(raw.decode("ascii"), keep_blank_values=True, encoding="utf-8",
                      errors="strict")
        else:
            raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@bp.post("/rooms/<room_id>/messages")
@csrf.exempt  # checked below, once the raw body has been read and found to be UTF-8
@limiter.limit("60 per minute", key_func=_user_key)
def post(room_id: str):
    utf8 = _form_is_utf8()
    csrf.protect()
    room, participant = _room_of_member(room_id)
    content = request.form.get("content", "")
    humans_only = request.form.get("humans_only") == "1"
    reply_to = request.form.get("reply_to") or None
    try:
        if not utf8:
            raise service.InvalidMessage(
                "The message contains bytes that are not valid UTF-8 text; nothing was sent.",
                "content",
            )
        if reply_to is not None and not ID_PATTERN.match(reply_to):
            raise service.InvalidMessage("This form names no message to reply to; send it "
                                         "again without the reply.", "reply_to")
        # The agents it mentions start answering: their turns are stored with the message.
        message = service.post_user_message(current_user._get_current_object(), room, content,
                                            humans_only, participant=participant,
                                            reply_to=reply_to, along=agent_turns_for)
    except DiscuxError as error:
        db.session.rollback()
        status = 422 if _is_htmx() else (400 if not utf8 else error.status)
        # The quote stays while what it quotes is still there.
        replied = (message_view(room.id, reply_to)
                   if reply_to and ID_PATTERN.match(reply_to) else None)
        composer = composer_context(room, participant, text=content, error=error.message,
                                    humans_only=humans_only, reply=replied)
        if _is_htmx():
            return render_template("messages/_composer.html", composer=composer), status
        return render_template("messages/not_sent.html", room=room, composer=composer), status
    if _is_htmx():
        # The message itself reaches this page through its socket, like everyone else's.
        composer = composer_context(room, participant, humans_only=humans_only)
        return render_template("messages/_composer.html", composer=composer)
    return redirect(_room_url(room.id, f"message-{message.id}"), 303)


@bp.get("/rooms/<room_id>/messages")
def earlier(room_id: str):
    room, participant = _room_of_member(room_id)
    before = request.args.get("before") or None
    if before is not None and not ID_PATTERN.match(before):
        abort(400, "before must be a message id.")
    context = earlier_context(room, participant, before)
    if _is_htmx():
        return render_template("messages/_earlier.html", earlier=context)
    return render_template("messages/earlier.html", room=room, earlier=context)


@bp.get("/rooms/<room_id>/messages/<message_id>/delete")
def confirm_delete(room_id: str, message_id: str):
    """Without JavaScript, a message's Delete button opens this: the message and a real form."""
    room, participant = _room_of_member(room_id)
    view = message_view(room.id, message_id) if ID_PATTERN.match(message_id) else None
    service.require_may_delete(view, participant, room)
    own = view.type == "user" and view.sender_id == participant.user_id
    return render_template("messages/delete.html", room=room, message=view, own=own)


@bp.get("/messages/<message_id>/delete")
def confirm_delete_by_id(message_id: str):
    """The short address every message's Delete uses (it keeps the room page small)."""
    return confirm_delete(room_id_of(message_id), message_id)


@bp.route("/messages/<message_id>", methods=["DELETE"])
@bp.post("/messages/<message_id>/delete")
def delete_by_id(message_id: str):
    return delete(room_id_of(message_id), message_id)


@bp.route("/rooms/<room_id>/messages/<message_id>", methods=["DELETE"])
@bp.post("/rooms/<room_id>/messages/<message_id>/delete")
def delete(room_id: str, message_id: str):
    room, _ = _room_of_member(room_id)
    service.delete_message(current_user, room, message_id)
    if _is_htmx():
        # Removed here at once; every other screen gets the same through its socket.
        return f'<div id="message-{escape(message_id)}" hx-swap-oob="delete"></div>'
    return redirect(_room_url(room.id), 303)
