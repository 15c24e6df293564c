"""The JSON API, /api/v1: agents, rooms and their people, agents, messages, invitations and search.

Each route reads JSON (discux.api.body), calls the same domain function the pages call, and
answers with a shape from discux.api.shapes. Errors are `{"error": {"code", "message",
"field"?}}`: 401 without a valid token, 404 for rooms the caller is not in, 403 for what their
role may not do, 422 for a field a rule refused, 400 for a malformed request.
"""

from __future__ import annotations

from dataclasses import replace

from flask import Blueprint, abort, g, jsonify, request
from werkzeug.datastructures import MultiDict

from discux import usage
from discux.agents import service as agents
from discux.agents.service import AgentFields, InvalidAgent
from discux.api.auth import Unauthorized, rate_limit_key, require_token
from discux.api.body import MISSING, BadRequest, Body, InvalidField, json_body, query_int
from discux.api.shapes import (
    agent_shape,
    invitation_shape,
    member_shape,
    room_agent_shape,
    room_shape,
    search_results_shape,
    settings_shape,
    user_shape,
)
from discux.auth.accounts import DISABLED_MESSAGE
from discux.discussion.engine import agent_turns_for
from discux.errors import DiscuxError
from discux.extensions import csrf, db, limiter
from discux.invitations import service as invitations
from discux.invitations.forms import InviteForm
from discux.invitations.routes import invite_url
from discux.messages import service as messages
from discux.messages.history import ID_PATTERN, page_before
from discux.models import Room, User
from discux.rooms import service as rooms
from discux.rooms.access import room_for
from discux.rooms.forms import RoomForm
from discux.rooms.panel import InvitationRow, agents_of, invitation_rows, people_of
from discux.rooms.permissions import membership
from discux.search import service as search

API_RATE_LIMIT = "120 per minute"
MESSAGE_PAGE_DEFAULT = 50
MESSAGE_PAGE_MAX = 100

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)  # Bearer tokens only: a cross-site request carries no credentials here
limiter.shared_limit(API_RATE_LIMIT, scope="api", key_func=rate_limit_key)(bp)


def _per_user() -> str:
    return f"api-user:{g.api_user.id}"


@bp.before_request
def authenticate() -> None:
    token = require_token()
    user = token.user  # loaded with the token
    if user.disabled_at is not None:
        # Kept, not revoked: the token works again once an admin enables the account.
        raise Unauthorized(DISABLED_MESSAGE, code="account_disabled")
    g.api_user = user


@bp.after_request
def no_store(response):
    response.headers.setdefault("Cache-Control", "no-store")
    return response


@bp.errorhandler(DiscuxError)
def domain_error(error: DiscuxError):
    """Every refusal in the one error shape; nothing a refused request did stays written."""
    db.session.rollback()
    status, code = error.status, error.code
    if type(error) is DiscuxError:
        # A rule refused the request: an input it names (422) or the room's current state (409).
        status, code = (422, "invalid") if error.field else (409, "conflict")
    body = {"code": code, "message": error.message}
    if error.field:
        body["field"] = error.field
    if isinstance(error, InvalidAgent) and len(error.problems) > 1:
        body["fields"] = error.problems
    response = jsonify({"error": body})
    if isinstance(error, Unauthorized):
        response.headers["WWW-Authenticate"] = 'Bearer realm="discux"'
    return response, status


def me() -> User:
    return g.api_user


def _nothing_to_change(*names: str) -> InvalidField:
    return InvalidField(f"Nothing to change: send at least one of {', '.join(names)}.")


# ---- who am I ----

@bp.get("/me")
def whoami():
    return jsonify(user_shape(me()))


# ---- agents ----

AGENT_TEXT_FIELDS = ("name", "prompt", "emoji", "color", "style")


def _agent_fields(body: Body, base: AgentFields) -> AgentFields:
    """`base` with whatever the body sends; the agents service judges the result."""
    changes = {}
    for name in AGENT_TEXT_FIELDS:
        if (value := body.string(name)) is not MISSING:
            changes[name] = value
    if (is_public := body.boolean("is_public")) is not MISSING:
        changes["is_public"] = is_public
    if (model := body.string("model", nullable=True)) is not MISSING:
        changes["model"] = model
    return replace(base, **changes)


@bp.get("/agents")
def list_agents():
    return jsonify({"agents": [agent_shape(agent, me()) for agent in agents.agents_of(me())]})


