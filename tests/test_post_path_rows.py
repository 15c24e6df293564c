"""A posted message is written without the ORM's unit of work: what the post returns and pushes
is exactly what was stored, mentions and timestamp included."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from discux.extensions import db
from discux.messages.rendering import MessageView
from discux.messages.service import message_payload, post_user_message
from discux.models import Message, MessageMention, Room, User
from tests.support import chat_factories, factories


@pytest.fixture
def room_with_agents(ctx):
    user = factories.create_user(name="Poster", plan="pro")
    room = chat_factories.create_room(user)
    nova = chat_factories.create_agent(user, name="Nova")
    orion = chat_factories.create_agent(user, name="Orion")
    chat_factories.add_agent(room, nova, user)
    chat_factories.add_agent(room, orion, user)
    return SimpleNamespace(user_id=user.id, room_id=room.id, nova=nova.id, orion=orion.id)


def stored(message_id: str) -> dict:
    """The message as a fresh read of the database shows it (nothing kept from the post)."""
    db.session.expunge_all()
    return MessageView.from_message(db.session.get(Message, message_id)).to_payload()


@pytest.mark.parametrize("text, humans_only", [
    ("@Orion then @Nova, **what** now?", False),
    ("plain words, nobody mentioned", False),
    ("@Nova but only people should read this", True),
])
def test_the_pushed_message_is_the_stored_one(room_with_agents, text, humans_only):
    w = room_with_agents
    message = post_user_message(db.session.get(User, w.user_id), db.session.get(Room, w.room_id),
                                text, humans_only)
    pushed = message_payload(message)
    assert pushed == stored(message.id)
    assert pushed["timestamp"] is not None and pushed["status"] == "complete"


def test_mentions_are_stored_in_order_with_their_message(room_with_agents):
    w = room_with_agents
    message = post_user_message(db.session.get(User, w.user_id), db.session.get(Room, w.room_id),
                                "@Orion first, then @Nova")
    assert [m.mentioned_agent_id for m in message.mentions] == [w.orion, w.nova]
    rows = db.session.execute(
        sa.select(MessageMention.message_id, MessageMention.mentioned_agent_id)
        .order_by(MessageMention.id)).all()
    assert [tuple(r) for r in rows] == [(message.id, w.orion), (message.id, w.nova)]


def test_a_post_leaves_nothing_pending_in_the_session(room_with_agents):
    w = room_with_agents
    post_user_message(db.session.get(User, w.user_id), db.session.get(Room, w.room_id), "hello")
    assert not db.session.new and not db.session.dirty
    db.session.rollback()  # a later failure in the same request cannot take the message back
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Message)) == 1
