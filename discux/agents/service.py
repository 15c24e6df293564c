"""Agents: the rules for creating, changing, copying, deleting and finding them."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import regex
import sqlalchemy as sa
from sqlalchemy.orm import aliased, selectinload

from discux import plans
from discux.agents.styles import STYLE_TABLE, system_prompt
from discux.errors import DiscuxError
from discux.extensions import db
from discux.llm import ChatMessage
from discux.models import STYLES, Agent, Room, RoomAgent, RoomParticipant, User
from discux.models.agents import agent_name_key
from discux.rooms.permissions import can
from discux.rooms.service import agent_count, agent_named_in_room

NAME_MAX = 100
PROMPT_MIN = 10
PROMPT_MAX = 4000
EMOJI_MAX_CHARS = 16  # the column is VARCHAR(16): code points, not graphemes
MODEL_MAX = 200
TRY_MESSAGE_MAX = 4000
GALLERY_LIMIT = 60

DEFAULT_EMOJI = "🤖"
DEFAULT_COLOR = "#3B82F6"
EMOJI_PRESETS = ("🤖", "🚀", "💡", "📊", "🎯", "💰", "🔧", "🎨", "📈", "🔬")
COLOR_PRESETS = ("#3B82F6", "#EF4444", "#10B981", "#F59E0B", "#8B5CF6", "#EC4899")
COLOR_SHAPE = re.compile(r"#[0-9A-Fa-f]{6}")
GRAPHEME = regex.compile(r"\X")


class InvalidAgent(DiscuxError):
    """One or more fields broke a rule; `problems` maps each field to its message."""

    status = 422

    def __init__(self, problems: dict[str, str]):
        field, message = next(iter(problems.items()))
        super().__init__(message, field)
        self.problems = problems


@dataclass(frozen=True)
class AgentFields:
    """What a person types to define an agent, before the rules have looked at it."""

    name: str = ""
    prompt: str = ""
    emoji: str = DEFAULT_EMOJI
    color: str = DEFAULT_COLOR
    style: str = "professional"
    is_public: bool = False
    model: str | None = None

    def cleaned(self) -> AgentFields:
        """Outer whitespace trimmed, colour upper-cased, an empty model meaning "default"."""
        return replace(
            self,
            name=(self.name or "").strip(),
            prompt=(self.prompt or "").strip(),
            emoji=(self.emoji or "").strip(),
            color=(self.color or "").strip().upper(),
            style=(self.style or "").strip(),
            model=(self.model or "").strip() or None,
        )

    @classmethod
    def of(cls, agent: Agent) -> AgentFields:
        return cls(agent.name, agent.prompt, agent.emoji, agent.color or DEFAULT_COLOR,
                   agent.style or "professional", bool(agent.is_public), agent.model)


def emoji_problem(emoji: str) -> str | None:
    """Why `emoji` is not exactly one emoji (one grapheme cluster), or None when it is."""
    if not emoji:
        return "Pick an emoji for the agent."
    graphemes = GRAPHEME.findall(emoji)
    if len(graphemes) != 1 or emoji.isspace():
        return f"Use exactly one emoji (this has {len(graphemes)} characters)."
    if len(emoji) > EMOJI_MAX_CHARS:
        return f"That emoji is too long to store ({EMOJI_MAX_CHARS} code points at most)."
    return None


def _names_taken(owner_id: str, except_agent_id: str | None) -> set[str]:
    # The stored keys (casefold() in Python: SQLite's lower() only folds ASCII). A locking read:
    # callers that write hold plans.lock_usage, and on MariaDB only a locking read sees what
    # the request before them committed.
    query = sa.select(Agent.name_key).where(Agent.created_by == owner_id).with_for_update()
    if except_agent_id:
        query = query.where(Agent.id != except_agent_id)
    return set(db.session.scalars(query))


def _room_namesake(agent_id: str, name_key: str) -> tuple[str, str] | None:
    """(room name, other agent's name) for a room the agent is in where another agent already
    goes by `name_key`: renaming to it would make the two impossible to @mention apart."""
    other, mine, theirs = aliased(Agent), aliased(RoomAgent), aliased(RoomAgent)
    row = db.session.execute(
        sa.select(Room.name, other.name)
        .join(mine, mine.room_id == Room.id)
        .join(theirs, theirs.room_id == Room.id)
        .join(other, other.id == theirs.agent_id)
        .where(mine.agent_id == agent_id, other.id != agent_id, other.name_key == name_key)
        .order_by(Room.name).limit(1)
    ).first()
    return (row[0], row[1]) if row else None


def name_taken_message(name: str) -> str:
    return f'You already have an agent called "{name}". Pick another name.'


def agent_problems(owner_id: str, fields: AgentFields, agent_id: str | None = None) -> dict[str, str]:
    """Every rule `fields` breaks, as field → message (empty when all is well)."""
    problems: dict[str, str] = {}
    if not fields.name:
        problems["name"] = "Give the agent a name."
    elif len(fields.name) > NAME_MAX:
        problems["name"] = f"Keep the name to {NAME_MAX} characters or fewer."
    elif "@" in fields.name:
        problems["name"] = 'Names cannot contain "@": it is how agents are mentioned.'
    elif agent_name_key(fields.name) in _names_taken(owner_id, agent_id):
        problems["name"] = name_taken_message(fields.name)
    elif agent_id and (clash := _room_namesake(agent_id, agent_name_key(fields.name))):
        room_name, namesake = clash
        problems["name"] = (f'"{room_name}" already has an agent called "{namesake}": pick '
                            "another name, so @mentions there can tell them apart.")
    if len(fields.prompt) < PROMPT_MIN:
        problems["prompt"] = f"Describe the agent in at least {PROMPT_MIN} characters."
    elif len(fields.prompt) > PROMPT_MAX:
        problems["prompt"] = f"Keep the prompt to {PROMPT_MAX} characters or fewer."
    if message := emoji_problem(fields.emoji):
        problems["emoji"] = message
    if not COLOR_SHAPE.fullmatch(fields.color):
        problems["color"] = "Use a colour written as # and six hex digits, like #3B82F6."
    if fields.style not in STYLES:
        problems["style"] = f"Choose one of the styles: {', '.join(STYLES)}."
    if fields.model and len(fields.model) > MODEL_MAX:
        problems["model"] = f"Keep the model name to {MODEL_MAX} characters or fewer."
    return problems


def _checked(owner_id: str, fields: AgentFields, agent_id: str | None = None) -> AgentFields:
    fields = fields.cleaned()
    problems = agent_problems(owner_id, fields, agent_id)
    if problems:
        raise InvalidAgent(problems)
    return fields


def _commit_named(name: str) -> None:
    """Commit an agent's insert or rename; the unique (owner, name_key) index turning it down
    means another request took the name first: the same answer as the check before."""
    try:
        db.session.commit()
    except sa.exc.IntegrityError:
        db.session.rollback()
        raise InvalidAgent({"name": name_taken_message(name)}) from None


def create_agent(owner: User, fields: AgentFields) -> Agent:
    """A new agent owned by `owner`, within their plan's limit.

    The name and the limit are checked under the owner's usage lock (the room limit's), so
    two requests at once cannot both take the last slot or the same name."""
    try:
        plans.lock_usage(owner.id)
        fields = _checked(owner.id, fields)
        plans.check_can_create_agent(owner)
    except Exception:
        db.session.rollback()
        raise
    agent = Agent(created_by=owner.id, **_columns(fields))
    db.session.add(agent)
    _commit_named(fields.name)
    return agent


def update_agent(agent: Agent, fields: AgentFields) -> Agent:
    """Change an agent; its past messages keep the name and look they were sent with."""
    fields = _checked(agent.created_by, fields, agent.id)
    for column, value in _columns(fields).items():
        setattr(agent, column, value)
    _commit_named(fields.name)
    return agent


def delete_agent(agent: Agent) -> None:
    """Delete an agent; it leaves every room (FK cascade) and its messages stay as they were."""
    db.session.delete(agent)
    db.session.commit()


def copy_agent(owner: User, source: Agent) -> Agent:
    """A private copy of `source` owned by `owner`, counted against their plan."""
    try:
        plans.lock_usage(owner.id)
        plans.check_can_create_agent(owner)
        name = _free_copy_name(owner.id, source.name)
    except Exception:
        db.session.rollback()
        raise
    copy = Agent(
        created_by=owner.id,
        name=name,
        prompt=source.prompt,
        emoji=source.emoji,
        color=source.color,
        style=source.style,
        is_public=False,
        model=source.model,
    )
    db.session.add(copy)
    _commit_named(name)
    return copy


def free_agent_name(owner_id: str, name: str) -> str:
    """`name`, or "name (copy)", "name (copy 2)"… when the owner already has an agent so named
    (call under plans.lock_usage)."""
    return _free_copy_name(owner_id, name)


def _free_copy_name(owner_id: str, name: str) -> str:
    taken = _names_taken(owner_id, None)
    if agent_name_key(name) not in taken:
        return name
    number = 1
    while True:
        suffix = " (copy)" if number == 1 else f" (copy {number})"
        candidate = name[: NAME_MAX - len(suffix)] + suffix
        if agent_name_key(candidate) not in taken:
            return candidate
        number += 1


def _columns(fields: AgentFields) -> dict:
    return {
        "name": fields.name,
        "prompt": fields.prompt,
        "emoji": fields.emoji,
        "color": fields.color,
        "style": fields.style,
        "is_public": fields.is_public,
        "model": fields.model,
    }


# ---- finding agents ----

def own_agent(user: User, agent_id: str) -> Agent | None:
    """The agent if `user` created it, else None (callers answer 404)."""
    agent = db.session.get(Agent, agent_id)
    return agent if agent is not None and agent.created_by == user.id else None


def visible_agent(user: User, agent_id: str) -> Agent | None:
    """The agent if `user` owns it or it is public, else None (callers answer 404)."""
    agent = db.session.get(Agent, agent_id)
    if agent is None or not (agent.created_by == user.id or agent.is_public):
        return None
    return agent


def agents_of(user: User) -> list[Agent]:
    """The user's agents, alphabetically."""
    return list(
        db.session.scalars(
            sa.select(Agent)
            .where(Agent.created_by == user.id)
            .order_by(sa.func.lower(Agent.name), Agent.id)
        )
    )


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def public_agents(style: str | None = None, search: str | None = None,
                  limit: int = GALLERY_LIMIT) -> list[Agent]:
    """Everyone's public agents, most used first, optionally of one style or matching a name."""
    query = sa.select(Agent).options(selectinload(Agent.creator)).where(Agent.is_public.is_(True))
    if style in STYLES:
        query = query.where(Agent.style == style)
    if search and search.strip():
        query = query.where(Agent.name.ilike(_like_pattern(search.strip()), escape="\\"))
    query = query.order_by(
        sa.func.coalesce(Agent.usage_count, 0).desc(), sa.func.lower(Agent.name), Agent.id
    ).limit(limit)
    return list(db.session.scalars(query))