@bp.get("/agents/public")
def public_agents():
    style = request.args.get("style") or None
    search_text = (request.args.get("q") or "").strip()[:100]
    found = agents.public_agents(style=style, search=search_text)
    return jsonify({"agents": [agent_shape(agent, me()) for agent in found]})


@bp.post("/agents")
def create_agent():
    fields = _agent_fields(json_body(), AgentFields(name="", prompt=""))
    agent = agents.create_agent(me(), fields)
    return jsonify(agent_shape(agent, me())), 201


@bp.get("/agents/<agent_id>")
def show_agent(agent_id: str):
    agent = agents.visible_agent(me(), agent_id) or abort(404)
    return jsonify(agent_shape(agent, me()))


@bp.patch("/agents/<agent_id>")
def update_agent(agent_id: str):
    agent = agents.own_agent(me(), agent_id) or abort(404)
    body = json_body()
    if not body.sent(*AGENT_TEXT_FIELDS, "is_public", "model"):
        raise _nothing_to_change(*AGENT_TEXT_FIELDS, "is_public", "model")
    agent = agents.update_agent(agent, _agent_fields(body, AgentFields.of(agent)))
    return jsonify(agent_shape(agent, me()))


@bp.delete("/agents/<agent_id>")
def delete_agent(agent_id: str):
    agent = agents.own_agent(me(), agent_id) or abort(404)
    agents.delete_agent(agent)
    return "", 204


# ---- rooms ----

def _room_details(room: Room, role: str) -> dict:
    return room_shape(room, role, member_count=rooms.member_count(room),
                      agent_count=rooms.agent_count(room),
                      monthly_token_budget=room.settings.monthly_token_budget,
                      usage_this_month=usage.meter_shape(usage.room_this_month(room.id)))


def _check_room_text(name: str, description: str | None) -> None:
    """The room form's rules, checked before anything is written (a PATCH may do two writes)."""
    form = RoomForm(formdata=MultiDict({"name": name, "description": description or ""}),
                    meta={"csrf": False})
    if not form.validate():
        field, problems = next(iter(form.errors.items()))
        raise InvalidField(problems[0], field)


@bp.get("/rooms")
def list_rooms():
    return jsonify({"rooms": [
        room_shape(s.room, s.role, member_count=s.member_count,
                   last_activity=s.last_activity.isoformat(timespec="milliseconds")
                   if s.last_activity else None)
        for s in rooms.rooms_for(me())
    ]})


@bp.post("/rooms")
def create_room():
    body = json_body()
    name = body.string("name", required=True)
    description = body.string("description", nullable=True)
    room = rooms.create_room(me(), name, None if description is MISSING else description)
    return jsonify(_room_details(room, "owner")), 201


@bp.get("/rooms/<room_id>")
def show_room(room_id: str):
    room, participant = room_for(me(), room_id, "view")
    return jsonify(_room_details(room, participant.role))


@bp.patch("/rooms/<room_id>")
def update_room(room_id: str):
    room, participant = room_for(me(), room_id, "view")
    body = json_body()
    name = body.string("name")
    description = body.string("description", nullable=True)
    is_active = body.boolean("is_active")
    budget = body.integer("monthly_token_budget", nullable=True)
    edits = name is not MISSING or description is not MISSING
    if budget is not MISSING:
        # Owner and admins only, checked (and the value judged) before anything is written.
        rooms.require_participant(me(), room, "edit_settings")
        usage.check_budget_value(budget, "monthly token budget", "monthly_token_budget")
        if not edits and is_active is MISSING:
            usage.set_room_budget(me(), room, budget)
            return jsonify(_room_details(room, participant.role))
    if not edits and is_active is MISSING:
        raise _nothing_to_change("name", "description", "is_active", "monthly_token_budget")
    # Who may is asked before what is sent is judged, as on the pages.
    rooms.require_participant(me(), room, "edit_room" if is_active is MISSING else "archive")
    new_name = room.name if name is MISSING else name
    new_description = room.description if description is MISSING else description
    if edits:
        _check_room_text(new_name, new_description)
    # Unarchive first (an archived room cannot be edited), archive last (likewise).
    if is_active is True and not room.is_active:
        rooms.unarchive_room(me(), room)
    if edits:
        rooms.update_room(me(), room, new_name, new_description)
    if budget is not MISSING:
        usage.set_room_budget(me(), room, budget)
    if is_active is False and room.is_active:
        rooms.archive_room(me(), room)
    return jsonify(_room_details(room, participant.role))


