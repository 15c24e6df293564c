"""Invitations through the API: the link's token shown once, every state of a link when it is
accepted, revoking, and the invite form's rules for an email address."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from discux.extensions import db
from discux.ids import sha256_hex
from discux.models import Room, RoomInvitation, RoomParticipant
from tests.support import room_factories as rf
from tests.support.api_helpers import Api, error_of, issue_token


@pytest.fixture
def owner(make_user):
    return make_user(name="Olive Owner")


@pytest.fixture
def room_id(app, owner) -> str:
    with app.app_context():
        return rf.create_room(owner, "Launch plan", "Shipping in Q3").id


@pytest.fixture
def api(app, client, owner):
    return Api(client, issue_token(app, owner))


def invitations_of(app, room_id: str) -> list[RoomInvitation]:
    with app.app_context():
        rows = list(db.session.scalars(
            sa.select(RoomInvitation).where(RoomInvitation.room_id == room_id)))
        db.session.expunge_all()
        return rows


def is_member(app, room_id: str, user) -> bool:
    with app.app_context():
        return db.session.scalar(sa.select(RoomParticipant.id).where(
            RoomParticipant.room_id == room_id, RoomParticipant.user_id == user.id)) is not None


def test_create_shows_the_token_once_and_stores_its_hash(app, api, room_id):
    response = api.post(f"/rooms/{room_id}/invitations",
                        json={"email": "Guest@Example.com", "expiry": "never"})
    assert response.status_code == 201
    made = response.get_json()
    assert made["status"] == "open" and made["email"] == "guest@example.com"
    assert made["expires_at"] is None
    assert made["url"].endswith(f"/invite/{made['token']}")
    [row] = invitations_of(app, room_id)
    assert row.invite_token == sha256_hex(made["token"])
    listed = api.get(f"/rooms/{room_id}/invitations").get_json()["invitations"]
    assert [i["id"] for i in listed] == [made["id"]]
    assert "token" not in listed[0] and made["token"] not in str(listed)


def test_an_empty_body_makes_a_7_day_link_for_anyone(app, api, room_id):
    response = api.post(f"/rooms/{room_id}/invitations")
    assert response.status_code == 201
    made = response.get_json()
    assert made["email"] is None and made["expires_at"] is not None


@pytest.mark.parametrize(("body", "field"), [
    ({"email": "not-an-email"}, "email"),
    ({"email": "a@b"}, "email"),
    ({"email": 5}, "email"),
    ({"expiry": "1y"}, "expiry"),
    ({"expiry": 7}, "expiry"),
])
def test_bad_invitation_fields_are_422(app, api, room_id, body, field):
    response = api.post(f"/rooms/{room_id}/invitations", json=body)
    assert response.status_code == 422 and error_of(response)["field"] == field
    assert invitations_of(app, room_id) == []


def test_accept_joins_the_room_once(app, client, api, room_id, make_user):
    token = api.post(f"/rooms/{room_id}/invitations").get_json()["token"]
    guest = make_user(name="Gus Guest")
    guest_api = Api(client, issue_token(app, guest))
    assert guest_api.get(f"/rooms/{room_id}").status_code == 404
    response = guest_api.post("/invitations/accept", json={"token": token})
    assert response.status_code == 200
    assert (response.get_json()["id"], response.get_json()["role"]) == (room_id, "member")
    assert guest_api.get(f"/rooms/{room_id}").status_code == 200
    assert guest_api.post("/invitations/accept", json={"token": token}).status_code == 200
    [row] = invitations_of(app, room_id)
    assert row.used_by == guest.id


@pytest.mark.parametrize(("state", "status", "code"), [
    ("used", 410, "invitation_used"),
    ("expired", 410, "invitation_expired"),
    ("revoked", 410, "invitation_revoked"),
])
def test_unusable_links_say_why(app, client, owner, room_id, make_user, state, status, code):
    with app.app_context():
        _, token = rf.create_invitation(db.session.get(Room, room_id), owner, state=state)
    guest = make_user()
    response = Api(client, issue_token(app, guest)).post("/invitations/accept",
                                                         json={"token": token})
    assert response.status_code == status and error_of(response)["code"] == code
    assert not is_member(app, room_id, guest)


@pytest.mark.parametrize("token", ["forged-token", "", "x" * 500])
def test_forged_tokens_are_unknown(app, client, room_id, make_user, token):
    guest = make_user()
    response = Api(client, issue_token(app, guest)).post("/invitations/accept",
                                                         json={"token": token})
    assert response.status_code == 404 and error_of(response)["code"] == "invitation_unknown"
    assert not is_member(app, room_id, guest)


def test_a_link_for_someone_else_is_refused(app, client, api, room_id, make_user):
    token = api.post(f"/rooms/{room_id}/invitations",
                     json={"email": "guest@example.com"}).get_json()["token"]
    intruder = make_user(email="intruder@example.com")
    response = Api(client, issue_token(app, intruder)).post("/invitations/accept",
                                                            json={"token": token})
    assert response.status_code == 403 and error_of(response)["code"] == "invitation_wrong_email"
    invited = make_user(email="guest@example.com")
    accepted = Api(client, issue_token(app, invited)).post("/invitations/accept",
                                                           json={"token": token})
    assert accepted.status_code == 200


def test_revoke_and_then_a_used_link_cannot_be_revoked(app, client, api, room_id, make_user):
    first = api.post(f"/rooms/{room_id}/invitations").get_json()
    revoked = api.delete(f"/rooms/{room_id}/invitations/{first['id']}")
    assert revoked.status_code == 200 and revoked.get_json()["status"] == "revoked"
    second = api.post(f"/rooms/{room_id}/invitations").get_json()
    Api(client, issue_token(app, make_user())).post("/invitations/accept",
                                                   json={"token": second["token"]})
    used = api.delete(f"/rooms/{room_id}/invitations/{second['id']}")
    assert used.status_code == 409 and error_of(used)["code"] == "conflict"
    assert api.delete(f"/rooms/{room_id}/invitations/no-such-id").status_code == 404
