"""An invitation bound to an email address admits only someone who proved that address."""

from __future__ import annotations

import logging
import re

import sqlalchemy as sa

from discux.auth import mail
from discux.extensions import db
from discux.models import Room, RoomParticipant
from tests.support import room_factories as rf
from tests.support.api_helpers import Api, error_of, issue_token
from tests.support.email_links import open_sign_in_link


def make_room_and_invitation(app, make_user, email="bea@example.com"):
    owner = make_user(name="Olive")
    with app.app_context():
        room = rf.create_room(owner, "Roadmap")
        _, token = rf.create_invitation(db.session.get(Room, room.id), owner, email=email)
        return room.id, token


def members(app, room_id) -> set[str]:
    with app.app_context():
        return set(db.session.scalars(
            sa.select(RoomParticipant.user_id).where(RoomParticipant.room_id == room_id)))


def test_unverified_account_cannot_accept_an_email_bound_invitation(app, client, csrf_token,
                                                                    login, make_user):
    room_id, token = make_room_and_invitation(app, make_user)
    bea = make_user(email="bea@example.com", name="Bea", verified=False)
    login(bea)
    for response in (client.get(f"/invite/{token}"),
                     client.post(f"/invite/{token}", data={"csrf_token": csrf_token()})):
        assert response.status_code == 403
        page = response.get_data(as_text=True)
        assert "Confirm your email address first" in page
        assert "not proven yet that you own it" in page
        assert "Email me a sign-in link" in page and f'value="/invite/{token}"' in page
    assert bea.id not in members(app, room_id)


def test_unverified_account_accepts_after_the_email_link(app, client, csrf_token, login,
                                                         make_user, caplog):
    room_id, token = make_room_and_invitation(app, make_user)
    bea = make_user(email="bea@example.com", name="Bea", verified=False)
    login(bea)
    with caplog.at_level(logging.WARNING):
        response = client.post("/login/email", data={
            "email": "bea@example.com", "next": f"/invite/{token}", "csrf_token": csrf_token()})
        assert response.status_code == 200
        assert mail.outbox(app).wait_idle()
    link = re.search(r"http://localhost(/login/email/verify\S+)", caplog.text).group(1)
    assert open_sign_in_link(client, link).headers["Location"] == f"/invite/{token}"
    response = client.post(f"/invite/{token}", data={"csrf_token": csrf_token()})
    assert response.status_code == 303
    assert bea.id in members(app, room_id)


def test_unbound_invitation_still_admits_an_unverified_account(app, client, csrf_token, login,
                                                               make_user):
    room_id, token = make_room_and_invitation(app, make_user, email=None)
    guest = make_user(verified=False)
    login(guest)
    assert client.post(f"/invite/{token}", data={"csrf_token": csrf_token()}).status_code == 303
    assert guest.id in members(app, room_id)


def test_api_refuses_an_unverified_account_with_a_clear_code(app, client, make_user):
    room_id, token = make_room_and_invitation(app, make_user)
    bea = make_user(email="bea@example.com", verified=False)
    api = Api(client, issue_token(app, bea))
    response = api.post("/invitations/accept", json={"token": token})
    assert response.status_code == 403
    error = error_of(response)
    assert error["code"] == "invitation_unverified_email"
    assert "email link" in error["message"]
    assert bea.id not in members(app, room_id)
