"""Who may see and use an agent: ownership, the public gallery, copying, adding to rooms,
and what deleting an agent does to the rooms and messages it was in."""

from __future__ import annotations

import html
import re

import pytest
import sqlalchemy as sa

from discux.extensions import db
from discux.models import Agent, Message, RoomAgent
from tests.support.agent_factories import VALID_FORM, agent_count_of, agent_reply, create_agent
from tests.support.room_factories import add_member, create_room, put_agent_in_room


def page_text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def card_names(response) -> list[str]:
    """Agent names in the order their cards appear."""
    return re.findall(r'<h3><a href="/agents/[^"]+">([^<]+)</a></h3>',
                      response.get_data(as_text=True))


# ---- ownership ----

@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/agents/{id}"),
        ("post", "/agents/{id}"),
        ("get", "/agents/{id}/delete"),
        ("post", "/agents/{id}/delete"),
        ("get", "/agents/{id}/use"),
        ("post", "/agents/{id}/copy"),
        ("post", "/agents/{id}/add-to-room"),
        ("post", "/agents/{id}/try"),
    ],
)
def test_another_users_private_agent_is_not_found_anywhere(
    app, client, make_user, login, csrf_token, method, path
):
    owner, stranger = make_user(), make_user()
    with app.app_context():
        agent_id = create_agent(owner, "Secret", prompt="A private persona nobody else sees.").id
    login(stranger)
    data = {**VALID_FORM, "csrf_token": csrf_token(), "try_message": "hi"}
    response = getattr(client, method)(path.format(id=agent_id),
                                       **({"data": data} if method == "post" else {}))
    assert response.status_code == 404
    assert "A private persona" not in page_text(response)
    with app.app_context():
        agent = db.session.get(Agent, agent_id)
        assert agent is not None and agent.name == "Secret"
        assert agent_count_of(stranger) == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", "/agents/{id}"), ("get", "/agents/{id}/delete"), ("post", "/agents/{id}/delete"),
     ("post", "/agents/{id}/try")],
)
def test_a_public_agent_can_be_seen_but_not_changed_by_others(
    app, client, make_user, login, csrf_token, method, path
):
    owner, other = make_user(), make_user()
    with app.app_context():
        agent_id = create_agent(owner, "Shared", public=True).id
    login(other)
    data = {**VALID_FORM, "csrf_token": csrf_token(), "try_message": "hi"}
    response = getattr(client, method)(path.format(id=agent_id),
                                       **({"data": data} if method == "post" else {}))
    assert response.status_code == 404
    with app.app_context():
        assert db.session.get(Agent, agent_id).name == "Shared"


def test_a_public_agent_page_shows_persona_and_use_but_no_edit_form(
    app, client, make_user, login
):
    owner, other = make_user(name="Olga"), make_user()
    with app.app_context():
        agent_id = create_agent(owner, "Shared", public=True,
                                prompt="Explains trade-offs with numbers.").id
    login(other)
    text = page_text(client.get(f"/agents/{agent_id}"))
    assert "Explains trade-offs with numbers." in text
    assert "by Olga" in text and "Use this agent" in text
    assert "Save changes" not in text and "Delete agent" not in text


def test_another_users_private_agent_is_not_in_my_list(app, client, make_user, login):
    owner, stranger = make_user(), make_user()
    with app.app_context():
        create_agent(owner, "Secret")
    login(stranger)
    assert "Secret" not in page_text(client.get("/agents"))


# ---- gallery ----

def test_gallery_lists_only_public_agents_most_used_first(app, client, make_user, login):
    alice, bob = make_user(), make_user(plan="pro")
    with app.app_context():
        create_agent(alice, "Rarely used", public=True, usage_count=2)
        create_agent(alice, "Private one", usage_count=99)
        create_agent(bob, "Popular", public=True, usage_count=50)
        create_agent(bob, "Unused", public=True)
    login(alice)
    response = client.get("/agents/gallery")
    assert card_names(response) == ["Popular", "Rarely used", "Unused"]
    assert "Private one" not in page_text(response)
    assert "used 50 times" in page_text(response)


