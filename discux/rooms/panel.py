"""What the room page shows beside the chat (people, agents, settings); the room's invitations."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from flask import after_this_request, render_template
from wtforms.fields.choices import SelectChoice

from discux import usage
from discux.discussion.briefs import current_brief
from discux.extensions import db
from discux.ids import utcnow
from discux.invitations.forms import InviteForm
from discux.invitations.service import status_of
from discux.messages.history import chat_context
from discux.models import Agent, Room, RoomAgent, RoomInvitation, RoomParticipant, User
from discux.realtime import presence_states
from discux.rooms.forms import AddAgentForm, SettingsForm, TransferForm, form_view
from discux.rooms.permissions import allowed_actions, can_manage
from discux.rooms.read_marks import mark_read
from discux.rooms.service import agents_user_may_add

ROLE_ORDER = {"owner": 0, "admin": 1, "member": 2}


@dataclass(frozen=True)
class PersonRow:
    participant: RoomParticipant
    user: User
    manageable: bool  # may the viewer change this person's role or remove them


@dataclass(frozen=True)
class AgentRow:
    room_agent: RoomAgent
    agent: Agent
    added_by: User | None


@dataclass(frozen=True)
class InvitationRow:
    invitation: RoomInvitation
    status: str
    inviter: User | None


# The panel's queries are built once and run with the room's id: building a statement and its
# cache key costs about as much as running it on every view of the room.
_PEOPLE = (sa.select(RoomParticipant, User).join(User, User.id == RoomParticipant.user_id)
           .where(RoomParticipant.room_id == sa.bindparam("room_id")))
_ADDED_BY = sa.orm.aliased(User, name="added_by")
_AGENTS = (sa.select(RoomAgent, Agent, _ADDED_BY)
           .join(Agent, Agent.id == RoomAgent.agent_id)
           .outerjoin(_ADDED_BY, _ADDED_BY.id == RoomAgent.added_by)
           .where(RoomAgent.room_id == sa.bindparam("room_id"))
           .order_by(RoomAgent.added_at, RoomAgent.id))
_VIEWER = sa.bindparam("user_id")
_ADDABLE = (sa.select(Agent.id, Agent.name, Agent.emoji, Agent.created_by)
            .where(agents_user_may_add(_VIEWER),
                   Agent.id.not_in(sa.select(RoomAgent.agent_id)
                                   .where(RoomAgent.room_id == sa.bindparam("room_id"))))
            .order_by((Agent.created_by == _VIEWER).desc(), Agent.name))
_INVITER = sa.orm.aliased(User, name="inviter")
_INVITATIONS = (sa.select(RoomInvitation, _INVITER)
                .outerjoin(_INVITER, _INVITER.id == RoomInvitation.invited_by)
                .where(RoomInvitation.room_id == sa.bindparam("room_id"))
                .order_by(RoomInvitation.id.desc()))


def people_of(room: Room, viewer: RoomParticipant) -> list[PersonRow]:
    rows = db.session.execute(_PEOPLE, {"room_id": room.id}).all()
    people = [PersonRow(p, user, can_manage(viewer, p, room)) for p, user in rows]
    return sorted(
        people, key=lambda row: (ROLE_ORDER.get(row.participant.role, 9),
                                 row.user.display_name.lower())
    )


def agents_of(room: Room) -> list[AgentRow]:
    rows = db.session.execute(_AGENTS, {"room_id": room.id}).all()
    return [AgentRow(ra, agent, user) for ra, agent, user in rows]


def addable_agents(room: Room, user: User) -> list[sa.Row]:
    """The viewer's own agents and public ones that are not in the room yet (id, name, emoji,
    created_by), the viewer's first."""
    return list(db.session.execute(_ADDABLE, {"room_id": room.id, "user_id": user.id}))


def composer_feedback(room: Room, participant: RoomParticipant, allowed: dict,
                      agents: list[AgentRow], addable: list[sa.Row]) -> dict:
    """What static/composer-feedback.js and static/notifications.js know of the room: its
    agents, the agents the viewer could bring in (and whether they may), who the viewer is."""
    user = participant.user
    return {
        "room_id": room.id,
        "room_name": room.name,
        "me": {"id": user.id, "name": user.display_name},
        "agents": [row.agent.name for row in agents],
        "addable": [{"id": row.id, "name": row.name, "emoji": row.emoji or "🤖"}
                    for row in addable],
        "may_add": bool(allowed["add_agent"]),
        "add_url": f"/rooms/{room.id}/agents",
        "read_url": f"/rooms/{room.id}/read",
    }


