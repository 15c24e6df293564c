"""Room pages: the list, create, the room itself with its side panel, and every panel action."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from discux import plans, usage
from discux.errors import DiscuxError
from discux.extensions import db
from discux.messages.history import chat_context
from discux.models import Agent
from discux.rooms import service
from discux.rooms.access import room_for, sign_in_required
from discux.rooms.forms import AddAgentForm, RoleForm, RoomForm, SettingsForm, TransferForm
from discux.rooms.panel import render_room

bp = Blueprint("rooms", __name__)


def attach_error(form, error: DiscuxError) -> int:
    """Put a domain error next to its field (or above the form); returns the HTTP status."""
    field = getattr(form, error.field, None) if error.field else None
    if field is not None:
        field.errors = [*field.errors, error.message]
    else:
        form.form_errors.append(error.message)
    return 422 if error.status == 400 else error.status


def back_to_room(room_id: str, section: str | None = None):
    return redirect(url_for("rooms.show", room_id=room_id, _anchor=section), 303)


@bp.get("/rooms")
@sign_in_required
def index():
    summaries = service.rooms_for(current_user)
    return render_template(
        "rooms/index.html",
        active=[s for s in summaries if s.room.is_active],
        archived=[s for s in summaries if not s.room.is_active],
        rooms_used=plans.active_rooms_used(current_user),
        unlimited=plans.UNLIMITED,
    )


@bp.route("/rooms/new", methods=["GET", "POST"])
@sign_in_required
def new():
    form = RoomForm()
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                room = service.create_room(current_user, form.name.data, form.description.data)
            except DiscuxError as error:
                status = attach_error(form, error)
            else:
                flash(f"Room “{room.name}” is ready. Invite people from the side panel.", "info")
                return redirect(url_for("rooms.show", room_id=room.id), 303)
        else:
            status = 422
    return render_template(
        "rooms/new.html",
        form=form,
        rooms_used=plans.active_rooms_used(current_user),
        unlimited=plans.UNLIMITED,
    ), status


@bp.get("/rooms/<room_id>")
@sign_in_required
def show(room_id: str):
    room, participant = room_for(current_user, room_id, "view")
    around = request.args.get("around")
    if around:  # a search result's "jump to": the history around that message
        return render_room(room, participant, chat=chat_context(room, participant, around))
    return render_room(room, participant)


@bp.route("/rooms/<room_id>/edit", methods=["GET", "POST"])
@sign_in_required
def edit(room_id: str):
    room, _ = room_for(current_user, room_id, "edit_room")
    form = RoomForm(obj=room)
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                service.update_room(current_user, room, form.name.data, form.description.data)
            except DiscuxError as error:
                db.session.rollback()
                status = attach_error(form, error)
            else:
                flash("Room saved.", "info")
                return back_to_room(room.id)
        else:
            status = 422
    return render_template("rooms/edit.html", room=room, form=form), status


@bp.post("/rooms/<room_id>/archive")
@sign_in_required
def archive(room_id: str):
    room, _ = room_for(current_user, room_id, "archive")
    service.archive_room(current_user, room)
    flash(f"“{room.name}” is archived: read-only, and it no longer counts toward the owner's "
          "active rooms.", "info")
    return back_to_room(room.id)


@bp.post("/rooms/<room_id>/unarchive")
@sign_in_required
def unarchive(room_id: str):
    room, _ = room_for(current_user, room_id, "archive")
    service.unarchive_room(current_user, room)
    flash(f"“{room.name}” is active again.", "info")
    return back_to_room(room.id)


@bp.route("/rooms/<room_id>/delete", methods=["GET", "POST"])
@sign_in_required
def delete(room_id: str):
    room, _ = room_for(current_user, room_id, "delete_room")
    if request.method == "GET":
        return render_template("rooms/delete.html", room=room)
    name = room.name
    service.delete_room(current_user, room)
    flash(f"Room “{name}” and everything in it was deleted.", "info")
    return redirect(url_for("rooms.index"), 303)


@bp.post("/rooms/<room_id>/settings")
@sign_in_required
def settings(room_id: str):
    room, participant = room_for(current_user, room_id, "edit_settings")
    form = SettingsForm()
    if form.validate_on_submit():
        try:
            service.update_settings(
                current_user, room, form.max_agents.data, form.allow_agent_creation.data,
                form.auto_summarize.data,
            )
            usage.set_room_budget(current_user, room, form.monthly_token_budget.data)
        except DiscuxError as error:
            db.session.rollback()
            return render_room(room, participant, attach_error(form, error), settings_form=form)
        flash("Settings saved.", "info")
        return back_to_room(room.id, "settings")
    return render_room(room, participant, 422, settings_form=form)


@bp.post("/rooms/<room_id>/agents")
@sign_in_required
def add_agent(room_id: str):
    room, participant = room_for(current_user, room_id, "add_agent")
    form = AddAgentForm()
    if not form.validate_on_submit():
        return render_room(room, participant, 422, add_agent_form=form)
    agent = db.session.get(Agent, form.agent_id.data)
    try:
        if agent is None:
            raise DiscuxError("Choose one of your agents or a public one.", "agent_id")
        service.add_agent_to_room(current_user, room, agent)
    except DiscuxError as error:
        return render_room(room, participant, attach_error(form, error), add_agent_form=form)
    flash(f"{agent.name} joined the room.", "info")
    return back_to_room(room.id, "agents")


@bp.post("/rooms/<room_id>/agents/<agent_id>/remove")
@sign_in_required
def remove_agent(room_id: str, agent_id: str):
    room, _ = room_for(current_user, room_id, "remove_agent")
    service.remove_agent_from_room(current_user, room, agent_id)
    flash("Agent removed from the room.", "info")
    return back_to_room(room.id, "agents")


@bp.post("/rooms/<room_id>/members/<user_id>/role")
@sign_in_required
def change_role(room_id: str, user_id: str):
    room, _ = room_for(current_user, room_id, "manage_members")
    form = RoleForm()
    role = form.role.data if form.validate_on_submit() else None
    target = service.change_role(current_user, room, user_id, role or "")
    flash(f"{target.user.display_name} is now {'an admin' if role == 'admin' else 'a member'}.",
          "info")
    return back_to_room(room.id, "people")


@bp.post("/rooms/<room_id>/members/<user_id>/remove")
@sign_in_required
def remove_member(room_id: str, user_id: str):
    room, _ = room_for(current_user, room_id, "manage_members")
    service.remove_member(current_user, room, user_id)
    flash("They were removed from the room.", "info")
    return back_to_room(room.id, "people")


@bp.post("/rooms/<room_id>/transfer")
@sign_in_required
def transfer(room_id: str):
    room, participant = room_for(current_user, room_id, "transfer_ownership")
    form = TransferForm()
    if not form.validate_on_submit():
        return render_room(room, participant, 422, transfer_form=form)
    try:
        service.transfer_ownership(current_user, room, form.new_owner_id.data)
    except DiscuxError as error:
        room, participant = room_for(current_user, room_id, "view")
        return render_room(room, participant, attach_error(form, error), transfer_form=form)
    flash("Ownership transferred. You are now an admin of this room.", "info")
    return back_to_room(room_id, "people")


@bp.post("/rooms/<room_id>/leave")
@sign_in_required
def leave(room_id: str):
    room, _ = room_for(current_user, room_id, "leave")
    name = room.name
    service.leave_room(current_user, room)
    flash(f"You left “{name}”.", "info")
    return redirect(url_for("rooms.index"), 303)
