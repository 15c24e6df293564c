"""Room controls for the agents: Stop, Continue, Summarize, the brief, context receipts."""

from __future__ import annotations

import json

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from discux.discussion import briefs
from discux.discussion.engine import continue_discussion, engine_for, retry_reply
from discux.errors import DiscuxError
from discux.extensions import db
from discux.models import Message, Room
from discux.rooms.permissions import can, membership

bp = Blueprint("discussion", __name__, url_prefix="/rooms/<room_id>")


def room_for(room_id: str, action: str) -> Room:
    """The room if the current user may do `action` there; 404 for non-members, 403 else."""
    room = db.session.get(Room, room_id)
    participant = membership(current_user, room_id) if room else None
    if room is None or participant is None:
        abort(404)
    if not can(participant, action, room):
        abort(403)
    return room


def done(message: str):
    """htmx callers get 204 (the socket shows the result); plain forms go back to the room."""
    if request.headers.get("HX-Request"):
        return "", 204
    flash(message, "info")
    return redirect(url_for("rooms.show", room_id=request.view_args["room_id"]), 303)


@bp.post("/stop")
@login_required
def stop(room_id: str):
    room_for(room_id, "post")
    engine_for().cancel(room_id)
    return done("Agents stopped.")


@bp.post("/continue")
@login_required
def continue_(room_id: str):
    room = room_for(room_id, "post")
    agents = continue_discussion(room)
    return done(f"Continuing with {', '.join(a.name for a in agents)}." if agents
                else "No agent was waiting for its turn.")


@bp.post("/summarize")
@login_required
def summarize(room_id: str):
    room_for(room_id, "summarize")
    engine_for().queue_summary(room_id, requested_by=current_user.id)
    return done("Summarizing: the brief will update in a moment.")


@bp.get("/messages/<message_id>/retry")
@login_required
def confirm_retry(room_id: str, message_id: str):
    """Without JavaScript, an interrupted reply's Retry button opens this: a real form."""
    room = room_for(room_id, "post")
    reply = db.session.scalar(
        sa.select(Message).where(Message.id == message_id, Message.room_id == room_id))
    if reply is None or reply.type != "agent":
        abort(404)
    return render_template("discussion/retry.html", room=room, reply=reply)


@bp.post("/messages/<message_id>/retry")
@login_required
def retry(room_id: str, message_id: str):
    room = room_for(room_id, "post")
    agent = retry_reply(room, message_id)
    return done(f"{agent.name} will answer again.")


@bp.route("/brief", methods=["GET", "POST"])
@login_required
def brief(room_id: str):
    room = room_for(room_id, "view")
    participant = membership(current_user, room_id)
    allowed_edit = can(participant, "post", room)
    error, status = None, 200
    current = briefs.current_brief(room_id)
    draft = current.content if current else ""
    base_version = current.version if current else 0
    if request.method == "POST":
        if not allowed_edit:
            abort(403)
        draft = request.form.get("content", "")
        raw_base = request.form.get("base_version", "")
        try:
            if not raw_base.isdigit():
                raise DiscuxError("This form does not say which version it edits. Copy your "
                                  "text, reload the page and save again.", "content")
            briefs.add_version(room, draft, source="human", author=current_user,
                               base_version=int(raw_base))
        except briefs.BriefConflict as conflict:
            # The form now edits the newer version; the person's text stays in it.
            error, status = conflict.message, conflict.status
            base_version = conflict.latest.version if conflict.latest else 0
        except DiscuxError as failure:
            error, status = failure.message, 422
            base_version = int(raw_base) if raw_base.isdigit() else base_version
        else:
            flash("Brief saved.", "info")
            return redirect(url_for("discussion.brief", room_id=room_id), 303)
    return render_template(
        "discussion/brief.html", room=room, versions=briefs.brief_versions(room_id),
        allowed_edit=allowed_edit, draft=draft, error=error, base_version=base_version,
    ), status


@bp.get("/messages/<message_id>/receipt")
@login_required
def receipt(room_id: str, message_id: str):
    room_for(room_id, "view")
    message = db.session.scalar(
        sa.select(Message).where(Message.id == message_id, Message.room_id == room_id))
    if message is None or message.type != "agent":
        abort(404)
    data = json.loads(message.context_receipt) if message.context_receipt else None
    sent = []
    if data and data.get("message_ids"):
        by_id = {m.id: m for m in db.session.scalars(
            sa.select(Message).where(Message.id.in_(data["message_ids"]),
                                     Message.room_id == room_id))}
        sent = [by_id[i] for i in data["message_ids"] if i in by_id]
    return render_template("discussion/_receipt.html", message=message, receipt=data, sent=sent)
