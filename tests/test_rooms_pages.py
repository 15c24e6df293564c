"""Creating, listing, editing, archiving and deleting rooms through the pages."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from discux.extensions import db
from discux.ids import utcnow
from discux.models import Message, Room, RoomParticipant, RoomSettings
from tests.support import room_factories as rf


def room_count(app) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(Room))


def create(client, csrf_token, name="Launch plan", description=""):
    return client.post("/rooms/new", data={"name": name, "description": description,
                                           "csrf_token": csrf_token()})


def test_new_user_sees_an_empty_room_list_with_a_way_to_start(client, login, make_user):
    login(make_user())
    page = client.get("/rooms").get_data(as_text=True)
    assert "You are not in any room yet" in page
    assert 'href="/rooms/new"' in page


def test_creating_a_room_makes_me_its_owner_with_default_settings(app, client, csrf_token,
                                                                  login, make_user):
    user = make_user(name="Ana")
    login(user)
    response = create(client, csrf_token, "Launch plan", "Ship it in May")
    assert response.status_code == 303
    page = client.get(response.location).get_data(as_text=True)
    assert "<h1>Launch plan</h1>" in page
    assert "Ship it in May" in page
    assert f'data-user-id="{user.id}"' in page
    with app.app_context():
        room = db.session.scalar(sa.select(Room))
        settings = db.session.get(RoomSettings, room.id)
        assert (settings.max_agents, settings.allow_agent_creation, settings.auto_summarize) == (
            5, True, False)
        owner = db.session.scalar(sa.select(RoomParticipant))
        assert (owner.user_id, owner.role) == (user.id, "owner")


@pytest.mark.parametrize(
    ("name", "description", "message"),
    [
        ("", "", "Give the room a name."),
        ("   ", "", "Give the room a name."),
        ("x" * 201, "", "Keep the name to 200 characters or fewer."),
        ("Fine", "y" * 1001, "Keep the description to 1000 characters or fewer."),
    ],
)
def test_bad_room_input_is_shown_next_to_the_field_and_nothing_is_saved(
        app, client, csrf_token, login, make_user, name, description, message):
    login(make_user())
    response = create(client, csrf_token, name, description)
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert f'class="field-error" id="{"name" if "name" in message else "description"}-error"' in page
    assert message in page
    if name.strip():
        assert name in page  # what was typed is kept
    assert room_count(app) == 0


def test_name_of_exactly_200_characters_is_accepted(client, csrf_token, login, make_user):
    login(make_user())
    assert create(client, csrf_token, "n" * 200).status_code == 303


def test_free_plan_refuses_a_second_active_room_and_writes_nothing(app, client, csrf_token,
                                                                   login, make_user):
    login(make_user())
    assert create(client, csrf_token, "First").status_code == 303
    response = create(client, csrf_token, "Second")
    assert response.status_code == 403
    page = response.get_data(as_text=True)
    assert "Your free plan allows 1 active room" in page
    assert "Archive a room or upgrade" in page
    assert room_count(app) == 1


def test_archiving_frees_the_slot_and_unarchiving_needs_one(app, client, csrf_token, login,
                                                           make_user):
    login(make_user())
    first = create(client, csrf_token, "First").location
    assert client.post(f"{first}/archive", data={"csrf_token": csrf_token()}).status_code == 303
    assert create(client, csrf_token, "Second").status_code == 303
    response = client.post(f"{first}/unarchive", data={"csrf_token": csrf_token()})
    assert response.status_code == 403
    assert "free plan allows 1 active room" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(Room.is_active).where(Room.name == "First")) is False


def test_pro_plan_creates_many_rooms(client, csrf_token, login, make_user):
    login(make_user(plan="pro"))
    for number in range(3):
        assert create(client, csrf_token, f"Room {number}").status_code == 303


def test_room_list_shows_mine_and_joined_with_role_activity_and_archived_apart(
        app, client, login, make_user):
    me, other = make_user(name="Me"), make_user(name="Other", plan="pro")
    with app.app_context():
        mine = rf.create_room(me, "My room")
        joined = rf.create_room(other, "Their room")
        rf.add_member(joined, me)
        old = rf.create_room(other, "Old room")
        rf.add_member(old, me, "admin")
        old.is_active = False
        db.session.add(Message(room_id=joined.id, content="hi", type="user", sender_id=other.id,
                               timestamp=utcnow() + timedelta(hours=2)))
        db.session.commit()
        activity = (utcnow() + timedelta(hours=2)).strftime("%Y-%m-%d %H:%M")
        mine_id = mine.id
    login(me)
    page = client.get("/rooms").get_data(as_text=True)
    active, archived = page.split('id="archived-rooms"')
    # Most recent activity first: the room with a message from the future leads.
    assert active.index("Their room") < active.index("My room")
    assert "last activity <time" in active and f"{activity} UTC" in active
    assert "role-owner" in active and "role-member" in active
    assert "Old room" in archived and "role-admin" in archived
    assert "Old room" not in active
    assert f'href="/rooms/{mine_id}"' in active


def test_editing_a_room_renames_it(app, client, csrf_token, login, make_user):
    user = make_user()
    login(user)
    room_url = create(client, csrf_token, "Draft").location
    form = client.get(f"{room_url}/edit").get_data(as_text=True)
    assert 'value="Draft"' in form
    response = client.post(f"{room_url}/edit", data={
        "name": "Final", "description": "Now with a plan", "csrf_token": csrf_token()})
    assert response.status_code == 303
    page = client.get(room_url).get_data(as_text=True)
    assert "<h1>Final</h1>" in page and "Now with a plan" in page


def test_editing_with_an_empty_name_is_refused(app, client, csrf_token, login, make_user):
    login(make_user())
    room_url = create(client, csrf_token, "Draft").location
    response = client.post(f"{room_url}/edit", data={"name": "", "csrf_token": csrf_token()})
    assert response.status_code == 422
    assert "Give the room a name." in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(Room.name)) == "Draft"


def test_archived_room_is_read_only(app, client, csrf_token, login, make_user):
    user = make_user()
    with app.app_context():
        room = rf.create_room(user, "Quiet room")
        agent_id = rf.create_agent(user, "Critic").id
        room_id = room.id
    login(user)
    client.post(f"/rooms/{room_id}/archive", data={"csrf_token": csrf_token()})
    page = client.get(f"/rooms/{room_id}").get_data(as_text=True)
    assert "This room is archived: it is read-only" in page
    assert "Add agent</button>" not in page and ">Invite</a>" not in page
    assert client.get(f"/rooms/{room_id}/invitations").status_code == 403
    assert "Unarchive room" in page
    for path, data in ((f"/rooms/{room_id}/agents", {"agent_id": agent_id}),
                       (f"/rooms/{room_id}/invitations", {"expiry": "7d"}),
                       (f"/rooms/{room_id}/edit", {"name": "Loud room"})):
        response = client.post(path, data={**data, "csrf_token": csrf_token()})
        assert response.status_code == 403
        assert "archived, so it is read-only" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(Room.name)) == "Quiet room"
    client.post(f"/rooms/{room_id}/unarchive", data={"csrf_token": csrf_token()})
    assert ">Invite</a>" in client.get(f"/rooms/{room_id}").get_data(as_text=True)
    invitations = client.get(f"/rooms/{room_id}/invitations").get_data(as_text=True)
    assert "Create link</button>" in invitations


def test_delete_asks_naming_the_room_then_removes_everything(app, client, csrf_token, login,
                                                            make_user):
    user = make_user()
    with app.app_context():
        room = rf.create_room(user, "Doomed room")
        rf.create_invitation(room, user)
        room_id = room.id
    login(user)
    confirm = client.get(f"/rooms/{room_id}/delete").get_data(as_text=True)
    assert "Delete “Doomed room”?" in confirm
    assert "Delete room “Doomed room”</button>" in confirm
    response = client.post(f"/rooms/{room_id}/delete", data={"csrf_token": csrf_token()})
    assert response.status_code == 303 and response.location == "/rooms"
    assert "Room “Doomed room” and everything in it was deleted." in client.get(
        "/rooms").get_data(as_text=True)
    assert client.get(f"/rooms/{room_id}").status_code == 404
    assert room_count(app) == 0


@pytest.mark.parametrize("payload", ['<script>alert("x")</script>', '"><img src=x onerror=alert(1)>'])
def test_hostile_room_name_and_description_render_inert(client, csrf_token, login, make_user,
                                                        payload):
    login(make_user())
    room_url = create(client, csrf_token, payload, payload).location
    for page in (client.get(room_url), client.get("/rooms"), client.get(f"{room_url}/delete")):
        html = page.get_data(as_text=True)
        assert payload not in html
        assert "&lt;" in html
