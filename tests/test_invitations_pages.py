"""Invitation links: making them, every state of /invite/<token>, joining, revoking, purging."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from discux.auth.sessions import COOKIE_NAME
from discux.extensions import db
from discux.ids import utcnow
from discux.models import Room, RoomInvitation, RoomParticipant
from tests.conftest import CSRF_IN_PAGE
from tests.support import factories
from tests.support import room_factories as rf

LINK = re.compile(r'id="invite-link" type="text" readonly value="([^"]+)"')


@pytest.fixture
def room(app, make_user):
    """A room with a description, two people and one agent; returns (room_id, owner)."""
    owner = make_user(name="Olive", email="olive@example.com")
    with app.app_context():
        room = rf.create_room(owner, "Roadmap", "Where we plan the quarter")
        rf.add_member(room, make_user(name="Adam"))
        rf.put_agent_in_room(room, rf.create_agent(owner, "Critic"), owner)
        return room.id, owner


def invite(app, room_id, owner, **options) -> str:
    with app.app_context():
        return rf.create_invitation(db.session.get(Room, room_id), owner, **options)[1]


def people(app, room_id) -> set[str]:
    with app.app_context():
        return set(db.session.scalars(
            sa.select(RoomParticipant.user_id).where(RoomParticipant.room_id == room_id)))


def invitation_row(app, token):
    with app.app_context():
        row = rf.invitation_by_token(token)
        return (row.used_at, row.used_by, row.revoked_at) if row else None


def test_owner_makes_a_link_and_sees_it_listed_as_open(app, client, csrf_token, login, room):
    room_id, owner = room
    login(owner)
    response = client.post(f"/rooms/{room_id}/invitations",
                           data={"expiry": "7d", "csrf_token": csrf_token()})
    assert response.status_code == 201
    page = response.get_data(as_text=True)
    link = LINK.search(page).group(1)
    assert re.fullmatch(r"http://localhost/invite/[A-Za-z0-9_-]{43}", link)
    assert 'data-copy-target="invite-link"' in page
    assert "status-open" in page and "anyone with the link" in page
    # Only the hash is stored: the database never holds a working link.
    token = link.rsplit("/", 1)[1]
    with app.app_context():
        stored = db.session.scalar(sa.select(RoomInvitation.invite_token))
        assert stored != token and len(stored) == 64
    # The link is shown once; a later visit lists the invitation without it.
    assert "/invite/" not in client.get(f"/rooms/{room_id}").get_data(as_text=True)
    later = client.get(f"/rooms/{room_id}/invitations").get_data(as_text=True)
    assert "/invite/" not in later and "status-open" in later


def test_htmx_invite_answers_with_the_invitations_section_only(client, csrf_token, login, room):
    room_id, owner = room
    login(owner)
    response = client.post(f"/rooms/{room_id}/invitations", headers={"HX-Request": "true"},
                           data={"expiry": "1d", "csrf_token": csrf_token()})
    html = response.get_data(as_text=True)
    assert response.status_code == 201
    assert html.lstrip().startswith('<section id="invitations"')
    assert LINK.search(html)


def test_link_uses_the_configured_base_url(make_app, make_user):
    site = "https://discux.example.org"
    app = make_app(DISCUX_BASE_URL=site)
    client = app.test_client()
    owner = make_user()
    with app.app_context():
        room_id = rf.create_room(owner).id
        raw_token = factories.create_session_token(owner.id)
    client.set_cookie(COOKIE_NAME, raw_token, domain="discux.example.org")
    page = client.get("/settings", base_url=site).get_data(as_text=True)
    token = CSRF_IN_PAGE.search(page).group(1)
    response = client.post(f"/rooms/{room_id}/invitations", base_url=site,
                           headers={"Referer": f"{site}/rooms/{room_id}"},  # https: checked
                           data={"expiry": "7d", "csrf_token": token})
    assert LINK.search(response.get_data(as_text=True)).group(1).startswith(
        "https://discux.example.org/invite/")


@pytest.mark.parametrize(("choice", "lifetime"), [
    ("1d", timedelta(days=1)), ("7d", timedelta(days=7)), ("30d", timedelta(days=30)),
    ("never", None),
])
def test_expiry_choices(app, client, csrf_token, login, room, choice, lifetime):
    room_id, owner = room
    login(owner)
    page = client.post(f"/rooms/{room_id}/invitations",
                       data={"expiry": choice, "csrf_token": csrf_token()}).get_data(as_text=True)
    with app.app_context():
        expires_at = db.session.scalar(sa.select(RoomInvitation.expires_at))
    if lifetime is None:
        assert expires_at is None
        assert "never expires" in page
    else:
        assert abs(expires_at - (utcnow() + lifetime)) < timedelta(minutes=1)
        assert f"expires {expires_at.strftime('%Y-%m-%d')}" in page


def test_default_expiry_is_seven_days(client, login, room):
    room_id, owner = room
    login(owner)
    page = client.get(f"/rooms/{room_id}/invitations").get_data(as_text=True)
    assert '<option selected value="7d">7 days</option>' in page


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"expiry": "forever"}, "expiry", "Not a valid choice"),
    ({"expiry": "7d", "email": "not-an-email"}, "email", "Enter a valid email address."),
])
def test_bad_invite_input_is_refused_next_to_the_field(app, client, csrf_token, login, room,
                                                       data, field, message):
    room_id, owner = room
    login(owner)
    response = client.post(f"/rooms/{room_id}/invitations",
                           data={**data, "csrf_token": csrf_token()})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert f'id="{field}-error"' in page and message in page
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(RoomInvitation)) == 0


def test_open_invitation_shows_the_room_and_a_join_button(app, client, login, make_user, room):
    room_id, owner = room
    token = invite(app, room_id, owner)
    login(make_user())
    response = client.get(f"/invite/{token}")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Roadmap" in page and "Where we plan the quarter" in page
    assert "2 members · 1 agent" in page
    assert "Olive invited you" in page
    assert "Join room</button>" in page


def test_joining_lands_in_the_room_and_marks_the_link_used(app, client, csrf_token, login,
                                                          make_user, room):
    room_id, owner = room
    token = invite(app, room_id, owner)
    guest = make_user(name="Gwen")
    login(guest)
    response = client.post(f"/invite/{token}", data={"csrf_token": csrf_token()})
    assert response.status_code == 303 and response.location == f"/rooms/{room_id}"
    page = client.get(response.location).get_data(as_text=True)
    assert "Welcome to “Roadmap”." in page and "Gwen" in page
    used_at, used_by, _ = invitation_row(app, token)
    assert used_at is not None and used_by == guest.id
    login(owner)
    assert "status-used" in client.get(f"/rooms/{room_id}/invitations").get_data(as_text=True)


def test_joining_twice_is_harmless(app, client, csrf_token, login, make_user, room):
    room_id, owner = room
    token, second = invite(app, room_id, owner), invite(app, room_id, owner)
    login(make_user())
    client.post(f"/invite/{token}", data={"csrf_token": csrf_token()})
    before = people(app, room_id)
    again = client.post(f"/invite/{token}", data={"csrf_token": csrf_token()})
    assert again.status_code == 303 and again.location == f"/rooms/{room_id}"
    opened = client.get(f"/invite/{second}")
    assert opened.status_code == 302 and opened.location == f"/rooms/{room_id}"
    assert "You are already in “Roadmap”." in client.get(opened.location).get_data(as_text=True)
    assert people(app, room_id) == before
    assert invitation_row(app, second)[0] is None  # the other link is still unused


@pytest.mark.parametrize(("state", "status", "message"), [
    ("used", 410, "already been used"),
    ("expired", 410, "has expired"),
    ("revoked", 410, "was revoked"),
])
def test_unusable_links_explain_why_and_change_nothing(app, client, csrf_token, login,
                                                       make_user, room, state, status, message):
    room_id, owner = room
    token = invite(app, room_id, owner, state=state)
    before_people, before_row = people(app, room_id), invitation_row(app, token)
    login(make_user())
    for response in (client.get(f"/invite/{token}"),
                     client.post(f"/invite/{token}", data={"csrf_token": csrf_token()})):
        page = response.get_data(as_text=True)
        assert response.status_code == status
        assert message in page and "Join room" not in page
        assert "The link was for the room “Roadmap”. Nothing has changed." in page
    assert people(app, room_id) == before_people
    assert invitation_row(app, token) == before_row


def test_unknown_or_forged_token_is_not_found(app, client, csrf_token, login, make_user, room):
    room_id, owner = room
    login(make_user())
    before = people(app, room_id)
    for token in ("nope", "A" * 43, "x" * 500):
        for response in (client.get(f"/invite/{token}"),
                         client.post(f"/invite/{token}", data={"csrf_token": csrf_token()})):
            assert response.status_code == 404
            page = response.get_data(as_text=True)
            assert "This invitation link is not valid" in page and "Roadmap" not in page
    assert people(app, room_id) == before


def test_email_restricted_link_refuses_other_accounts(app, client, csrf_token, login,
                                                      make_user, room):
    room_id, owner = room
    token = invite(app, room_id, owner, email="bea@example.com")
    login(make_user(email="carl@example.com"))
    for response in (client.get(f"/invite/{token}"),
                     client.post(f"/invite/{token}", data={"csrf_token": csrf_token()})):
        assert response.status_code == 403
        page = response.get_data(as_text=True)
        assert "for someone else" in page
        assert "b…@example.com" in page and "carl@example.com" in page
    assert invitation_row(app, token)[0] is None
    assert len(people(app, room_id)) == 2


def test_email_restricted_link_admits_that_account(app, client, csrf_token, login, make_user,
                                                   room):
    room_id, owner = room
    login(owner)
    client.post(f"/rooms/{room_id}/invitations", data={
        "expiry": "7d", "email": "Bea@Example.com", "csrf_token": csrf_token()})
    with app.app_context():
        assert db.session.scalar(sa.select(RoomInvitation.email)) == "bea@example.com"
    token = invite(app, room_id, owner, email="bea@example.com")
    bea = make_user(email="bea@example.com", name="Bea")
    login(bea)
    response = client.post(f"/invite/{token}", data={"csrf_token": csrf_token()})
    assert response.status_code == 303
    assert bea.id in people(app, room_id)


def test_archived_room_cannot_be_joined(app, client, csrf_token, login, make_user, room):
    room_id, owner = room
    token = invite(app, room_id, owner)
    with app.app_context():
        db.session.get(Room, room_id).is_active = False
        db.session.commit()
    login(make_user())
    response = client.post(f"/invite/{token}", data={"csrf_token": csrf_token()})
    assert response.status_code == 409
    assert "archived, so nobody can join" in response.get_data(as_text=True)
    assert invitation_row(app, token)[0] is None


def test_signed_out_visitor_signs_in_and_comes_back_to_the_invitation(app, client, csrf_token,
                                                                     room):
    room_id, owner = room
    token = invite(app, room_id, owner)
    response = client.get(f"/invite/{token}")
    assert response.status_code == 302
    assert response.location == f"/login?next=/invite/{token}"
    login_page = client.get(response.location).get_data(as_text=True)
    assert f'value="/invite/{token}"' in login_page
    signed_in = client.post("/login/demo", data={
        "email": "newcomer@example.com", "name": "Nia", "next": f"/invite/{token}",
        "csrf_token": csrf_token()})
    assert signed_in.location == f"/invite/{token}"
    assert "Join room</button>" in client.get(signed_in.location).get_data(as_text=True)


def test_revoked_link_stops_working(app, client, csrf_token, login, make_user, room):
    room_id, owner = room
    token = invite(app, room_id, owner)
    with app.app_context():
        invitation_id = rf.invitation_by_token(token).id
    login(owner)
    response = client.post(f"/rooms/{room_id}/invitations/{invitation_id}/revoke",
                           data={"csrf_token": csrf_token()})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/rooms/{room_id}/invitations"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Invitation revoked" in page and "status-revoked" in page
    login(make_user())
    assert client.get(f"/invite/{token}").status_code == 410


def test_a_used_link_cannot_be_revoked(app, client, csrf_token, login, room):
    room_id, owner = room
    token = invite(app, room_id, owner, state="used")
    with app.app_context():
        invitation_id = rf.invitation_by_token(token).id
    login(owner)
    response = client.post(f"/rooms/{room_id}/invitations/{invitation_id}/revoke",
                           data={"csrf_token": csrf_token()})
    assert response.status_code == 400
    assert "already used" in response.get_data(as_text=True)
    assert invitation_row(app, token)[2] is None


def test_purge_deletes_only_expired_invitations(app, runner, room):
    room_id, owner = room
    expired = invite(app, room_id, owner, state="expired")
    used_and_expired = invite(app, room_id, owner, state="expired")
    with app.app_context():
        rf.invitation_by_token(used_and_expired).used_at = utcnow() - timedelta(days=2)
        db.session.commit()
    kept = [invite(app, room_id, owner), invite(app, room_id, owner, expiry="never"),
            invite(app, room_id, owner, state="revoked")]
    result = runner.invoke(args=["invitations", "purge"])
    assert result.exit_code == 0
    assert "Deleted 2 expired invitations." in result.output
    assert invitation_row(app, expired) is None
    assert all(invitation_row(app, token) is not None for token in kept)
    again = runner.invoke(args=["invitations", "purge"])
    assert "Deleted 0 expired invitations." in again.output
