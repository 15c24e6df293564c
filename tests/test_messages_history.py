"""The chat column: newest 50, "Load earlier" by cursor, how each message reads, who may delete."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from flask import render_template

from discux.auth.sessions import COOKIE_NAME
from discux.extensions import db
from discux.messages.history import chat_context
from discux.models import Agent, Message, Room, RoomParticipant
from tests.support import chat_factories
from tests.support.chat_factories import World


@pytest.fixture
def world(app) -> World:
    return World(app)


def chat_html(app, world, person) -> str:
    """The chat column as the room page includes it, for `person`."""
    with app.test_request_context("/"):
        room = db.session.get(Room, world.room_id)
        participant = db.session.scalar(sa.select(RoomParticipant).filter_by(
            room_id=world.room_id, user_id=person.id))
        return render_template("messages/_chat.html", chat=chat_context(room, participant))


def shown_contents(html: str) -> list[str]:
    return re.findall(r'hx-disable><p>(.*?)</p>', html)


def add_messages(app, world, count, sender=None, prefix="m"):
    sender = sender or world.owner
    with app.app_context():
        return [chat_factories.create_message(world.room_id, sender.id, f"{prefix}{n}",
                                              sender_name=sender.name).id
                for n in range(count)]


def test_room_opens_on_the_newest_50_with_load_earlier(app, world):
    ids = add_messages(app, world, 120)
    html = chat_html(app, world, world.member)
    assert shown_contents(html) == [f"m{n}" for n in range(70, 120)]
    assert f'hx-get="/rooms/{world.room_id}/messages?before={ids[70]}"' in html
    assert "Load earlier messages" in html


def test_load_earlier_pages_back_by_cursor_until_the_beginning(app, client, world):
    ids = add_messages(app, world, 120)
    client.set_cookie(COOKIE_NAME, world.member.token, domain="localhost")
    page = client.get(f"/rooms/{world.room_id}/messages?before={ids[70]}",
                      headers={"HX-Request": "true"}).get_data(as_text=True)
    assert shown_contents(page) == [f"m{n}" for n in range(20, 70)]
    assert '<div hx-swap-oob="afterbegin:#messages">' in page
    assert f"before={ids[20]}" in page
    last = client.get(f"/rooms/{world.room_id}/messages?before={ids[20]}",
                      headers={"HX-Request": "true"}).get_data(as_text=True)
    assert shown_contents(last) == [f"m{n}" for n in range(20)]
    assert "This is the beginning of the room." in last


def test_load_earlier_works_without_javascript(app, client, world):
    ids = add_messages(app, world, 60)
    client.set_cookie(COOKIE_NAME, world.member.token, domain="localhost")
    page = client.get(f"/rooms/{world.room_id}/messages?before={ids[10]}").get_data(as_text=True)
    assert "Earlier messages in Launch plan" in page
    assert shown_contents(page) == [f"m{n}" for n in range(10)]
    assert f'href="/rooms/{world.room_id}"' in page


@pytest.mark.parametrize("who, status", [("outsider", 404)])
def test_strangers_cannot_page_a_rooms_history(app, client, world, who, status):
    add_messages(app, world, 3)
    client.set_cookie(COOKIE_NAME, getattr(world, who).token, domain="localhost")
    assert client.get(f"/rooms/{world.room_id}/messages").status_code == status


def test_history_reads_never_use_offset_and_cost_the_same_in_a_big_room(app, world):
    statements = []

    def record(conn, cursor, statement, parameters, *args):
        statements.append((statement, parameters))

    add_messages(app, world, 10)
    with app.app_context():
        sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        chat_html(app, world, world.member)
        small = len(statements)
        add_messages(app, world, 400, prefix="big")
        statements.clear()
        chat_html(app, world, world.member)
    finally:
        with app.app_context():
            sa.event.remove(db.engine, "before_cursor_execute", record)
    assert len(statements) == small
    # SQLite's compiler spells "LIMIT ? OFFSET ?" with an offset of 0; nothing is ever skipped.
    offsets = [params[-1] for statement, params in statements if "OFFSET" in statement.upper()]
    assert set(offsets) <= {0}


def test_own_messages_say_you_and_others_show_their_name(app, world):
    add_messages(app, world, 1, sender=world.member, prefix="mine")
    add_messages(app, world, 1, sender=world.owner, prefix="theirs")
    html = chat_html(app, world, world.member)
    mine, theirs = html.split('<article class="message')[1:3]
    assert '<strong class="sender-name">You</strong>' in mine
    assert '<strong class="sender-name">Olga Owner</strong>' in theirs


def test_a_new_day_starts_with_a_separator(app, world):
    with app.app_context():
        chat_factories.create_message(world.room_id, world.owner.id, "yesterday", days_ago=1)
        chat_factories.create_message(world.room_id, world.owner.id, "today")
    html = chat_html(app, world, world.member)
    separators = re.findall(r'class="day-separator"[^>]*><span>([^<]+)</span>', html)
    assert len(separators) == 2
    assert html.index(separators[0]) < html.index("yesterday") < html.index(separators[1]) < (
        html.index("today"))


def test_agent_replies_show_emoji_colour_name_confidence_and_time(app, world):
    with app.app_context():
        agent = db.session.get(Agent, world.agents[0][0])
        chat_factories.create_message(world.room_id, agent, "Looks risky.",
                                      agent_confidence=0.87, processing_time=2.44)
    html = chat_html(app, world, world.member)
    assert 'data-agent-color="#EF4444"' in html  # static/app.js sets --agent-color from it
    assert '<span class="agent-emoji" aria-hidden="true">🎯</span>' in html
    assert '<strong class="sender-name">Critic</strong>' in html
    assert "confidence 87% · 2.4 s" in html


def delete_buttons(html: str) -> list[str]:
    """The contents of the messages that offer a Delete button."""
    found = []
    for part in html.split('<article class="message')[1:]:
        if 'class="message-delete"' in part:
            found.append(re.search(r"hx-disable><p>(.*?)</p>", part).group(1))
    return found


def test_members_may_delete_their_own_messages_staff_any(app, world):
    add_messages(app, world, 1, sender=world.member, prefix="member says ")
    add_messages(app, world, 1, sender=world.owner, prefix="owner says ")
    assert delete_buttons(chat_html(app, world, world.member)) == ["member says 0"]
    assert delete_buttons(chat_html(app, world, world.admin)) == ["member says 0", "owner says 0"]


def test_delete_is_one_small_button_that_names_what_it_deletes(app, world):
    add_messages(app, world, 1, sender=world.member, prefix="member says ")
    add_messages(app, world, 1, sender=world.owner, prefix="owner says ")
    html = chat_html(app, world, world.admin)
    buttons = re.findall(r'<form class="message-delete" action="([^"]+)"><button ([^>]+)>Delete'
                         r'</button></form>', html)
    assert len(buttons) == 2
    for action, attributes in buttons:
        # Without JS the button opens the confirmation page; with htmx it asks, then DELETEs.
        assert action.startswith("/messages/") and action.endswith("/delete")
        assert f'hx-delete="{action.removesuffix("/delete")}"' in attributes
        assert 'hx-confirm="Delete this message for everyone?"' in attributes
    names = re.findall(r'aria-label="(Delete [^"]+)"', html)
    assert [name.rsplit(", ", 1)[0] for name in names] == [
        "Delete Ana Member’s message", "Delete Olga Owner’s message"]
    # No CSRF token per message: htmx sends the page's token as a header.
    assert 'name="csrf_token"' not in html.split('id="messages"')[1].split("</div>\n    <p")[0]


def test_a_reply_that_finishes_reads_finished_on_the_next_view(app, world):
    with app.app_context():
        agent = db.session.get(Agent, world.agents[0][0])
        reply = chat_factories.create_message(world.room_id, agent, "Half a tho",
                                              status="streaming")
        reply_id = reply.id
    before = chat_html(app, world, world.member)
    assert "writing…" in before and "Half a tho" in before
    with app.app_context():
        reply = db.session.get(Message, reply_id)
        reply.status, reply.content = "complete", "Half a thought, finished."
        reply.content_html = "<p>Half a thought, finished.</p>"
        reply.context_receipt = '{"demo":true}'
        db.session.commit()
    after = chat_html(app, world, world.member)
    assert "writing…" not in after and "Half a thought, finished." in after
    assert ">demo</span>" in after and "What Critic was sent" in after


def test_composer_has_a_label_the_humans_only_switch_and_the_room_agents(app, world):
    html = chat_html(app, world, world.member)
    assert '<label for="composer-text">Message</label>' in html
    assert 'name="humans_only" value="1" role="switch"' in html
    assert '<button type="submit">Send</button>' in html
    agents = re.search(r'<script type="application/json" id="chat-agents">(.*?)</script>',
                       html).group(1)
    assert '"name": "Critic"' in agents and '"name": "Code Reviewer"' in agents
    assert f'ws-connect="/rooms/{world.room_id}/ws?after=' in html


def test_archived_room_shows_no_composer(app, world):
    with app.app_context():
        db.session.get(Room, world.room_id).is_active = False
        db.session.commit()
    html = chat_html(app, world, world.member)
    assert "This room is archived: it is read-only." in html
    assert 'id="composer-text"' not in html


def test_empty_room_invites_the_first_message(app, world):
    html = chat_html(app, world, world.member)
    assert "No messages yet." in html
