"""Posting from the composer: with htmx, as a plain form, and every way it can be refused."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from discux.extensions import db
from discux.models import Message
from tests.support import chat_factories, factories
from tests.support.chat_factories import World


@pytest.fixture
def world(app) -> World:
    return World(app)


def messages_in(app, room_id: str) -> list[Message]:
    with app.app_context():
        rows = list(db.session.scalars(
            sa.select(Message).where(Message.room_id == room_id).order_by(Message.id)))
        for row in rows:
            db.session.expunge(row)
        return rows


def sign_in(client, person, test_client=None):
    from discux.auth.sessions import COOKIE_NAME

    (test_client or client).set_cookie(COOKIE_NAME, person.token, domain="localhost")
    return test_client or client


def post(client, room_id, content, token, htmx=True, **form):
    headers = {"X-CSRFToken": token}
    if htmx:
        headers["HX-Request"] = "true"
    return client.post(f"/rooms/{room_id}/messages", data={"content": content, **form},
                       headers=headers)


def test_plain_form_post_stores_the_message_and_goes_back_to_the_room(app, client, world,
                                                                      csrf_token):
    sign_in(client, world.member)
    response = client.post(f"/rooms/{world.room_id}/messages",
                           data={"content": "  Ship it on **Friday**  ",
                                 "csrf_token": csrf_token()})
    assert response.status_code == 303
    [message] = messages_in(app, world.room_id)
    assert response.headers["Location"] == f"/rooms/{world.room_id}#message-{message.id}"
    assert message.content == "Ship it on **Friday**"  # trimmed
    assert message.content_html == "<p>Ship it on <strong>Friday</strong></p>\n"
    assert (message.type, message.sender_id, message.sender_name) == (
        "user", world.member.id, "Ana Member")


def test_htmx_post_answers_with_an_empty_composer(app, client, world, csrf_token):
    sign_in(client, world.member)
    response = post(client, world.room_id, "hello", csrf_token())
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert '<form id="composer"' in html
    assert re.search(r'<textarea id="composer-text"[^>]*></textarea>', html)
    assert [m.content for m in messages_in(app, world.room_id)] == ["hello"]


def test_humans_only_toggle_is_stored_and_stays_on(app, client, world, csrf_token):
    sign_in(client, world.member)
    response = post(client, world.room_id, "just us", csrf_token(), humans_only="1")
    assert 'name="humans_only" value="1" role="switch" checked' in response.get_data(as_text=True)
    [message] = messages_in(app, world.room_id)
    assert message.humans_only is True


@pytest.mark.parametrize("content, complaint", [
    ("", "Write something before sending."),
    ("   \n\t  ", "Write something before sending."),
    ("x" * 4001, "at most 4,000 characters; this one has 4,001"),
])
def test_refused_text_is_kept_with_a_clear_message(app, client, world, csrf_token, content,
                                                  complaint):
    sign_in(client, world.member)
    response = post(client, world.room_id, content, csrf_token())
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert complaint in html
    assert 'aria-invalid="true"' in html
    if content.strip():
        assert f">{content}</textarea>" in html
    assert messages_in(app, world.room_id) == []


def test_exactly_4000_characters_are_accepted(app, client, world, csrf_token):
    sign_in(client, world.member)
    assert post(client, world.room_id, "é" * 4000, csrf_token()).status_code == 200
    assert len(messages_in(app, world.room_id)[0].content) == 4000


def test_refused_plain_post_shows_the_composer_with_the_text(app, client, world, csrf_token):
    sign_in(client, world.member)
    response = post(client, world.room_id, "y" * 4001, csrf_token(), htmx=False)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Your message was not sent" in html and "y" * 4001 in html
    assert messages_in(app, world.room_id) == []


@pytest.mark.parametrize("body, content_type", [
    (b"content=caf%C3%A9%FF%FE", "application/x-www-form-urlencoded"),
    (b'--b\r\nContent-Disposition: form-data; name="content"\r\n\r\nbad \xff\xfe bytes\r\n--b--\r\n',
     "multipart/form-data; boundary=b"),
])
def test_invalid_utf8_is_refused_and_nothing_written(app, client, world, csrf_token, body,
                                                     content_type):
    sign_in(client, world.member)
    response = client.post(f"/rooms/{world.room_id}/messages", data=body,
                           content_type=content_type, headers={"X-CSRFToken": csrf_token()})
    assert response.status_code == 400
    assert "not valid UTF-8" in response.get_data(as_text=True)
    assert messages_in(app, world.room_id) == []


def test_post_without_csrf_token_is_refused(app, client, world):
    sign_in(client, world.member)
    response = client.post(f"/rooms/{world.room_id}/messages", data={"content": "forged"})
    assert response.status_code == 400
    assert messages_in(app, world.room_id) == []


def test_monthly_quota_is_named_when_reached(app, client, csrf_token):
    with app.app_context():
        user = factories.create_user(name="Frugal")  # free plan: 100 messages a month
        room = chat_factories.create_room(user)
        for n in range(100):
            chat_factories.create_message(room, user, f"m{n}")
        token, room_id = factories.create_session_token(user.id), room.id
    from discux.auth.sessions import COOKIE_NAME

    client.set_cookie(COOKIE_NAME, token, domain="localhost")
    response = post(client, room_id, "one more", csrf_token(), htmx=False)
    assert response.status_code == 403
    html = response.get_data(as_text=True)
    assert "free plan allows 100 messages a month" in html and "one more" in html
    assert len(messages_in(app, room_id)) == 100


def test_non_member_cannot_post_or_learn_the_room_exists(app, client, world, csrf_token):
    sign_in(client, world.outsider)
    assert post(client, world.room_id, "let me in", csrf_token()).status_code == 404
    assert messages_in(app, world.room_id) == []


def test_signed_out_post_is_sent_to_sign_in(app, client, world, csrf_token):
    response = post(client, world.room_id, "hi", csrf_token(), htmx=False)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    htmx = post(client, world.room_id, "hi", csrf_token())
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/login")
    assert messages_in(app, world.room_id) == []


def test_archived_room_is_read_only(app, client, world, csrf_token):
    from discux.models import Room

    with app.app_context():
        db.session.get(Room, world.room_id).is_active = False
        db.session.commit()
    sign_in(client, world.member)
    response = post(client, world.room_id, "anyone?", csrf_token(), htmx=False)
    assert response.status_code == 403
    assert "archived" in response.get_data(as_text=True)
    assert messages_in(app, world.room_id) == []


def test_pushed_message_matches_the_stored_row(app, live_server):
    """The socket event is built from the message as committed: same id, time and HTML."""
    from tests.support.chat_factories import wait_until_sockets_closed
    from tests.support.ws_client import Member, connect, wait_for_event

    world = World(app)
    listener = connect(live_server.url, world.room_id, world.admin.token)
    try:
        wait_for_event(listener, lambda e: e["type"] == "presence")
        poster = Member(live_server.url, world.member.token)
        assert poster.post(world.room_id, "Ship it on **Friday**",
                           humans_only="1").status_code == 200
        event = wait_for_event(listener, lambda e: e["type"] == "message.created")
    finally:
        listener.close()
        wait_until_sockets_closed(app)
    [stored] = messages_in(app, world.room_id)
    data = event["data"]
    assert (data["id"], data["room_id"], data["sender_id"], data["sender_name"]) == (
        stored.id, world.room_id, world.member.id, "Ana Member")
    assert data["content_html"] == stored.content_html == (
        "<p>Ship it on <strong>Friday</strong></p>\n")
    assert data["timestamp"] == stored.timestamp.isoformat(timespec="milliseconds")
    assert data["humans_only"] is True and data["mentions"] == []


def test_a_write_nobody_committed_never_reaches_the_next_request(app, world):
    """Connections go back to the pool without a ROLLBACK after a commit, but one returned with
    its transaction still open is rolled back: its rows never show up for anyone."""
    from discux.ids import new_id

    with app.app_context():
        raw = db.engine.raw_connection()
        cursor = raw.cursor()
        placeholder = "?" if db.engine.dialect.name == "sqlite" else "%s"
        cursor.execute(
            "INSERT INTO messages (id, room_id, content, type, sender_id, status, humans_only) "
            f"VALUES ({', '.join([placeholder] * 7)})",
            (new_id(), world.room_id, "half-done", "user", world.member.id, "complete", False))
        cursor.close()
        raw.close()  # back to the pool, never committed
        for _ in range(3):  # whichever pooled connection the next requests get
            db.session.add(Message(id=new_id(), room_id=world.room_id, content="kept",
                                   content_html="<p>kept</p>\n", type="user",
                                   sender_id=world.member.id, status="complete"))
            db.session.commit()
            db.session.remove()
    assert [m.content for m in messages_in(app, world.room_id)] == ["kept"] * 3
