"""Agents and their replies for tests, made through the agents domain code."""

from __future__ import annotations

import itertools
from datetime import datetime

from discux.agents import service
from discux.agents.service import AgentFields
from discux.extensions import db
from discux.ids import utcnow
from discux.models import Agent, Message, Room, User

_counter = itertools.count(1)

VALID_FORM = {
    "name": "Ada",
    "prompt": "A careful data analyst who asks for the numbers first.",
    "emoji": "📊",
    "color": "#10B981",
    "style": "analytical",
    "model": "",
}


def create_agent(owner: User, name: str | None = None, *, public: bool = False,
                 usage_count: int = 0, **fields) -> Agent:
    """An agent owned by `owner`, made by service.create_agent (so the plan limit applies)."""
    owner = db.session.merge(owner)
    values = {
        "name": name or f"Agent {next(_counter)}",
        "prompt": "You help the team think clearly and briefly.",
        "is_public": public,
        **fields,
    }
    agent = service.create_agent(owner, AgentFields(**values))
    if usage_count:
        agent.usage_count = usage_count
        db.session.commit()
    return agent


def agent_reply(room: Room, agent: Agent, content: str = "A reply.", *,
                processing_time: float | None = None, confidence: float | None = None,
                at: datetime | None = None, status: str = "complete") -> Message:
    """A message the agent sent in the room, as the discussion engine will write it."""
    message = Message(
        room_id=room.id,
        content=content,
        type="agent",
        sender_id=agent.id,
        sender_name=agent.name,
        sender_emoji=agent.emoji,
        sender_color=agent.color,
        processing_time=processing_time,
        agent_confidence=confidence,
        timestamp=at or utcnow(),
        status=status,
    )
    db.session.add(message)
    db.session.commit()
    return message


def agent_count_of(user: User) -> int:
    return db.session.scalar(
        db.select(db.func.count()).select_from(Agent).where(Agent.created_by == user.id)
    )