def test_gallery_filters_by_style(app, client, make_user, login):
    user = make_user(plan="pro")
    with app.app_context():
        create_agent(user, "Numbers", public=True, style="analytical")
        create_agent(user, "Ideas", public=True, style="creative")
    login(user)
    assert card_names(client.get("/agents/gallery?style=creative")) == ["Ideas"]
    assert card_names(client.get("/agents/gallery?style=analytical")) == ["Numbers"]
    # An unknown style is ignored rather than hiding everything.
    assert sorted(card_names(client.get("/agents/gallery?style=bogus"))) == ["Ideas", "Numbers"]


def test_gallery_searches_names_ignoring_case_and_wildcards(app, client, make_user, login):
    user = make_user(plan="pro")
    with app.app_context():
        create_agent(user, "Data Analyst", public=True)
        create_agent(user, "Copy_Writer", public=True)
        create_agent(user, "Coach", public=True)
    login(user)
    assert card_names(client.get("/agents/gallery?q=analyst")) == ["Data Analyst"]
    assert card_names(client.get("/agents/gallery?q=_")) == ["Copy_Writer"]
    assert card_names(client.get("/agents/gallery?q=%25")) == []
    empty = page_text(client.get("/agents/gallery?q=zebra"))
    assert "No public agent matches “zebra”" in empty


def test_empty_gallery_invites_sharing(client, make_user, login):
    login(make_user())
    assert "Nobody has shared an agent yet" in page_text(client.get("/agents/gallery"))


# ---- copy ----

def test_copying_a_public_agent_makes_a_private_editable_copy(
    app, client, make_user, login, csrf_token
):
    owner, me = make_user(), make_user()
    with app.app_context():
        source_id = create_agent(owner, "Analyst", public=True, style="direct",
                                 emoji="🔬", usage_count=7).id
        create_agent(me, "Analyst")
    login(me)
    response = client.post(f"/agents/{source_id}/copy", data={"csrf_token": csrf_token()})
    assert response.status_code == 303
    page = page_text(client.get(response.headers["Location"]))
    assert "Copied Analyst into your agents" in page and "Save changes" in page
    with app.app_context():
        copy = db.session.scalars(
            sa.select(Agent).where(Agent.created_by == me.id, Agent.name == "Analyst (copy)")
        ).one()
        assert (copy.emoji, copy.style, copy.is_public, copy.usage_count) == (
            "🔬", "direct", False, 0)
        assert agent_count_of(me) == 2


def test_copy_counts_against_my_plan(app, client, make_user, login, csrf_token):
    owner, me = make_user(), make_user()
    with app.app_context():
        source_id = create_agent(owner, "Shared", public=True).id
        for name in ("One", "Two", "Three"):
            create_agent(me, name)
    login(me)
    response = client.post(f"/agents/{source_id}/copy", data={"csrf_token": csrf_token()})
    assert response.status_code == 403
    assert "Your free plan allows 3 agents" in page_text(response)
    with app.app_context():
        assert agent_count_of(me) == 3


# ---- add to a room ----

def test_use_page_lists_only_rooms_where_i_may_add_agents(app, client, make_user, login):
    me, friend = make_user(plan="pro"), make_user(plan="pro")
    with app.app_context():
        agent_id = create_agent(friend, "Helper", public=True).id
        create_room(me, "My room")
        locked = create_room(friend, "Locked room", allow_agent_creation=False)
        add_member(locked, me)
        open_room = create_room(friend, "Open room")
        add_member(open_room, me)
        create_room(friend, "Not mine")
    login(me)
    text = page_text(client.get(f"/agents/{agent_id}/use"))
    options = re.findall(r'<option[^>]*>([^<]+)</option>', text)
    assert options == ["My room", "Open room"]
    assert "Locked room" not in text and "Not mine" not in text


def test_adding_a_public_agent_to_my_room(app, client, make_user, login, csrf_token):
    me, friend = make_user(), make_user()
    with app.app_context():
        agent_id = create_agent(friend, "Helper", public=True).id
        room_id = create_room(me, "Planning").id
    login(me)
    response = client.post(f"/agents/{agent_id}/add-to-room",
                           data={"csrf_token": csrf_token(), "room_id": room_id})
    assert response.status_code == 303
    assert f"/rooms/{room_id}" in response.headers["Location"]
    with app.app_context():
        assert db.session.scalar(sa.select(RoomAgent).where(
            RoomAgent.room_id == room_id, RoomAgent.agent_id == agent_id)) is not None
    assert "already there" in page_text(client.get(f"/agents/{agent_id}/use"))