@bp.delete("/rooms/<room_id>")
def delete_room(room_id: str):
    room, _ = room_for(me(), room_id, "delete_room")
    rooms.delete_room(me(), room)
    return "", 204


@bp.get("/rooms/<room_id>/settings")
def show_settings(room_id: str):
    room, _ = room_for(me(), room_id, "view")
    return jsonify(settings_shape(room.settings))


@bp.patch("/rooms/<room_id>/settings")
def update_settings(room_id: str):
    room, _ = room_for(me(), room_id, "edit_settings")
    body = json_body()
    max_agents = body.integer("max_agents")
    allow = body.boolean("allow_agent_creation")
    auto_summarize = body.boolean("auto_summarize")
    if max_agents is MISSING and allow is MISSING and auto_summarize is MISSING:
        raise _nothing_to_change("max_agents", "allow_agent_creation", "auto_summarize")
    current = room.settings
    settings = rooms.update_settings(
        me(), room,
        current.max_agents if max_agents is MISSING else max_agents,
        bool(current.allow_agent_creation) if allow is MISSING else allow,
        bool(current.auto_summarize) if auto_summarize is MISSING else auto_summarize,
    )
    return jsonify(settings_shape(settings))


# ---- people ----

@bp.get("/rooms/<room_id>/members")
def list_members(room_id: str):
    room, participant = room_for(me(), room_id, "view")
    return jsonify({"members": [member_shape(row) for row in people_of(room, participant)]})


def _member(room: Room, user_id: str) -> dict:
    viewer = membership(me(), room.id)
    row = next(row for row in people_of(room, viewer) if row.user.id == user_id)
    return member_shape(row)


@bp.patch("/rooms/<room_id>/members/<user_id>")
def change_role(room_id: str, user_id: str):
    room, _ = room_for(me(), room_id, "manage_members")
    role = json_body().string("role", required=True)
    rooms.change_role(me(), room, user_id, role)
    return jsonify(_member(room, user_id))


@bp.delete("/rooms/<room_id>/members/<user_id>")
def remove_member(room_id: str, user_id: str):
    room, _ = room_for(me(), room_id, "manage_members")
    rooms.remove_member(me(), room, user_id)
    return "", 204


@bp.post("/rooms/<room_id>/transfer")
def transfer_ownership(room_id: str):
    room, _ = room_for(me(), room_id, "transfer_ownership")
    new_owner_id = json_body().string("new_owner_id", required=True)
    rooms.transfer_ownership(me(), room, new_owner_id)
    room, participant = room_for(me(), room_id, "view")
    return jsonify(_room_details(room, participant.role))


@bp.post("/rooms/<room_id>/leave")
def leave_room(room_id: str):
    room, _ = room_for(me(), room_id, "leave")
    rooms.leave_room(me(), room)
    return "", 204


# ---- agents in a room ----

@bp.get("/rooms/<room_id>/agents")
def list_room_agents(room_id: str):
    room, _ = room_for(me(), room_id, "view")
    return jsonify({"agents": [room_agent_shape(row) for row in agents_of(room)]})


@bp.post("/rooms/<room_id>/agents")
def add_room_agent(room_id: str):
    room, _ = room_for(me(), room_id, "add_agent")
    agent_id = json_body().string("agent_id", required=True)
    # Someone else's private agent is answered like an unknown one: its existence stays hidden.
    agent = agents.visible_agent(me(), agent_id)
    if agent is None:
        raise InvalidField("Choose one of your agents or a public one.", "agent_id")
    rooms.add_agent_to_room(me(), room, agent)
    row = next(row for row in agents_of(room) if row.agent.id == agent.id)
    return jsonify(room_agent_shape(row)), 201


@bp.delete("/rooms/<room_id>/agents/<agent_id>")
def remove_room_agent(room_id: str, agent_id: str):
    room, _ = room_for(me(), room_id, "remove_agent")
    rooms.remove_agent_from_room(me(), room, agent_id)
    return "", 204


# ---- messages ----