@dataclass(frozen=True)
class RoomChoice:
    """One of my rooms as a place to add an agent: whether it can go there, and if not, why."""

    room: Room
    available: bool
    reason: str | None


def room_choices(user: User, agent: Agent) -> list[RoomChoice]:
    """The user's active rooms where they may add agents, each saying whether this one fits."""
    rows = db.session.execute(
        sa.select(RoomParticipant, Room)
        .join(Room, Room.id == RoomParticipant.room_id)
        .where(RoomParticipant.user_id == user.id, Room.is_active.is_(True))
        .order_by(sa.func.lower(Room.name), Room.id)
    ).all()
    present = set(
        db.session.scalars(sa.select(RoomAgent.room_id).where(RoomAgent.agent_id == agent.id))
    )
    choices = []
    for participant, room in rows:
        if not can(participant, "add_agent", room):
            continue
        limit = room.settings.max_agents if room.settings else None
        if room.id in present:
            choices.append(RoomChoice(room, False, "already there"))
        elif namesake := agent_named_in_room(room.id, agent.name_key):
            choices.append(RoomChoice(room, False, f'has an agent called "{namesake}"'))
        elif limit is not None and agent_count(room) >= limit:
            choices.append(RoomChoice(room, False, f"full: {limit} of {limit} agents"))
        else:
            choices.append(RoomChoice(room, True, None))
    return choices


# ---- trying an agent before it is saved ----

def try_problems(message: str, model: str | None) -> dict[str, str]:
    """What is wrong with a "Try it" request, as field → message."""
    problems = {}
    if not message.strip():
        problems["try_message"] = "Write a test message to try the agent with."
    elif len(message) > TRY_MESSAGE_MAX:
        problems["try_message"] = f"Keep the test message to {TRY_MESSAGE_MAX} characters or fewer."
    if model and len(model) > MODEL_MAX:
        problems["model"] = f"Keep the model name to {MODEL_MAX} characters or fewer."
    return problems


def try_messages(fields: AgentFields, message: str) -> list[ChatMessage]:
    """The conversation sent to the model when trying an (unsaved) agent on one message."""
    style = fields.style if fields.style in STYLE_TABLE else None
    return [
        {"role": "system", "content": system_prompt(fields.name, fields.prompt, style)},
        {"role": "user", "content": message.strip()},
    ]
