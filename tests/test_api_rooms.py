"""Rooms through the API: create, edit, archive, settings, people and agents, with the rooms
service's rules and the plans' limits, and nothing half-written when one is refused."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from discux.extensions import db
from discux.models import Room, RoomAgent, RoomParticipant
from tests.support import room_factories as rf
from tests.support.api_helpers import Api, error_of, issue_token


@pytest.fixture
def owner(make_user):
    return make_user(name="Olive Owner")


@pytest.fixture
def api(app, client, owner):
    return Api(client, issue_token(app, owner))


def room_row(app, room_id: str) -> Room | None:
    with app.app_context():
        room = db.session.get(Room, room_id)
        if room is not None:
            db.session.refresh(room.settings)
        db.session.expunge_all()
        return room


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def test_create_room_makes_the_caller_its_owner(app, api, owner):
    response = api.post("/rooms", json={"name": "  Launch plan ", "description": "Q3"})
    assert response.status_code == 201
    room = response.get_json()
    assert (room["name"], room["description"], room["role"]) == ("Launch plan", "Q3", "owner")
    assert room["is_active"] is True and room["member_count"] == 1 and room["agent_count"] == 0
    assert room["settings"] == {"max_agents": 5, "allow_agent_creation": True,
                                "auto_summarize": False}
    assert [r["id"] for r in api.get("/rooms").get_json()["rooms"]] == [room["id"]]


@pytest.mark.parametrize(("body", "field", "status"), [
    ({"name": "   "}, "name", 422),
    ({"name": "x" * 201}, "name", 422),
    ({"name": "Ok", "description": "d" * 1001}, "description", 422),
    ({}, "name", 422),
    ({"name": ["Launch"]}, "name", 422),
    ({"name": "Ok", "description": 3}, "description", 422),
])
def test_invalid_room_is_refused_naming_the_field(app, api, body, field, status):
    response = api.post("/rooms", json=body)
    assert response.status_code == status
    assert error_of(response)["field"] == field
    assert count(app, Room) == 0


def test_second_active_room_on_the_free_plan_is_refused(app, api):
    assert api.post("/rooms", json={"name": "First"}).status_code == 201
    response = api.post("/rooms", json={"name": "Second"})
    assert response.status_code == 403
    assert error_of(response)["code"] == "plan_limit"
    assert count(app, Room) == 1


def test_edit_archive_and_unarchive(app, api):
    room_id = api.post("/rooms", json={"name": "Launch"}).get_json()["id"]
    edited = api.patch(f"/rooms/{room_id}", json={"description": "Plans for Q3"}).get_json()
    assert (edited["name"], edited["description"]) == ("Launch", "Plans for Q3")
    archived = api.patch(f"/rooms/{room_id}", json={"is_active": False}).get_json()
    assert archived["is_active"] is False
    refused = api.patch(f"/rooms/{room_id}", json={"name": "Renamed"})
    assert refused.status_code == 403 and "archived" in error_of(refused)["message"]
    both = api.patch(f"/rooms/{room_id}", json={"is_active": True, "name": "Renamed"})
    assert both.status_code == 200
    assert (both.get_json()["is_active"], both.get_json()["name"]) == (True, "Renamed")


def test_unarchive_with_an_invalid_name_writes_nothing(app, api):
    room_id = api.post("/rooms", json={"name": "Launch"}).get_json()["id"]
    api.patch(f"/rooms/{room_id}", json={"is_active": False})
    response = api.patch(f"/rooms/{room_id}", json={"is_active": True, "name": ""})
    assert response.status_code == 422 and error_of(response)["field"] == "name"
    room = room_row(app, room_id)
    assert (room.is_active, room.name) == (False, "Launch")


def test_unarchive_beyond_the_plan_writes_nothing(app, api):
    first = api.post("/rooms", json={"name": "First"}).get_json()["id"]
    api.patch(f"/rooms/{first}", json={"is_active": False})
    api.post("/rooms", json={"name": "Second"})
    response = api.patch(f"/rooms/{first}", json={"is_active": True, "name": "First again"})
    assert response.status_code == 403 and error_of(response)["code"] == "plan_limit"
    room = room_row(app, first)
    assert (room.is_active, room.name) == (False, "First")


def test_patch_with_nothing_to_change_says_so(api):
    room_id = api.post("/rooms", json={"name": "Launch"}).get_json()["id"]
    response = api.patch(f"/rooms/{room_id}", json={"title": "Renamed"})
    assert response.status_code == 422 and "Nothing to change" in error_of(response)["message"]


def test_delete_room(app, api):
    room_id = api.post("/rooms", json={"name": "Launch"}).get_json()["id"]
    assert api.delete(f"/rooms/{room_id}").status_code == 204
    assert api.get(f"/rooms/{room_id}").status_code == 404
    assert count(app, Room) == 0


def test_settings_change_only_what_is_sent(app, api):
    room_id = api.post("/rooms", json={"name": "Launch"}).get_json()["id"]
    response = api.patch(f"/rooms/{room_id}/settings", json={"auto_summarize": True})
    assert response.get_json() == {"max_agents": 5, "allow_agent_creation": True,
                                   "auto_summarize": True}
    assert api.get(f"/rooms/{room_id}/settings").get_json()["auto_summarize"] is True


@pytest.mark.parametrize(("value", "message"), [
    (0, "from 1 to 20"), (21, "from 1 to 20"), ("7", "whole number"), (True, "whole number"),
    (7.5, "whole number"),
])
def test_bad_max_agents_is_422(app, api, value, message):
    room_id = api.post("/rooms", json={"name": "Launch"}).get_json()["id"]
    response = api.patch(f"/rooms/{room_id}/settings",
                         json={"max_agents": value, "auto_summarize": True})
    assert response.status_code == 422
    error = error_of(response)
    assert error["field"] == "max_agents" and message in error["message"]
    assert room_row(app, room_id).settings.auto_summarize is False


def test_max_agents_cannot_drop_below_the_agents_in_the_room(app, api, owner):
    room_id = api.post("/rooms", json={"name": "Launch"}).get_json()["id"]
    for name in ("A1", "A2"):
        agent_id = api.post("/agents", json={"name": name, "prompt": "Helps the team."})
        api.post(f"/rooms/{room_id}/agents", json={"agent_id": agent_id.get_json()["id"]})
    response = api.patch(f"/rooms/{room_id}/settings", json={"max_agents": 1})
    assert response.status_code == 422 and "remove some" in error_of(response)["message"]


# ---- people ----

@pytest.fixture
def team(app, owner, make_user):
    """A room of the owner's with an admin and two members."""
    people = {"admin": make_user(name="Adam Admin"), "member": make_user(name="Mia Member"),
              "other": make_user(name="Oli Other")}
    with app.app_context():
        room = rf.create_room(owner, "Launch")
        rf.add_member(room, people["admin"], "admin")
        rf.add_member(room, people["member"])
        rf.add_member(room, people["other"])
        people["room"] = room.id
    return people