@bp.get("/rooms/<room_id>/messages")
def list_messages(room_id: str):
    room, _ = room_for(me(), room_id, "view")
    before = request.args.get("before") or None
    if before is not None and not ID_PATTERN.match(before):
        raise BadRequest("before must be a message id (from next_before).", "before")
    limit = query_int("limit", MESSAGE_PAGE_DEFAULT, 1, MESSAGE_PAGE_MAX)
    page, has_earlier = page_before(room.id, before, limit)
    return jsonify({
        "messages": [messages.message_payload(message) for message in reversed(page)],
        "next_before": page[0].id if has_earlier and page else None,
    })


@bp.post("/rooms/<room_id>/messages")
@limiter.limit("60 per minute", key_func=_per_user, override_defaults=False)
def post_message(room_id: str):
    room, participant = room_for(me(), room_id, "post")
    body = json_body()
    content = body.string("content", required=True)
    humans_only = body.boolean("humans_only")
    reply_to = body.string("reply_to_id", nullable=True)
    reply_to = None if reply_to is MISSING else reply_to
    if reply_to is not None and not ID_PATTERN.match(reply_to):
        raise InvalidField("reply_to_id must be the id of a message of this room.", "reply_to_id")
    # Exactly as the page's composer: the agents it mentions start answering.
    message = messages.post_user_message(me(), room, content, humans_only is True,
                                         participant=participant, reply_to=reply_to,
                                         along=agent_turns_for)
    return jsonify(messages.message_payload(message)), 201


@bp.patch("/rooms/<room_id>/messages/<message_id>")
@limiter.limit("60 per minute", key_func=_per_user, override_defaults=False)
def edit_message(room_id: str, message_id: str):
    room, _ = room_for(me(), room_id, "view")
    content = json_body().string("content", required=True)
    message = messages.edit_message(me(), room, message_id, content)
    return jsonify(messages.message_payload(message))


@bp.delete("/rooms/<room_id>/messages/<message_id>")
def delete_message(room_id: str, message_id: str):
    room, _ = room_for(me(), room_id, "view")
    messages.delete_message(me(), room, message_id)
    return "", 204


# ---- invitations ----

@bp.get("/rooms/<room_id>/invitations")
def list_invitations(room_id: str):
    room, _ = room_for(me(), room_id, "invite")
    return jsonify({"invitations": [invitation_shape(row) for row in invitation_rows(room)]})


@bp.post("/rooms/<room_id>/invitations")
def create_invitation(room_id: str):
    room, _ = room_for(me(), room_id, "invite")
    body = json_body(optional=True)
    email = body.string("email", nullable=True)
    expiry = body.string("expiry")
    if email:
        # The invite form's rule for what an email looks like.
        form = InviteForm(formdata=MultiDict({"email": email}), meta={"csrf": False})
        if not form.email.validate(form):
            raise InvalidField(form.email.errors[0], "email")
    invitation, token = invitations.create_invitation(
        me(), room, email or None, invitations.DEFAULT_EXPIRY if expiry is MISSING else expiry
    )
    row = InvitationRow(invitation, invitations.status_of(invitation), me())
    # The token is stored only as a hash: this response is the one time it is shown.
    return jsonify({**invitation_shape(row), "token": token, "url": invite_url(token)}), 201


@bp.delete("/rooms/<room_id>/invitations/<invitation_id>")
def revoke_invitation(room_id: str, invitation_id: str):
    room, _ = room_for(me(), room_id, "invite")
    invitation = invitations.revoke_invitation(me(), room, invitation_id)
    row = InvitationRow(invitation, invitations.status_of(invitation), None)
    return jsonify(invitation_shape(row))


@bp.post("/invitations/accept")
@limiter.limit("20 per minute", key_func=_per_user, override_defaults=False)
def accept_invitation():
    token = json_body().string("token", required=True)
    room = invitations.accept_invitation(me(), token)
    return jsonify(_room_details(room, membership(me(), room.id).role))


# ---- search ----

@bp.get("/search")
def search_messages():
    try:
        results = search.search_messages(
            me(),
            request.args.get("q", ""),
            room_id=request.args.get("room_id") or None,
            order=request.args.get("order") or "relevance",
            before=request.args.get("before") or None,
            page=query_int("page", 1, 1, 10_000),
            per_page=query_int("per_page", 20, 1, search.MAX_PER_PAGE),
        )
    except search.RoomNotFound as error:
        error.field = "room_id"  # the page's form calls it "room"; here it is a parameter
        raise
    return jsonify(search_results_shape(results))
