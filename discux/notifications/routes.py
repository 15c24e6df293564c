"""Read markers from the open tab, and notification settings."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, url_for
from flask_login import current_user, login_required

from discux.notifications import service
from discux.notifications.forms import NotificationSettingsForm, ReadForm
from discux.rooms.access import room_for, sign_in_required
from discux.rooms.read_marks import mark_read

bp = Blueprint("notifications", __name__)


@bp.post("/rooms/<room_id>/read")
@sign_in_required
def read(room_id: str):
    """The tab showed the room up to this message (sent by static/notifications.js)."""
    room, participant = room_for(current_user, room_id, "view")
    form = ReadForm()
    if not form.validate_on_submit():
        return {"error": {"code": "invalid", "message": "Say which message of this room was "
                          "read, as message_id.", "field": "message_id"}}, 422
    if not service.message_in_room(room.id, form.message_id.data):
        return {"error": {"code": "not_found", "message": "That message is not in this room.",
                          "field": "message_id"}}, 404
    mark_read(participant, form.message_id.data)
    return "", 204


def notification_settings(user) -> dict:
    """What the Settings page's Notifications section shows."""
    return {
        "mail_available": service.mention_mail_available(current_app),
        "email_mentions": bool(user.email_mentions),
        "form": NotificationSettingsForm(formdata=None),
    }


@bp.post("/settings/notifications")
@login_required
def settings():
    form = NotificationSettingsForm()
    if not form.validate_on_submit():
        flash("Your page had expired: nothing was changed. Try again.", "error")
        return redirect(url_for("settings.index", _anchor="notifications"), 303)
    service.set_email_mentions(current_user, form.email_mentions.data)
    if form.email_mentions.data and not service.mention_mail_available(current_app):
        flash("Saved, but this server has no mail set up, so no email goes out yet.", "info")
    else:
        flash("Mention emails are on." if form.email_mentions.data
              else "Mention emails are off.", "info")
    return redirect(url_for("settings.index", _anchor="notifications"), 303)