def roles(app, room_id: str) -> dict[str, str]:
    with app.app_context():
        return dict(db.session.execute(
            sa.select(RoomParticipant.user_id, RoomParticipant.role)
            .where(RoomParticipant.room_id == room_id)).all())


def test_members_list_shows_roles_in_order(api, team, owner):
    members = api.get(f"/rooms/{team['room']}/members").get_json()["members"]
    assert [(m["name"], m["role"], m["manageable"]) for m in members] == [
        ("Olive Owner", "owner", False), ("Adam Admin", "admin", True),
        ("Mia Member", "member", True), ("Oli Other", "member", True)]
    assert "email" not in members[0]


def test_change_role_and_remove_member(app, api, team):
    room, member = team["room"], team["member"].id
    response = api.patch(f"/rooms/{room}/members/{member}", json={"role": "admin"})
    assert response.status_code == 200 and response.get_json()["role"] == "admin"
    assert api.delete(f"/rooms/{room}/members/{member}").status_code == 204
    assert member not in roles(app, room)


@pytest.mark.parametrize(("body", "field"), [
    ({"role": "owner"}, "role"), ({"role": 1}, "role"), ({}, "role")])
def test_bad_role_is_422(app, api, team, body, field):
    before = roles(app, team["room"])
    response = api.patch(f"/rooms/{team['room']}/members/{team['member'].id}", json=body)
    assert response.status_code == 422 and error_of(response)["field"] == field
    assert roles(app, team["room"]) == before


def test_admin_cannot_remove_another_admin(app, client, team, make_user):
    second_admin = make_user()
    with app.app_context():
        rf.add_member(db.session.get(Room, team["room"]), second_admin, "admin")
    admin_api = Api(client, issue_token(app, team["admin"]))
    response = admin_api.delete(f"/rooms/{team['room']}/members/{second_admin.id}")
    assert response.status_code == 403 and "Only the owner" in error_of(response)["message"]


