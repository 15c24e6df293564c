"""Message actions over HTTP: a message's permalink, Edit, Reply, Regenerate, its earlier
versions, and the room's Clear history. Each works as htmx in place or as a plain page and form
post without JavaScript; the rules live in discux.messages.service and discussion.engine."""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa
from flask import Blueprint, abort, flash, make_response, redirect, render_template, request
from flask_login import current_user

from discux.discussion.engine import engine_for, regenerate_reply
from discux.errors import DiscuxError, Forbidden
from discux.extensions import db, limiter
from discux.messages import service, versions
from discux.messages.history import ID_PATTERN, composer_context, message_view
from discux.messages.routes import _is_htmx, _room_of_member, _user_key, room_id_of
from discux.models import Message
from discux.rooms.permissions import can

bp = Blueprint("message_actions", __name__)


def _message_or_404(room_id: str, message_id: str):
    view = message_view(room_id, message_id) if ID_PATTERN.match(message_id) else None
    if view is None:
        abort(404)
    return view


def _permalink(room_id: str, message_id: str) -> str:
    """The room page around the message, scrolled to it (it may be older than the newest page)."""
    return f"/rooms/{room_id}?around={message_id}#message-{message_id}"


def _article(room, participant, view) -> str:
    own = view.type == "user" and view.sender_id == participant.user_id
    return render_template("messages/_message.html", message=view, own=own,
                           can_delete=service.may_delete(view, participant, room), oob=None)


def _go(url: str):
    """After a plain form: see the page; htmx callers are told where to go."""
    if _is_htmx():
        return make_response("", 204, {"HX-Redirect": url})
    return redirect(url, 303)


@bp.get("/messages/<message_id>")
def page(message_id: str):
    """A message's own page, what its time links to: without JavaScript, where its actions are
    (with it, static/message-actions.js puts them on the message itself)."""
    room, participant = _room_of_member(room_id_of(message_id))
    view = _message_or_404(room.id, message_id)
    replaced_by = view.replaced_by_id
    if replaced_by:  # an earlier version: shown here as it was, with a way to the newest
        view = dataclasses.replace(view, replaced_by_id=None)
    own = view.type == "user" and view.sender_id == participant.user_id
    may_post = can(participant, "post", room)
    actions = {
        "reply": may_post and view.type != "system" and not replaced_by,
        "edit": service.may_edit(view, participant, room),
        "regenerate": (may_post and view.type == "agent" and not replaced_by
                       and view.status != "streaming"),
        "delete": service.may_delete(view, participant, room),
        "versions": bool(view.replaces_id),
    }
    return render_template("messages/show.html", room=room, message=view, own=own,
                           actions=actions, replaced_by=replaced_by,
                           around=_permalink(room.id, replaced_by or view.id))


@bp.get("/rooms/<room_id>/messages/<message_id>")
def show(room_id: str, message_id: str):
    """A message's own address: its article for htmx (Cancel an edit), else the room at it."""
    room, participant = _room_of_member(room_id)
    view = _message_or_404(room.id, message_id)
    if _is_htmx():
        return _article(room, participant, view)
    return redirect(_permalink(room.id, view.id), 303)


@bp.get("/rooms/<room_id>/messages/<message_id>/source")
def source(room_id: str, message_id: str):
    """The message's text as it was written (Markdown), for Copy."""
    _room_of_member(room_id)
    view = _message_or_404(room_id, message_id)
    return view.content, 200, {"Content-Type": "text/plain; charset=utf-8"}


@bp.route("/rooms/<room_id>/messages/<message_id>/edit", methods=["GET", "POST"])
@limiter.limit("60 per minute", key_func=_user_key, methods=["POST"])
def edit(room_id: str, message_id: str):
    room, participant = _room_of_member(room_id)
    view = message_view(room.id, message_id) if ID_PATTERN.match(message_id) else None
    service.require_may_edit(view, participant, room)
    text, error, status = view.content, None, 200
    if request.method == "POST":
        text = request.form.get("content", "")
        try:
            service.edit_message(current_user._get_current_object(), room, view.id, text)
        except service.InvalidMessage as refused:
            db.session.rollback()
            error, status = refused.message, 422
        else:
            if _is_htmx():
                return _article(room, participant, message_view(room.id, view.id))
            return redirect(_permalink(room.id, view.id), 303)
    template = "messages/_edit_form.html" if _is_htmx() else "messages/edit.html"
    return render_template(template, room=room, message=view, text=text, error=error), status


@bp.get("/rooms/<room_id>/messages/<message_id>/reply")
def reply(room_id: str, message_id: str):
    """Without JavaScript, Reply opens this: the message and a composer that answers it."""
    room, participant = _room_of_member(room_id)
    view = _message_or_404(room.id, message_id)
    if not can(participant, "post", room):
        raise Forbidden("You can read this room but not post in it.")
    return render_template("messages/reply.html", room=room, message=view,
                           composer=composer_context(room, participant, reply=view))


@bp.route("/rooms/<room_id>/messages/<message_id>/regenerate", methods=["GET", "POST"])
@limiter.limit("20 per minute", key_func=_user_key, methods=["POST"])
def regenerate(room_id: str, message_id: str):
    room, participant = _room_of_member(room_id)
    view = _message_or_404(room.id, message_id)
    if view.type != "agent":
        abort(404)
    if not can(participant, "post", room):
        raise Forbidden("You can read this room but not ask its agents.")
    if request.method == "GET":
        return render_template("messages/regenerate.html", room=room, reply=view)
    agent = regenerate_reply(room, view.id)
    if _is_htmx():
        return "", 204  # the new reply reaches this page through its socket
    flash(f"{agent.name} is answering again.", "info")
    return redirect(_permalink(room.id, view.id), 303)


@bp.get("/rooms/<room_id>/messages/<message_id>/versions")
def earlier_versions(room_id: str, message_id: str):
    room, _ = _room_of_member(room_id)
    if not ID_PATTERN.match(message_id):
        abort(404)
    reply = db.session.scalar(sa.select(Message).where(
        Message.id == message_id, Message.room_id == room.id, Message.type == "agent"))
    if reply is None:
        abort(404)
    found = versions.earlier_versions(reply)
    if _is_htmx():
        return render_template("messages/_versions.html", versions=found)
    return render_template("messages/versions.html", room=room, reply=reply, versions=found)


@bp.route("/rooms/<room_id>/clear", methods=["GET", "POST"])
@limiter.limit("10 per minute", key_func=_user_key, methods=["POST"])
def clear(room_id: str):
    """Clear history: a page that asks first, then the form post that clears."""
    room, participant = _room_of_member(room_id)
    if not can(participant, "clear_history", room):
        raise Forbidden("Only the owner and admins may clear this room's history."
                        if room.is_active else "This room is archived: it is read-only.")
    if request.method == "POST":
        try:
            engine_for().cancel(room.id)  # nothing goes on writing into what is cleared
            service.clear_history(current_user._get_current_object(), room)
        except DiscuxError:
            db.session.rollback()
            raise
        flash("The history is cleared.", "info")
        return _go(f"/rooms/{room.id}")
    count = db.session.scalar(sa.select(sa.func.count()).select_from(Message)
                              .where(Message.room_id == room.id))
    return render_template("messages/clear.html", room=room, count=count, error=None)
