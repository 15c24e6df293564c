"""Who may do what in a room: every room-scoped route × {owner, admin, member, non-member,
signed out}, and when refused, nothing changed (IDOR included)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from discux.extensions import db
from discux.models import Room, RoomAgent, RoomInvitation, RoomParticipant
from tests.support import room_factories as rf


@dataclass
class Scene:
    room: str
    owner: object
    admin: object
    member: object
    outsider: object
    target: object  # a plain member others act upon
    agent: str  # in the room
    spare_agent: str  # public, not in the room
    invitation: str
    other_room: str
    other_agent: str
    other_member: object
    other_invitation: str


@pytest.fixture
def scene(app, make_user) -> Scene:
    owner = make_user(name="Olive Owner")
    admin = make_user(name="Adam Admin")
    member = make_user(name="Mia Member")
    outsider = make_user(name="Otto Outsider")
    target = make_user(name="Tess Target")
    other_member = make_user(name="Omar Other")
    with app.app_context():
        room = rf.create_room(owner, "Launch plan", allow_agent_creation=False)
        rf.add_member(room, admin, "admin")
        rf.add_member(room, member)
        rf.add_member(room, target)
        agent = rf.create_agent(owner, "Critic")
        rf.put_agent_in_room(room, agent, owner)
        spare = rf.create_agent(outsider, "Helper", public=True)
        invitation, _ = rf.create_invitation(room, owner)
        other = rf.create_room(outsider, "Other team")
        rf.add_member(other, other_member)
        other_agent = rf.create_agent(outsider, "Secret")
        rf.put_agent_in_room(other, other_agent, outsider)
        other_invitation, _ = rf.create_invitation(other, outsider)
        return Scene(room.id, owner, admin, member, outsider, target, agent.id, spare.id,
                     invitation.id, other.id, other_agent.id, other_member,
                     other_invitation.id)


def snapshot(app, room_id: str) -> dict:
    """Everything about a room a user could see change."""
    with app.app_context():
        room = db.session.get(Room, room_id)
        if room is None:
            return {"deleted": True}
        s = room.settings
        return {
            "room": (room.name, room.description, room.is_active, room.created_by),
            "settings": (s.max_agents, s.allow_agent_creation, s.auto_summarize),
            "people": dict(db.session.execute(
                sa.select(RoomParticipant.user_id, RoomParticipant.role)
                .where(RoomParticipant.room_id == room_id)).all()),
            "agents": set(db.session.scalars(
                sa.select(RoomAgent.agent_id).where(RoomAgent.room_id == room_id))),
            "invitations": set(db.session.execute(
                sa.select(RoomInvitation.id, RoomInvitation.used_at, RoomInvitation.revoked_at)
                .where(RoomInvitation.room_id == room_id)).all()),
        }


# action -> (method, path, form data, expected status for owner/admin/member)
ROUTES = {
    "view": ("GET", "/rooms/{room}", {}, (200, 200, 200)),
    "edit page": ("GET", "/rooms/{room}/edit", {}, (200, 200, 403)),
    "edit": ("POST", "/rooms/{room}/edit", {"name": "Renamed", "description": "New"},
             (303, 303, 403)),
    "archive": ("POST", "/rooms/{room}/archive", {}, (303, 303, 403)),
    "delete page": ("GET", "/rooms/{room}/delete", {}, (200, 403, 403)),
    "delete": ("POST", "/rooms/{room}/delete", {}, (303, 403, 403)),
    "settings": ("POST", "/rooms/{room}/settings",
                 {"max_agents": "7", "allow_agent_creation": "y"}, (303, 303, 403)),
    "add agent": ("POST", "/rooms/{room}/agents", {"agent_id": "{spare_agent}"},
                  (303, 303, 403)),
    "remove agent": ("POST", "/rooms/{room}/agents/{agent}/remove", {}, (303, 303, 403)),
    "invite": ("POST", "/rooms/{room}/invitations", {"expiry": "7d"}, (201, 201, 403)),
    "revoke": ("POST", "/rooms/{room}/invitations/{invitation}/revoke", {}, (303, 303, 403)),
    "change role": ("POST", "/rooms/{room}/members/{target}/role", {"role": "admin"},
                    (303, 303, 403)),
    "remove member": ("POST", "/rooms/{room}/members/{target}/remove", {}, (303, 303, 403)),
    "transfer": ("POST", "/rooms/{room}/transfer", {"new_owner_id": "{target}"},
                 (303, 403, 403)),
    "leave": ("POST", "/rooms/{room}/leave", {}, (403, 303, 303)),
}
ROLES = ("owner", "admin", "member", "non-member", "signed out")


def fill(template: str, scene: Scene) -> str:
    return template.format(
        room=scene.room, agent=scene.agent, spare_agent=scene.spare_agent,
        invitation=scene.invitation, target=scene.target.id,
    )


def request_as(client, csrf_token, login, scene, role, method, path, data):
    people = {"owner": scene.owner, "admin": scene.admin, "member": scene.member,
              "non-member": scene.outsider}
    if role in people:
        login(people[role])
    if method == "GET":
        return client.get(path)
    form = {key: fill(value, scene) for key, value in data.items()}
    return client.post(path, data={**form, "csrf_token": csrf_token()})


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", list(ROUTES))
def test_permission_matrix(app, client, csrf_token, login, scene, action, role):
    method, path_template, data, expected_by_role = ROUTES[action]
    path = fill(path_template, scene)
    before = snapshot(app, scene.room)

    response = request_as(client, csrf_token, login, scene, role, method, path, data)

    if role == "signed out":
        assert response.status_code == 302
        assert response.location.startswith("/login")
        assert snapshot(app, scene.room) == before
        return
    if role == "non-member":
        assert response.status_code == 404
        assert "There is nothing here" in response.get_data(as_text=True)
        assert "Launch plan" not in response.get_data(as_text=True)
        assert snapshot(app, scene.room) == before
        return
    expected = expected_by_role[("owner", "admin", "member").index(role)]
    assert response.status_code == expected, response.get_data(as_text=True)[:500]
    after = snapshot(app, scene.room)
    if expected == 403:
        assert "Not allowed" in response.get_data(as_text=True)
        assert after == before
    elif method == "GET":
        assert "Launch plan" in response.get_data(as_text=True)
        assert after == before
    else:
        assert after != before


def test_signed_out_visitor_is_sent_to_sign_in_and_back(client):
    response = client.get("/rooms/some-room-id")
    assert response.status_code == 302
    assert response.location == "/login?next=/rooms/some-room-id"


def test_unknown_room_id_is_404(client, login, make_user):
    login(make_user())
    assert client.get("/rooms/01234567-89ab-7cde-8f01-23456789abcd").status_code == 404


def test_member_may_add_agents_when_settings_allow(app, client, csrf_token, login, scene):
    with app.app_context():
        db.session.get(Room, scene.room).settings.allow_agent_creation = True
        db.session.commit()
    login(scene.member)
    response = client.post(f"/rooms/{scene.room}/agents",
                           data={"agent_id": scene.spare_agent, "csrf_token": csrf_token()})
    assert response.status_code == 303
    assert scene.spare_agent in snapshot(app, scene.room)["agents"]


def test_admin_cannot_remove_or_demote_another_admin(app, client, csrf_token, login, scene,
                                                     make_user):
    other_admin = make_user(name="Ada Second")
    with app.app_context():
        rf.add_member(db.session.get(Room, scene.room), other_admin, "admin")
    before = snapshot(app, scene.room)
    login(scene.admin)
    token = csrf_token()
    demote = client.post(f"/rooms/{scene.room}/members/{other_admin.id}/role",
                         data={"role": "member", "csrf_token": token})
    remove = client.post(f"/rooms/{scene.room}/members/{other_admin.id}/remove",
                         data={"csrf_token": token})
    assert demote.status_code == remove.status_code == 403
    assert "Only the owner may change an admin" in remove.get_data(as_text=True)
    assert snapshot(app, scene.room) == before


def test_nobody_changes_the_owners_role(app, client, csrf_token, login, scene):
    before = snapshot(app, scene.room)
    login(scene.admin)
    response = client.post(f"/rooms/{scene.room}/members/{scene.owner.id}/remove",
                           data={"csrf_token": csrf_token()})
    assert response.status_code == 403
    assert "transfer ownership" in response.get_data(as_text=True)
    assert snapshot(app, scene.room) == before


# A member of the other room (its owner) aims that room's URLs at this room's ids.
IDOR = {
    "remove agent": ("/rooms/{other}/agents/{agent}/remove", {}),
    "revoke": ("/rooms/{other}/invitations/{invitation}/revoke", {}),
    "change role": ("/rooms/{other}/members/{target}/role", {"role": "admin"}),
    "remove member": ("/rooms/{other}/members/{target}/remove", {}),
    "transfer": ("/rooms/{other}/transfer", {"new_owner_id": "{target}"}),
}


@pytest.mark.parametrize("action", list(IDOR))
def test_ids_from_another_room_are_not_found(app, client, csrf_token, login, scene, action):
    path_template, data = IDOR[action]
    before, other_before = snapshot(app, scene.room), snapshot(app, scene.other_room)
    login(scene.outsider)
    path = path_template.format(other=scene.other_room, agent=scene.agent,
                                invitation=scene.invitation, target=scene.target.id)
    form = {key: fill(value, scene) for key, value in data.items()}
    response = client.post(path, data={**form, "csrf_token": csrf_token()})
    assert response.status_code == 404
    assert "Launch plan" not in response.get_data(as_text=True)
    assert snapshot(app, scene.room) == before
    assert snapshot(app, scene.other_room) == other_before


def test_private_agent_of_someone_else_cannot_be_added(app, client, csrf_token, login, scene):
    before = snapshot(app, scene.room)
    login(scene.owner)
    response = client.post(f"/rooms/{scene.room}/agents",
                           data={"agent_id": scene.other_agent, "csrf_token": csrf_token()})
    assert response.status_code == 422
    assert "your own agents or public ones" in response.get_data(as_text=True)
    assert snapshot(app, scene.room) == before


def test_room_page_shows_only_what_the_role_may_do(client, login, scene):
    login(scene.member)
    member_page = client.get(f"/rooms/{scene.room}").get_data(as_text=True)
    login(scene.owner)
    owner_page = client.get(f"/rooms/{scene.room}").get_data(as_text=True)
    for control in (">Invite</a>", "Save settings", "Delete room", "Transfer ownership",
                    "Change role", "Remove Critic"):
        assert control in owner_page
        assert control not in member_page
    assert "Leave room" in member_page
    assert "Leave room" not in owner_page
    login(scene.member)
    assert client.get(f"/rooms/{scene.room}/invitations").status_code == 403