def test_unknown_member_is_404(api, team):
    response = api.delete(f"/rooms/{team['room']}/members/nobody")
    assert response.status_code == 404


def test_transfer_ownership_then_the_old_owner_may_leave(app, api, team, owner):
    room = team["room"]
    response = api.post(f"/rooms/{room}/transfer", json={"new_owner_id": team["member"].id})
    assert response.status_code == 200 and response.get_json()["role"] == "admin"
    assert roles(app, room)[team["member"].id] == "owner"
    assert api.post(f"/rooms/{room}/leave").status_code == 204
    assert owner.id not in roles(app, room)
    assert api.get(f"/rooms/{room}").status_code == 404


def test_owner_cannot_leave(app, api, team, owner):
    response = api.post(f"/rooms/{team['room']}/leave")
    assert response.status_code == 403 and "transfer ownership" in error_of(response)["message"]
    assert roles(app, team["room"])[owner.id] == "owner"


# ---- agents in a room ----

def room_agent_ids(app, room_id: str) -> set[str]:
    with app.app_context():
        return set(db.session.scalars(
            sa.select(RoomAgent.agent_id).where(RoomAgent.room_id == room_id)))


def test_add_list_and_remove_room_agents(app, api, team, owner, make_user):
    mine = api.post("/agents", json={"name": "Critic", "prompt": "Finds the weak spots."})
    mine = mine.get_json()["id"]
    with app.app_context():
        public = rf.create_agent(make_user(), "Helper", public=True).id
    for agent_id in (mine, public):
        response = api.post(f"/rooms/{team['room']}/agents", json={"agent_id": agent_id})
        assert response.status_code == 201 and response.get_json()["id"] == agent_id
    listed = api.get(f"/rooms/{team['room']}/agents").get_json()["agents"]
    assert [a["name"] for a in listed] == ["Critic", "Helper"]
    assert api.delete(f"/rooms/{team['room']}/agents/{public}").status_code == 204
    assert room_agent_ids(app, team["room"]) == {mine}
    assert api.delete(f"/rooms/{team['room']}/agents/{public}").status_code == 404


def test_someone_elses_private_agent_is_answered_like_an_unknown_one(app, api, team,
                                                                    make_user):
    with app.app_context():
        private = rf.create_agent(make_user(), "Secret").id
    hidden = api.post(f"/rooms/{team['room']}/agents", json={"agent_id": private})
    unknown = api.post(f"/rooms/{team['room']}/agents", json={"agent_id": "no-such-agent"})
    assert hidden.status_code == unknown.status_code == 422
    assert error_of(hidden) == error_of(unknown)
    assert error_of(hidden)["field"] == "agent_id"
    assert room_agent_ids(app, team["room"]) == set()


def test_adding_twice_or_beyond_the_rooms_limit_is_422(app, api, team):
    api.patch(f"/rooms/{team['room']}/settings", json={"max_agents": 1})
    first, second = (
        api.post("/agents", json={"name": n, "prompt": "Helps the team."}).get_json()["id"]
        for n in ("One", "Two"))
    api.post(f"/rooms/{team['room']}/agents", json={"agent_id": first})
    again = api.post(f"/rooms/{team['room']}/agents", json={"agent_id": first})
    assert again.status_code == 422 and "already in this room" in error_of(again)["message"]
    full = api.post(f"/rooms/{team['room']}/agents", json={"agent_id": second})
    assert full.status_code == 422 and "at most 1 agent" in error_of(full)["message"]
    assert room_agent_ids(app, team["room"]) == {first}


def test_members_may_add_agents_when_the_settings_allow(app, client, api, team):
    member_api = Api(client, issue_token(app, team["member"]))
    agent = member_api.post("/agents", json={"name": "Mine", "prompt": "Helps the team."})
    agent_id = agent.get_json()["id"]
    assert member_api.post(f"/rooms/{team['room']}/agents",
                           json={"agent_id": agent_id}).status_code == 201
    api.patch(f"/rooms/{team['room']}/settings", json={"allow_agent_creation": False})
    api.delete(f"/rooms/{team['room']}/agents/{agent_id}")
    refused = member_api.post(f"/rooms/{team['room']}/agents", json={"agent_id": agent_id})
    assert refused.status_code == 403
