"""Mention emails, against a real local SMTP server: sent to who opted in and has the room open
nowhere, at most one per room per 15 minutes, linking to the room from DISCUX_BASE_URL."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from discux.auth import mail
from discux.extensions import db
from discux.models import RoomParticipant, User
from tests.conftest import LiveServer
from tests.support import chat_factories as cf
from tests.support import factories
from tests.support.chat_factories import wait_until_sockets_closed
from tests.support.smtp_server import PrivateSMTP
from tests.support.ws_client import Member, connect, wait_for_event

BASE_URL = "http://discux.example.com"


@pytest.fixture
def smtp():
    server = PrivateSMTP(tls="none", users={}).start()  # a local relay: no TLS, no password
    yield server
    server.stop()


@pytest.fixture
def mail_app(app, make_app, smtp):
    """An app that sends mail (and knows its address); `app` empties the tables afterwards."""
    return make_app(DISCUX_SMTP_URL=smtp.url("smtp+insecure"), DISCUX_MAIL_FROM="discux@example.com",
                    DISCUX_BASE_URL=BASE_URL)


@pytest.fixture
def server(mail_app):
    live = LiveServer(mail_app).start()
    yield live
    wait_until_sockets_closed(mail_app)
    live.stop()


class Room:
    """Ana (who posts) and Ben (who is mentioned) in "Launch plan"."""

    def __init__(self, app, ben_opted_in: bool = True):
        with app.app_context():
            ana = factories.create_user(name="Ana", email="ana@example.com", plan="pro")
            ben = factories.create_user(name="Ben Ito", email="ben@example.com", plan="pro")
            ben.email_mentions = ben_opted_in
            db.session.commit()
            room = cf.create_room(ana, name="Launch plan")
            cf.add_member(room, ben)
            self.id, self.ana_id, self.ben_id = room.id, ana.id, ben.id
            self.ana_token = factories.create_session_token(ana.id)
            self.ben_token = factories.create_session_token(ben.id)


def post_and_wait(app, member: Member, room_id: str, text: str) -> None:
    answer = member.post(room_id, text)
    assert answer.status_code == 200, answer.text
    assert mail.outbox(app).wait_idle()


def test_a_mention_mails_whoever_is_away_with_a_link_to_the_room(mail_app, server, smtp):
    room = Room(mail_app)
    ana = Member(server.url, room.ana_token)
    post_and_wait(mail_app, ana, room.id, "@Ben Ito can you check the numbers?")
    [message] = smtp.messages
    assert message["To"] == "ben@example.com"
    assert message["Subject"] == "Ana mentioned you in Launch plan"
    body = message.get_payload(decode=True).decode()
    assert "can you check the numbers?" in body
    assert f"{BASE_URL}/rooms/{room.id}#message-" in body
    assert "127.0.0.1" not in body  # the link never comes from the request's host


def test_one_mail_per_room_per_quarter_hour(mail_app, server, smtp):
    room = Room(mail_app)
    ana = Member(server.url, room.ana_token)
    post_and_wait(mail_app, ana, room.id, "@Ben Ito first")
    post_and_wait(mail_app, ana, room.id, "@ben ito second, right after")
    assert len(smtp.messages) == 1
    with mail_app.app_context():  # a quarter of an hour later
        ben = db.session.scalar(sa.select(RoomParticipant)
                                .where(RoomParticipant.user_id == room.ben_id))
        ben.mention_mailed_at -= timedelta(minutes=16)
        db.session.commit()
    post_and_wait(mail_app, ana, room.id, "@Ben Ito third, later")
    assert len(smtp.messages) == 2
    assert "third, later" in smtp.messages[1].get_payload(decode=True).decode()


def test_no_mail_while_the_room_is_open(mail_app, server, smtp):
    room = Room(mail_app)
    ben_socket = connect(server.url, room.id, room.ben_token)
    try:
        wait_for_event(ben_socket, lambda e: isinstance(e, dict) and e.get("type") == "presence"
                       and e["data"]["user_id"] == room.ben_id and e["data"]["state"] == "online")
        ana = Member(server.url, room.ana_token)
        post_and_wait(mail_app, ana, room.id, "@Ben Ito are you there?")
        wait_for_event(ben_socket, lambda e: isinstance(e, dict)
                       and e.get("type") == "message.created")
        assert smtp.messages == []
    finally:
        ben_socket.close()


def test_no_mail_without_opting_in(mail_app, server, smtp):
    room = Room(mail_app, ben_opted_in=False)
    post_and_wait(mail_app, Member(server.url, room.ana_token), room.id, "@Ben Ito hello")
    assert smtp.messages == []


def test_no_mail_for_a_name_that_only_starts_the_same(mail_app, server, smtp):
    room = Room(mail_app)
    post_and_wait(mail_app, Member(server.url, room.ana_token), room.id, "@Ben Itoh is new")
    assert smtp.messages == []


def test_opting_in_and_out_in_settings(mail_app, server):
    room = Room(mail_app, ben_opted_in=False)
    ben = Member(server.url, room.ben_token)
    page = ben.http.get(server.url + "/settings").text
    assert "Email me when someone @mentions me" in page
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    on = ben.http.post(server.url + "/settings/notifications",
                       data={"csrf_token": csrf, "email_mentions": "y"})
    assert "Mention emails are on." in on.text

    def opted_in() -> bool:
        with mail_app.app_context():
            return db.session.get(User, room.ben_id).email_mentions

    assert opted_in()
    off = ben.http.post(server.url + "/settings/notifications", data={"csrf_token": csrf})
    assert "Mention emails are off." in off.text and not opted_in()
    refused = ben.http.post(server.url + "/settings/notifications", data={"email_mentions": "y"})
    assert refused.status_code == 400 and not opted_in()  # no CSRF token, no change


def test_without_a_mail_server_settings_say_so(client, login, make_user):
    login(make_user())
    page = client.get("/settings").get_data(as_text=True)
    assert "This server does not send email" in page
    assert 'action="/settings/notifications"' not in page
