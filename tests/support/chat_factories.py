"""Rooms, members, agents and messages for the chat tests, made straight from the models so these
tests do not depend on the rooms blueprint's services."""

from __future__ import annotations

import itertools
from datetime import timedelta

from discux.extensions import db
from discux.ids import new_id, utcnow
from discux.messages.rendering import render_markdown
from discux.models import (
    Agent,
    Message,
    Room,
    RoomAgent,
    RoomParticipant,
    RoomSettings,
    UsageCounter,
    User,
)

_counter = itertools.count(1)


def _id(thing) -> str:
    return thing if isinstance(thing, str) else thing.id


def create_room(owner: User | str, name: str | None = None, active: bool = True) -> Room:
    """A room with its settings row and its owner as a participant."""
    room = Room(name=name or f"Chat room {next(_counter)}", created_by=_id(owner), is_active=active)
    room.settings = RoomSettings()
    db.session.add(room)
    db.session.flush()
    db.session.add(RoomParticipant(room_id=room.id, user_id=_id(owner), role="owner"))
    db.session.commit()
    return room


def add_member(room: Room | str, user: User | str, role: str = "member") -> RoomParticipant:
    participant = RoomParticipant(room_id=_id(room), user_id=_id(user), role=role)
    db.session.add(participant)
    db.session.commit()
    return participant


def create_agent(creator: User | str, name: str | None = None, emoji: str = "🤖",
                 color: str = "#3B82F6", style: str = "professional") -> Agent:
    agent = Agent(name=name or f"Agent {next(_counter)}", prompt="You help the team think clearly.",
                  created_by=_id(creator), emoji=emoji, color=color, style=style)
    db.session.add(agent)
    db.session.commit()
    return agent


def add_agent(room: Room | str, agent: Agent, added_by: User | str) -> RoomAgent:
    room_agent = RoomAgent(room_id=_id(room), agent_id=agent.id, added_by=_id(added_by))
    db.session.add(room_agent)
    db.session.commit()
    return room_agent


def create_message(room: Room | str, sender: User | Agent | str, content: str = "Hello",
                   type: str = "user", days_ago: float = 0, **fields) -> Message:
    """A stored message (as if posted earlier); `days_ago` backdates its timestamp only."""
    if isinstance(sender, Agent):
        fields.setdefault("sender_name", sender.name)
        fields.setdefault("sender_emoji", sender.emoji)
        fields.setdefault("sender_color", sender.color)
        type = "agent"
    elif isinstance(sender, User):
        fields.setdefault("sender_name", sender.display_name)
    message = Message(
        id=new_id(), room_id=_id(room), content=content, content_html=render_markdown(content),
        type=type, sender_id=_id(sender), timestamp=utcnow() - timedelta(days=days_ago), **fields,
    )
    db.session.add(message)
    if type == "user" and db.session.get(User, _id(sender)) is not None:
        count_sent(_id(sender), message.timestamp)  # as posting would (plans.take_message_quota)
    db.session.commit()
    return message


def count_sent(user_id: str, at=None, messages: int = 1) -> None:
    """Add `messages` to the user's usage counter for the month of `at` (default: now)."""
    from discux.plans import month_key

    month = month_key(at)
    counter = db.session.get(UsageCounter, (user_id, month))
    if counter is None:
        counter = UsageCounter(user_id=user_id, month=month, messages_sent=0)
        db.session.add(counter)
    counter.messages_sent += messages
    db.session.flush()


class Person:
    """A user as tests hold them outside the app context: id, name and a session cookie."""

    def __init__(self, user: User, token: str):
        self.id = user.id
        self.name = user.display_name
        self.email = user.email
        self.token = token


class World:
    """One room with an owner, an admin, a member, an outsider and two agents."""

    def __init__(self, app):
        from tests.support import factories

        with app.app_context():
            people = {}
            for key, name in (("owner", "Olga Owner"), ("admin", "Adam Admin"),
                              ("member", "Ana Member"), ("outsider", "Otto Outsider")):
                user = factories.create_user(name=name, plan="pro")
                people[key] = Person(user, factories.create_session_token(user.id))
            room = create_room(people["owner"].id, name="Launch plan")
            add_member(room, people["admin"].id, "admin")
            add_member(room, people["member"].id)
            self.agents = []
            for name, emoji, color in (("Critic", "🎯", "#EF4444"),
                                       ("Code Reviewer", "🔧", "#10B981")):
                agent = create_agent(people["owner"].id, name=name, emoji=emoji, color=color)
                add_agent(room, agent, people["owner"].id)
                self.agents.append((agent.id, agent.name))
            self.room_id = room.id
        self.owner = people["owner"]
        self.admin = people["admin"]
        self.member = people["member"]
        self.outsider = people["outsider"]


def wait_until_sockets_closed(app, timeout: float = 5.0) -> None:
    """Let the server finish closing the test's sockets before the app goes away."""
    import time

    hub = app.extensions.get("discux.realtime")
    deadline = time.monotonic() + timeout
    while hub is not None and hub.socket_count and time.monotonic() < deadline:
        time.sleep(0.02)
    if hub is not None and hub.socket_count:
        # A test that failed half-way leaves its sockets open: close them from the server so
        # their client threads end too, instead of keeping the test run from exiting.
        hub.close_all(1001, "The test is over.")
        deadline = time.monotonic() + timeout
        while hub.socket_count and time.monotonic() < deadline:
            time.sleep(0.02)
