"""`@Name` and `@all` resolve against the room's agents and are stored in message_mentions."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from discux.extensions import db
from discux.messages.mentions import resolve_mentions
from discux.messages.service import post_user_message
from discux.models import MessageMention, Room, User
from tests.support import chat_factories

AGENTS = [
    SimpleNamespace(id="critic", name="Critic"),
    SimpleNamespace(id="code", name="Code"),
    SimpleNamespace(id="reviewer", name="Code Reviewer"),
    SimpleNamespace(id="ana", name="Ana"),
]


@pytest.mark.parametrize("text, expected", [
    ("@Critic what do you think?", ["critic"]),
    ("@critic and @CRITIC again", ["critic"]),  # case-insensitive, once
    ("@Code Reviewer please look", ["reviewer"]),  # longest name first, spaces allowed
    ("@Code please look", ["code"]),
    ("@code reviewer, and @code", ["reviewer", "code"]),  # order of first mention
    ("@Ana then @Critic then @Ana", ["ana", "critic"]),
    ("@all what now?", ["critic", "code", "reviewer", "ana"]),  # room order
    ("@Ana and @all", ["ana", "critic", "code", "reviewer"]),
    ("@Bob is not here", []),  # unknown names are ignored
    ("write to ana@example.com", []),  # an email address is no mention
    ("team@Critic", []),
    ("@Anabel", []),  # a longer word is another name
    ("(@Ana), thoughts?", ["ana"]),  # punctuation around is fine
    ("@allison", []),
    ("no mention at all", []),
])
def test_mentions_resolve_like_people_expect(text, expected):
    assert [agent.id for agent in resolve_mentions(text, AGENTS)] == expected


@pytest.fixture
def room_with_agents(ctx):
    from tests.support import factories

    user = factories.create_user(name="Poster", plan="pro")
    room = chat_factories.create_room(user)
    critic = chat_factories.create_agent(user, name="Critic")
    reviewer = chat_factories.create_agent(user, name="Code Reviewer")
    outsider_agent = chat_factories.create_agent(user, name="Elsewhere")
    chat_factories.add_agent(room, critic, user)
    chat_factories.add_agent(room, reviewer, user)
    return SimpleNamespace(user=user, room=room, critic=critic, reviewer=reviewer,
                           outsider_agent=outsider_agent)


def stored_mentions(message_id: str) -> list[str]:
    return list(db.session.scalars(
        sa.select(MessageMention.mentioned_agent_id)
        .where(MessageMention.message_id == message_id)
        .order_by(MessageMention.id)
    ))


def test_mentions_are_stored_in_the_order_written(room_with_agents):
    w = room_with_agents
    message = post_user_message(db.session.get(User, w.user.id), db.session.get(Room, w.room.id),
                                "@code reviewer first, then @Critic, then @critic again")
    assert stored_mentions(message.id) == [w.reviewer.id, w.critic.id]


def test_agents_outside_the_room_are_not_mentioned(room_with_agents):
    w = room_with_agents
    message = post_user_message(w.user, w.room, "@Elsewhere and @all")
    assert stored_mentions(message.id) == [w.critic.id, w.reviewer.id]


def test_humans_only_message_mentions_no_agent(room_with_agents):
    w = room_with_agents
    message = post_user_message(w.user, w.room, "@Critic don't answer this", humans_only=True)
    assert message.humans_only is True
    assert stored_mentions(message.id) == []
