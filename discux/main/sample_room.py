"""The first-run sample room: one room, three agents of different styles and a welcome that
shows how to @mention, hand over and summarize. Made of ordinary rows, so it can be edited and
deleted like any room and agent."""

from __future__ import annotations

import sqlalchemy as sa

from discux import plans
from discux.agents.service import free_agent_name
from discux.errors import LimitReached
from discux.extensions import db
from discux.ids import new_id
from discux.messages.service import SYSTEM_SENDER, render_markdown
from discux.models import Agent, Message, Room, RoomAgent, RoomParticipant, RoomSettings, User

SAMPLE_ROOM_NAME = "Sample room"
SAMPLE_ROOM_DESCRIPTION = (
    "A room to try Discux in: three agents with different styles. Rename it, change its "
    "agents or delete it when you are done."
)

# (name, emoji, colour, style, prompt): three styles a user can tell apart at once.
SAMPLE_AGENTS = (
    ("Scout", "💡", "#10B981", "creative",
     "You are Scout, an upbeat idea generator. Offer several fresh, concrete ideas, short and "
     "varied, and say which one you would try first."),
    ("Critic", "🎯", "#EF4444", "direct",
     "You are Critic, a blunt reviewer. Find the weakest points of a proposal, the risks and "
     "what is missing, and say plainly what you would change."),
    ("Analyst", "📊", "#3B82F6", "analytical",
     "You are Analyst, a careful thinker. Weigh options against clear criteria, estimate "
     "effort and impact, and end with a reasoned recommendation."),
)

WELCOME = """**Welcome to your sample room.** Three agents are here: 💡 **Scout** (creative), \
🎯 **Critic** (direct) and 📊 **Analyst** (analytical).

- **Ask one agent** by mentioning it: `@Scout how could we get our first ten users?`
- **Ask them all, in turn**: `@all` — each one sees what the others said before it.
- **Hand over**: ask an agent to pass the turn on, e.g. `@Scout give three ideas, then hand \
over to @Critic`. An agent that @mentions another hands it the turn.
- **Summarize**: press *Summarize* beside the brief to pin the decisions and open questions \
so far; agents read the brief in later turns.

Rename the room, edit its agents or delete all of it like any other room."""


def sample_room_refusal(user: User) -> str | None:
    """Why `user`'s plan cannot take the sample room (one room, three agents), or None."""
    if plans.active_rooms_used(user) >= user.max_rooms:
        return (f"The sample room needs a free room, and your {user.subscription} plan allows "
                f"{plans.describe_limit(user.max_rooms, 'active rooms')}, all in use. Archive "
                "a room or upgrade your plan.")
    used = plans.agents_used(user)
    if used + len(SAMPLE_AGENTS) > user.max_agents:
        return (f"The sample room brings {len(SAMPLE_AGENTS)} agents, and your "
                f"{user.subscription} plan allows "
                f"{plans.describe_limit(user.max_agents, 'agents')}; you have {used}. Delete "
                "some agents or upgrade your plan.")
    return None


def _existing_room(user: User) -> Room | None:
    """The room a user who already has one lands in (a double click's second request)."""
    return db.session.scalar(
        sa.select(Room).join(RoomParticipant, RoomParticipant.room_id == Room.id)
        .where(RoomParticipant.user_id == user.id)
        .order_by((Room.name == SAMPLE_ROOM_NAME).desc(), Room.id.desc()).limit(1)
    )


def create_sample_room(user: User) -> Room:
    """The sample room for a user who is in no room yet: created once, within the plan's limits
    (LimitReached, nothing written, otherwise). A user who has a room already gets that room
    back, so a double click creates one room, not two."""
    try:
        plans.lock_usage(user.id)  # two clicks at once run one after the other from here
        existing = _existing_room(user)
        if existing is not None:
            db.session.rollback()
            return existing
        refusal = sample_room_refusal(user)
        if refusal:
            raise LimitReached(refusal)
        room = Room(name=SAMPLE_ROOM_NAME, description=SAMPLE_ROOM_DESCRIPTION,
                    created_by=user.id, is_active=True)
        room.settings = RoomSettings()
        db.session.add(room)
        db.session.flush()
        for name, emoji, color, style, prompt in SAMPLE_AGENTS:
            agent = Agent(created_by=user.id, name=free_agent_name(user.id, name), prompt=prompt,
                          emoji=emoji, color=color, style=style, is_public=False)
            db.session.add(agent)
            db.session.flush()
            db.session.add(RoomAgent(room_id=room.id, agent_id=agent.id, added_by=user.id))
        welcome = Message(id=new_id(), room_id=room.id, content=WELCOME,
                          content_html=render_markdown(WELCOME), type="system",
                          sender_id=SYSTEM_SENDER, sender_name="Discux", status="complete")
        db.session.add(welcome)
        db.session.add(RoomParticipant(room_id=room.id, user_id=user.id, role="owner",
                                       last_read_message_id=welcome.id))
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return room
