"""The side panel's rules: agents and their limit, settings, roles, transfer, leaving."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from discux import plans
from discux.errors import DiscuxError, Forbidden
from discux.extensions import db
from discux.models import Room, RoomAgent, RoomParticipant, User
from discux.rooms import service
from tests.support import room_factories as rf


@pytest.fixture
def team(app, make_user):
    """A room with an owner (pro plan), an admin and a member; returns (room_id, users)."""
    owner = make_user(name="Olive", plan="pro")
    admin = make_user(name="Adam")
    member = make_user(name="Mia")
    with app.app_context():
        room = rf.create_room(owner, "Roadmap")
        rf.add_member(room, admin, "admin")
        rf.add_member(room, member)
        return room.id, {"owner": owner, "admin": admin, "member": member}


def roles(app, room_id) -> dict[str, str]:
    with app.app_context():
        rows = db.session.execute(
            sa.select(User.name, RoomParticipant.role)
            .join(User, User.id == RoomParticipant.user_id)
            .where(RoomParticipant.room_id == room_id)
        ).all()
        return dict(rows)


def agents_in(app, room_id) -> dict[str, str]:
    """agent id -> id of the person who added it."""
    with app.app_context():
        return dict(db.session.execute(
            sa.select(RoomAgent.agent_id, RoomAgent.added_by).where(RoomAgent.room_id == room_id)
        ).all())


def test_adding_my_agent_shows_it_in_the_panel_with_who_added_it(app, client, csrf_token,
                                                                  login, team):
    room_id, users = team
    with app.app_context():
        agent_id = rf.create_agent(users["admin"], "Skeptic").id
    login(users["admin"])
    page = client.get(f"/rooms/{room_id}").get_data(as_text=True)
    assert "Skeptic</option>" in page and 'label="Your agents"' in page
    response = client.post(f"/rooms/{room_id}/agents",
                           data={"agent_id": agent_id, "csrf_token": csrf_token()})
    assert response.status_code == 303
    page = client.get(f"/rooms/{room_id}").get_data(as_text=True)
    assert "<strong>Skeptic</strong>" in page and "added by Adam" in page
    assert agents_in(app, room_id) == {agent_id: users["admin"].id}


def test_public_agents_of_others_are_offered_and_can_be_added(app, client, csrf_token, login,
                                                              team, make_user):
    room_id, users = team
    stranger = make_user()
    with app.app_context():
        public_id = rf.create_agent(stranger, "Open Oracle", public=True).id
        rf.create_agent(stranger, "Hidden Helper", public=False)
    login(users["owner"])
    page = client.get(f"/rooms/{room_id}").get_data(as_text=True)
    assert "Open Oracle</option>" in page and 'label="Public agents"' in page
    assert "Hidden Helper" not in page
    client.post(f"/rooms/{room_id}/agents", data={"agent_id": public_id,
                                                  "csrf_token": csrf_token()})
    assert public_id in agents_in(app, room_id)


def test_the_room_refuses_one_agent_more_than_its_limit(app, client, csrf_token, login, team):
    room_id, users = team
    with app.app_context():
        room = db.session.get(Room, room_id)
        room.settings.max_agents = 2
        db.session.commit()
        ids = [rf.create_agent(users["owner"], f"Agent {n}").id for n in range(3)]
    login(users["owner"])
    for agent_id in ids[:2]:
        assert client.post(f"/rooms/{room_id}/agents", data={
            "agent_id": agent_id, "csrf_token": csrf_token()}).status_code == 303
    response = client.post(f"/rooms/{room_id}/agents",
                           data={"agent_id": ids[2], "csrf_token": csrf_token()})
    assert response.status_code == 422
    assert "This room allows at most 2 agents." in response.get_data(as_text=True)
    assert set(agents_in(app, room_id)) == set(ids[:2])


def test_adding_the_same_agent_twice_says_so(app, client, csrf_token, login, team):
    room_id, users = team
    with app.app_context():
        agent = rf.create_agent(users["owner"], "Twin")
        rf.put_agent_in_room(db.session.get(Room, room_id), agent, users["owner"])
        agent_id = agent.id
    with app.app_context():
        owner = db.session.get(User, users["owner"].id)
        with pytest.raises(DiscuxError, match="Twin is already in this room"):
            service.add_agent_to_room(owner, db.session.get(Room, room_id),
                                      db.session.get(type(agent), agent_id))
    assert len(agents_in(app, room_id)) == 1


def test_add_agent_to_room_refuses_members_when_settings_say_so(app, team):
    room_id, users = team
    with app.app_context():
        room = db.session.get(Room, room_id)
        room.settings.allow_agent_creation = False
        db.session.commit()
        mine = rf.create_agent(users["member"], "Mine")
        with pytest.raises(Forbidden, match="Only the owner and admins may add agents"):
            service.add_agent_to_room(db.session.get(User, users["member"].id), room, mine)
    assert agents_in(app, room_id) == {}


def test_removing_an_agent_takes_it_out_of_the_room_only(app, client, csrf_token, login, team):
    room_id, users = team
    with app.app_context():
        agent = rf.create_agent(users["owner"], "Temporary")
        rf.put_agent_in_room(db.session.get(Room, room_id), agent, users["owner"])
        agent_id = agent.id
    login(users["admin"])
    response = client.post(f"/rooms/{room_id}/agents/{agent_id}/remove",
                           data={"csrf_token": csrf_token()})
    assert response.status_code == 303
    assert "No agents in this room yet." in client.get(f"/rooms/{room_id}").get_data(as_text=True)
    with app.app_context():
        assert db.session.get(type(agent), agent_id) is not None


def test_settings_are_saved_and_shown(app, client, csrf_token, login, team):
    room_id, users = team
    login(users["admin"])
    response = client.post(f"/rooms/{room_id}/settings", data={
        "max_agents": "12", "auto_summarize": "y", "csrf_token": csrf_token()})
    assert response.status_code == 303
    login(users["member"])
    page = client.get(f"/rooms/{room_id}").get_data(as_text=True)
    assert "Up to 12 agents" in page
    assert "Only the owner and admins add agents" in page
    assert "Automatic summaries on" in page


@pytest.mark.parametrize(("value", "message"), [
    ("0", "Choose a number from 1 to 20."),
    ("21", "Choose a number from 1 to 20."),
    ("many", "Not a valid integer value."),
    ("", "Enter how many agents the room may hold."),
])
def test_bad_max_agents_is_refused_next_to_the_field(app, client, csrf_token, login, team,
                                                     value, message):
    room_id, users = team
    login(users["owner"])
    response = client.post(f"/rooms/{room_id}/settings",
                           data={"max_agents": value, "csrf_token": csrf_token()})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'id="max_agents-error"' in page and message in page
    with app.app_context():
        assert db.session.get(Room, room_id).settings.max_agents == 5


def test_the_limit_cannot_drop_below_the_agents_already_in(app, client, csrf_token, login,
                                                           team):
    room_id, users = team
    with app.app_context():
        room = db.session.get(Room, room_id)
        for n in range(3):
            rf.put_agent_in_room(room, rf.create_agent(users["owner"], f"A{n}"), users["owner"])
    login(users["owner"])
    response = client.post(f"/rooms/{room_id}/settings",
                           data={"max_agents": "2", "csrf_token": csrf_token()})
    assert response.status_code == 422
    assert "This room has 3 agents; remove some" in response.get_data(as_text=True)


def test_owner_makes_a_member_admin_and_they_can_invite(app, client, csrf_token, login, team):
    room_id, users = team
    login(users["owner"])
    response = client.post(f"/rooms/{room_id}/members/{users['member'].id}/role",
                           data={"role": "admin", "csrf_token": csrf_token()})
    assert response.status_code == 303
    assert roles(app, room_id)["Mia"] == "admin"
    login(users["member"])
    page = client.get(f"/rooms/{room_id}").get_data(as_text=True)
    assert 'class="invite-button" data-dialog-title=' in page  # the header's Invite
    assert client.get(f"/rooms/{room_id}/invitations").status_code == 200


def test_removed_member_loses_the_room(app, client, csrf_token, login, team):
    room_id, users = team
    login(users["admin"])
    client.post(f"/rooms/{room_id}/members/{users['member'].id}/remove",
                data={"csrf_token": csrf_token()})
    assert "Mia" not in roles(app, room_id)
    login(users["member"])
    assert client.get(f"/rooms/{room_id}").status_code == 404
    assert "Roadmap" not in client.get("/rooms").get_data(as_text=True)


def test_transfer_leaves_exactly_one_owner(app, client, csrf_token, login, team):
    room_id, users = team
    login(users["owner"])
    response = client.post(f"/rooms/{room_id}/transfer",
                           data={"new_owner_id": users["member"].id, "csrf_token": csrf_token()})
    assert response.status_code == 303
    assert roles(app, room_id) == {"Olive": "admin", "Adam": "admin", "Mia": "owner"}
    with app.app_context():
        # The room now counts toward the new owner's plan, not the old one's.
        assert db.session.get(Room, room_id).created_by == users["member"].id
        assert plans.active_rooms_used(db.session.get(User, users["owner"].id)) == 0
    page = client.get(f"/rooms/{room_id}").get_data(as_text=True)
    assert "Ownership transferred" in page and "Leave room" in page


def test_a_second_transfer_by_the_former_owner_is_refused(app, team):
    room_id, users = team
    with app.app_context():
        room = db.session.get(Room, room_id)
        former = db.session.get(User, users["owner"].id)
        service.transfer_ownership(former, room, users["admin"].id)
        with pytest.raises(Forbidden):
            service.transfer_ownership(former, db.session.get(Room, room_id), users["member"].id)
    owners = [name for name, role in roles(app, room_id).items() if role == "owner"]
    assert owners == ["Adam"]


def test_transfer_to_someone_without_a_free_room_slot_is_refused(app, client, csrf_token,
                                                                 login, team):
    room_id, users = team
    with app.app_context():
        rf.create_room(users["member"], "Mia's own room")
    login(users["owner"])
    response = client.post(f"/rooms/{room_id}/transfer",
                           data={"new_owner_id": users["member"].id, "csrf_token": csrf_token()})
    assert response.status_code == 403
    assert "Mia is on the free plan and has no free active-room slot" in response.get_data(
        as_text=True)
    assert roles(app, room_id)["Olive"] == "owner"


def test_transfer_to_myself_is_refused(app, client, csrf_token, login, team):
    room_id, users = team
    login(users["owner"])
    response = client.post(f"/rooms/{room_id}/transfer",
                           data={"new_owner_id": users["owner"].id, "csrf_token": csrf_token()})
    assert response.status_code == 422
    assert "You already own this room" in response.get_data(as_text=True)
    assert roles(app, room_id)["Olive"] == "owner"


def test_member_leaves_and_the_room_is_gone_from_their_list(app, client, csrf_token, login,
                                                            team):
    room_id, users = team
    login(users["member"])
    response = client.post(f"/rooms/{room_id}/leave", data={"csrf_token": csrf_token()})
    assert response.status_code == 303 and response.location == "/rooms"
    page = client.get("/rooms").get_data(as_text=True)
    assert "You left “Roadmap”." in page
    assert client.get(f"/rooms/{room_id}").status_code == 404


def test_owner_cannot_leave_without_transferring(app, client, csrf_token, login, team):
    room_id, users = team
    login(users["owner"])
    response = client.post(f"/rooms/{room_id}/leave", data={"csrf_token": csrf_token()})
    assert response.status_code == 403
    assert "transfer ownership to someone else before leaving" in response.get_data(as_text=True)
    assert roles(app, room_id)["Olive"] == "owner"


def test_participants_show_role_and_an_offline_presence_dot(app, client, login, team):
    room_id, users = team
    login(users["member"])
    page = client.get(f"/rooms/{room_id}").get_data(as_text=True)
    for user in users.values():
        assert (f'<span class="presence" data-user-id="{user.id}" data-presence="offline"'
                in page)
    people = page[page.index('id="people"'):page.index('id="agents"')]
    assert people.index("Olive") < people.index("Adam") < people.index("Mia")
    assert "role-owner" in people and "role-admin" in people and "(you)" in people