def invitation_rows(room: Room) -> list[InvitationRow]:
    """Every invitation of the room, newest first, with its status and who made it."""
    now = utcnow()
    return [InvitationRow(invitation, status_of(invitation, now), inviter)
            for invitation, inviter in db.session.execute(_INVITATIONS, {"room_id": room.id})]


def invitations_context(room: Room, participant: RoomParticipant, invite_form=None,
                        new_invite_link: str | None = None) -> dict:
    """The invitations section on its own (re-rendered alone for htmx requests)."""
    allowed = allowed_actions(participant, room)
    return {
        "room": room,
        "allowed": allowed,
        "invitations": invitation_rows(room) if allowed["invite"] else [],
        "invite_form": form_view(InviteForm, invite_form) if allowed["invite"] else None,
        "new_invite_link": new_invite_link,
    }


def room_page_context(room: Room, participant: RoomParticipant, **overrides) -> dict:
    """Everything templates/rooms/show.html needs; `overrides` carry forms with errors."""
    user = participant.user
    people = people_of(room, participant)
    allowed = allowed_actions(participant, room)
    agents = agents_of(room)
    settings = room.settings
    # Forms are shown only to whoever may use them (most viewers are plain members).
    refused = {name: overrides.pop(name, None)
               for name in ("settings_form", "add_agent_form", "transfer_form")}
    settings_form = add_agent_form = transfer_form = None
    if allowed["edit_settings"]:
        settings_form = form_view(SettingsForm, refused["settings_form"], values={
            "max_agents": settings.max_agents,
            "allow_agent_creation": settings.allow_agent_creation,
            "auto_summarize": settings.auto_summarize,
            "monthly_token_budget": settings.monthly_token_budget,
        })
    addable = addable_agents(room, user)
    if allowed["add_agent"]:
        add_agent_form = form_view(AddAgentForm, refused["add_agent_form"], choices={
            "agent_id": [
                SelectChoice(agent.id, f"{agent.emoji} {agent.name}",
                             optgroup="Your agents" if agent.created_by == user.id
                             else "Public agents")
                for agent in addable
            ]})
    if allowed["transfer_ownership"]:
        transfer_form = form_view(TransferForm, refused["transfer_form"], choices={
            "new_owner_id": [SelectChoice(row.user.id, row.user.display_name) for row in people
                             if row.participant.role != "owner"]})
    context = {
        "room": room,
        "participant": participant,
        "allowed": allowed,
        "people": people,
        "agents": agents,
        "settings": settings,
        "settings_form": settings_form,
        "add_agent_form": add_agent_form,
        "transfer_form": transfer_form,
        # A search result's "jump to" brings its own chat column; else the newest page.
        "chat": overrides.pop("chat", None) or chat_context(
            room, participant, agents=[row.agent for row in agents]),
        "brief": current_brief(room.id),
        "feedback": composer_feedback(room, participant, allowed, agents, addable),
        "room_usage": usage.room_this_month(room.id),
        # Who has the room open right now, so the dots are right before the socket says more.
        "presence": presence_states(room.id),
    }
    context.update(overrides)
    _read_on_view(participant, context["chat"])
    return context


def _read_on_view(participant: RoomParticipant, chat: dict) -> None:
    """The viewer has now seen the newest message; the chat column still knows where they had
    read up to (`chat["last_read_id"]`, for an unread divider). Moved after the page is
    rendered, so the commit does not expire what the template reads; nothing is written on a
    view that shows nothing new."""
    chat["last_read_id"] = participant.last_read_message_id
    newest_id = chat.get("newest_id")
    if chat.get("window_around") or not newest_id or \
            (participant.last_read_message_id or "") >= newest_id:
        return

    @after_this_request
    def _mark(response):
        mark_read(participant, newest_id)
        return response


def render_room(room: Room, participant: RoomParticipant, status: int = 200, **overrides):
    """The room page, with any forms that failed shown beside their errors."""
    return render_template("rooms/show.html", **room_page_context(room, participant, **overrides)), status
