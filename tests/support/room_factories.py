"""Rooms, members, agents and invitations for tests, made through the rooms domain code."""

from __future__ import annotations

import itertools
from datetime import timedelta

from discux.extensions import db
from discux.ids import sha256_hex, utcnow
from discux.invitations import service as invitations
from discux.models import Agent, Room, RoomAgent, RoomInvitation, RoomParticipant, User
from discux.rooms import service as rooms

_counter = itertools.count(1)


def create_room(owner: User, name: str | None = None, description: str | None = None,
                **settings) -> Room:
    """An active room owned by `owner` (their plan's limit applies), with optional settings."""
    owner = db.session.merge(owner)
    room = rooms.create_room(owner, name or f"Room {next(_counter)}", description)
    if settings:
        for key, value in settings.items():
            setattr(room.settings, key, value)
        db.session.commit()
    return room


def add_member(room: Room, user: User, role: str = "member") -> RoomParticipant:
    participant = RoomParticipant(room_id=room.id, user_id=user.id, role=role)
    db.session.add(participant)
    db.session.commit()
    return participant


def create_agent(creator: User, name: str | None = None, public: bool = False) -> Agent:
    agent = Agent(
        name=name or f"Agent {next(_counter)}",
        prompt="You help the team think clearly.",
        created_by=creator.id,
        is_public=public,
    )
    db.session.add(agent)
    db.session.commit()
    return agent


def put_agent_in_room(room: Room, agent: Agent, added_by: User) -> RoomAgent:
    room_agent = RoomAgent(room_id=room.id, agent_id=agent.id, added_by=added_by.id)
    db.session.add(room_agent)
    db.session.commit()
    return room_agent


def create_invitation(room: Room, inviter: User, email: str | None = None,
                      expiry: str = "7d", state: str = "open") -> tuple[RoomInvitation, str]:
    """An invitation and its raw token; `state` = open, used, expired or revoked."""
    invitation, token = invitations.create_invitation(
        db.session.merge(inviter), db.session.get(Room, room.id), email, expiry
    )
    if state == "used":
        invitation.used_at = utcnow()
    elif state == "expired":
        invitation.expires_at = utcnow() - timedelta(minutes=1)
    elif state == "revoked":
        invitation.revoked_at = utcnow()
    db.session.commit()
    return invitation, token


def invitation_by_token(token: str) -> RoomInvitation | None:
    return db.session.scalar(
        db.select(RoomInvitation).where(RoomInvitation.invite_token == sha256_hex(token))
    )