def test_member_may_not_add_agents_where_the_room_forbids_it(
    app, client, make_user, login, csrf_token
):
    me, owner = make_user(), make_user()
    with app.app_context():
        agent_id = create_agent(me, "Mine").id
        room = create_room(owner, "Strict", allow_agent_creation=False)
        add_member(room, me)
        room_id = room.id
    login(me)
    response = client.post(f"/agents/{agent_id}/add-to-room",
                           data={"csrf_token": csrf_token(), "room_id": room_id})
    assert response.status_code == 403
    assert "Only the owner and admins may add agents" in page_text(response)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(RoomAgent)) == 0


def test_adding_to_a_room_i_am_not_in_is_not_found(app, client, make_user, login, csrf_token):
    me, owner = make_user(), make_user()
    with app.app_context():
        agent_id = create_agent(me, "Mine").id
        room_id = create_room(owner, "Elsewhere").id
    login(me)
    response = client.post(f"/agents/{agent_id}/add-to-room",
                           data={"csrf_token": csrf_token(), "room_id": room_id})
    assert response.status_code == 404
    assert "Elsewhere" not in page_text(response)


def test_a_full_room_refuses_another_agent(app, client, make_user, login, csrf_token):
    me = make_user(plan="pro")
    with app.app_context():
        room = create_room(me, "Small", max_agents=1)
        put_agent_in_room(room, create_agent(me, "First"), me)
        agent_id = create_agent(me, "Second").id
        room_id = room.id
    login(me)
    assert "Small (full: 1 of 1 agents)" in page_text(client.get(f"/agents/{agent_id}/use"))
    response = client.post(f"/agents/{agent_id}/add-to-room",
                           data={"csrf_token": csrf_token(), "room_id": room_id})
    assert response.status_code == 422
    assert "This room allows at most 1 agent" in page_text(response)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(RoomAgent)) == 1


# ---- delete ----

def test_delete_asks_for_confirmation_first(app, client, make_user, login):
    me = make_user()
    with app.app_context():
        room = create_room(me, "Planning")
        agent = create_agent(me, "Ada")
        put_agent_in_room(room, agent, me)
        agent_id = agent.id
    login(me)
    text = page_text(client.get(f"/agents/{agent_id}/delete"))
    assert "Delete 🤖 Ada?" in text
    assert "It leaves the 1 room it is in." in text
    assert ">Delete agent</button>" in text
    page = page_text(client.get(f"/agents/{agent_id}"))
    assert 'data-confirm="Delete Ada? It leaves every room; its past messages stay."' in page


def test_deleted_agent_leaves_its_rooms_and_its_messages_keep_its_name(
    app, client, make_user, login, csrf_token
):
    me, friend = make_user(plan="pro"), make_user(plan="pro")
    with app.app_context():
        agent = create_agent(me, "Ada", emoji="🔬")
        room_a, room_b = create_room(me, "A"), create_room(friend, "B")
        put_agent_in_room(room_a, agent, me)
        put_agent_in_room(room_b, agent, friend)
        message_id = agent_reply(room_a, agent, "Here are the numbers.").id
        agent_id = agent.id
    login(me)
    response = client.post(f"/agents/{agent_id}/delete", data={"csrf_token": csrf_token()})
    assert response.status_code == 303 and response.headers["Location"].endswith("/agents")
    assert "Deleted Ada" in page_text(client.get("/agents"))
    with app.app_context():
        assert db.session.get(Agent, agent_id) is None
        assert db.session.scalar(sa.select(sa.func.count()).select_from(RoomAgent)) == 0
        message = db.session.get(Message, message_id)
        assert (message.content, message.sender_name, message.sender_emoji) == (
            "Here are the numbers.", "Ada", "🔬")
    assert client.get(f"/agents/{agent_id}").status_code == 404


def test_deleting_frees_a_plan_slot(app, client, make_user, login, csrf_token):
    me = make_user()
    with app.app_context():
        ids = [create_agent(me, name).id for name in ("One", "Two", "Three")]
    login(me)
    client.post(f"/agents/{ids[0]}/delete", data={"csrf_token": csrf_token()})
    listing = page_text(client.get("/agents"))
    assert "2 of 3" in listing and "New agent" in listing
