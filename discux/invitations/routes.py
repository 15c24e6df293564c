"""Invitation pages: make a link in the room, revoke it, and open or accept it."""

from __future__ import annotations

import click
from flask import Blueprint, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user

from discux.extensions import db, limiter
from discux.external import external_url
from discux.invitations import service
from discux.invitations.forms import InviteForm
from discux.invitations.service import InvitationUnavailable
from discux.models import Room
from discux.rooms.access import room_for, sign_in_required
from discux.rooms.panel import invitations_context
from discux.rooms.permissions import membership
from discux.rooms.service import agent_count, member_count

bp = Blueprint("invitations", __name__, cli_group="invitations")


def invite_url(token: str) -> str:
    return external_url("invitations.show", token=token)


def _render_section_or_page(room, participant, status: int, **section):
    # htmx (the room's Invite dialog) swaps just the section; without JavaScript the whole page.
    fragment = request.headers.get("HX-Request")
    template = "invitations/_section.html" if fragment else "invitations/index.html"
    response = make_response(render_template(
        template, **invitations_context(room, participant, **section)), status)
    response.vary.add("HX-Request")
    return response


@bp.get("/rooms/<room_id>/invitations")
@sign_in_required
def index(room_id: str):
    room, participant = room_for(current_user, room_id, "invite")
    return _render_section_or_page(room, participant, 200)


@bp.post("/rooms/<room_id>/invitations")
@sign_in_required
def create(room_id: str):
    room, participant = room_for(current_user, room_id, "invite")
    form = InviteForm()
    if not form.validate_on_submit():
        return _render_section_or_page(room, participant, 422, invite_form=form)
    _, token = service.create_invitation(
        current_user, room, form.email.data, form.expiry.data
    )
    # The token is stored only as a hash: this response is the one time the link is shown.
    return _render_section_or_page(
        room, participant, 201, invite_form=None, new_invite_link=invite_url(token),
    )


@bp.post("/rooms/<room_id>/invitations/<invitation_id>/revoke")
@sign_in_required
def revoke(room_id: str, invitation_id: str):
    room, participant = room_for(current_user, room_id, "invite")
    service.revoke_invitation(current_user, room, invitation_id)
    if request.headers.get("HX-Request"):
        return _render_section_or_page(room, participant, 200)
    flash("Invitation revoked: that link no longer works.", "info")
    return redirect(url_for("invitations.index", room_id=room.id), 303)


def _masked(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}…@{domain}"


def _unavailable(error: InvitationUnavailable, room: Room | None):
    invited_email = error.invitation.email if error.invitation else None
    return render_template(
        "invitations/show.html",
        state=error.state,
        message=error.message,
        room=room if error.state != "unknown" else None,
        invited_email=_masked(invited_email) if invited_email else None,
    ), error.status


@bp.get("/invite/<token>")
@limiter.limit("60/minute")
@sign_in_required
def show(token: str):
    invitation = service.invitation_for_token(token)
    room = db.session.get(Room, invitation.room_id) if invitation else None
    if room is not None and membership(current_user, room.id) is not None:
        flash(f"You are already in “{room.name}”.", "info")
        return redirect(url_for("rooms.show", room_id=room.id))
    try:
        service.check_invitation(current_user, invitation, room)
    except InvitationUnavailable as error:
        return _unavailable(error, room)
    return render_template(
        "invitations/show.html",
        state="open",
        room=room,
        token=token,
        members=member_count(room),
        agents=agent_count(room),
        inviter=invitation.inviter,
    )


@bp.post("/invite/<token>")
@limiter.limit("20/minute")
@sign_in_required
def accept(token: str):
    try:
        room = service.accept_invitation(current_user, token)
    except InvitationUnavailable as error:
        invitation = error.invitation
        return _unavailable(error, db.session.get(Room, invitation.room_id) if invitation else None)
    flash(f"Welcome to “{room.name}”.", "info")
    return redirect(url_for("rooms.show", room_id=room.id), 303)


@bp.cli.command("purge")
def purge_command() -> None:
    """Delete invitations whose expiry date has passed."""
    count = service.purge_expired()
    click.echo(f"Deleted {count} expired invitation{'s' if count != 1 else ''}.")
