"""Agents through the API: the same rules and plan limit as the agent pages, the error shape with
the field at fault, and nothing written when a request is refused."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from discux.extensions import db
from discux.models import Agent, RoomAgent
from tests.support import agent_factories as af
from tests.support import room_factories as rf
from tests.support.api_helpers import Api, error_of, issue_token

ADA = {"name": "Ada", "prompt": "A careful data analyst who asks for the numbers first.",
       "emoji": "📊", "color": "#10b981", "style": "analytical"}


@pytest.fixture
def user(make_user):
    return make_user(name="Pat Person")


@pytest.fixture
def api(app, client, user):
    return Api(client, issue_token(app, user))


def agents_of(app, user) -> list[Agent]:
    with app.app_context():
        rows = list(db.session.scalars(sa.select(Agent).where(Agent.created_by == user.id)))
        db.session.expunge_all()
        return rows


def test_create_agent_returns_it_and_stores_it(app, api, user):
    response = api.post("/agents", json=ADA)
    assert response.status_code == 201
    agent = response.get_json()
    assert agent["name"] == "Ada" and agent["color"] == "#10B981" and agent["owned"] is True
    assert agent["is_public"] is False and agent["model"] is None and agent["usage_count"] == 0
    [stored] = agents_of(app, user)
    assert stored.id == agent["id"] and stored.style == "analytical"
    assert api.get(f"/agents/{agent['id']}").get_json() == agent


def test_defaults_fill_what_is_not_sent(api):
    agent = api.post("/agents", json={"name": "Bo", "prompt": "Keeps answers short."}).get_json()
    assert (agent["emoji"], agent["color"], agent["style"]) == ("🤖", "#3B82F6", "professional")


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"name": ""}, "name", "Give the agent a name."),
    ({"name": "x" * 101}, "name", "100 characters or fewer"),
    ({"name": "Ada @home"}, "name", 'cannot contain "@"'),
    ({"prompt": "short"}, "prompt", "at least 10 characters"),
    ({"emoji": "🤖🚀"}, "emoji", "exactly one emoji"),
    ({"color": "blue"}, "color", "six hex digits"),
    ({"style": "sarcastic"}, "style", "Choose one of the styles"),
    ({"name": 7}, "name", "must be a string"),
    ({"is_public": "yes"}, "is_public", "must be true or false"),
    ({"model": ["gpt"]}, "model", "must be a string or null"),
])
def test_invalid_agent_is_422_naming_the_field(app, api, user, changes, field, message):
    response = api.post("/agents", json={**ADA, **changes})
    assert response.status_code == 422
    error = error_of(response)
    assert error["field"] == field and message in error["message"]
    assert agents_of(app, user) == []


def test_several_problems_are_all_listed(api):
    error = error_of(api.post("/agents", json={"name": "", "prompt": ""}))
    assert error["field"] == "name"
    assert set(error["fields"]) == {"name", "prompt"}


def test_missing_body_fields_are_judged_by_the_rules(api):
    error = error_of(api.post("/agents", json={}))
    assert error["field"] == "name" and "Give the agent a name." in error["message"]


def test_names_are_unique_per_creator_ignoring_case(app, api, user):
    api.post("/agents", json=ADA)
    response = api.post("/agents", json={**ADA, "name": "ADA"})
    assert response.status_code == 422 and error_of(response)["field"] == "name"
    assert len(agents_of(app, user)) == 1


def test_fourth_agent_on_the_free_plan_is_refused_and_not_written(app, api, user):
    for name in ("One", "Two", "Three"):
        assert api.post("/agents", json={**ADA, "name": name}).status_code == 201
    response = api.post("/agents", json={**ADA, "name": "Four"})
    assert response.status_code == 403
    error = error_of(response)
    assert error["code"] == "plan_limit" and "free plan allows 3 agents" in error["message"]
    assert "field" not in error
    assert sorted(a.name for a in agents_of(app, user)) == ["One", "Three", "Two"]


def test_pro_plan_is_not_limited_to_three(app, client, make_user):
    api = Api(client, issue_token(app, make_user(plan="pro")))
    for n in range(4):
        assert api.post("/agents", json={**ADA, "name": f"Agent {n}"}).status_code == 201


def test_update_changes_only_what_is_sent(app, api, user):
    agent = api.post("/agents", json={**ADA, "model": "fake-large"}).get_json()
    response = api.patch(f"/agents/{agent['id']}", json={"color": "#ef4444", "is_public": True})
    assert response.status_code == 200
    updated = response.get_json()
    assert updated["color"] == "#EF4444" and updated["is_public"] is True
    assert updated["name"] == "Ada" and updated["prompt"] == ADA["prompt"]
    assert updated["model"] == "fake-large"
    cleared = api.patch(f"/agents/{agent['id']}", json={"model": None}).get_json()
    assert cleared["model"] is None


def test_update_that_breaks_a_rule_changes_nothing(app, api, user):
    agent = api.post("/agents", json=ADA).get_json()
    response = api.patch(f"/agents/{agent['id']}", json={"color": "#00FF00", "prompt": "tiny"})
    assert response.status_code == 422 and error_of(response)["field"] == "prompt"
    [stored] = agents_of(app, user)
    assert stored.color == "#10B981" and stored.prompt == ADA["prompt"]


def test_update_with_nothing_to_change_says_so(api):
    agent = api.post("/agents", json=ADA).get_json()
    response = api.patch(f"/agents/{agent['id']}", json={"colour": "#000000"})
    assert response.status_code == 422
    assert "Nothing to change" in error_of(response)["message"]


def test_delete_agent_takes_it_out_of_its_rooms(app, api, user):
    agent = api.post("/agents", json=ADA).get_json()
    with app.app_context():
        room = rf.create_room(user, "Numbers")
        rf.put_agent_in_room(room, db.session.get(Agent, agent["id"]), user)
    assert api.delete(f"/agents/{agent['id']}").status_code == 204
    assert api.get(f"/agents/{agent['id']}").status_code == 404
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(RoomAgent)) == 0


def test_lists_mine_and_the_public_gallery(app, api, user, make_user):
    other = make_user()
    with app.app_context():
        af.create_agent(other, "Shared", public=True, usage_count=5)
        af.create_agent(other, "Hidden")
    api.post("/agents", json=ADA)
    assert [a["name"] for a in api.get("/agents").get_json()["agents"]] == ["Ada"]
    gallery = api.get("/agents/public").get_json()["agents"]
    assert [(a["name"], a["owned"]) for a in gallery] == [("Shared", False)]
    assert api.get("/agents/public?q=hid").get_json()["agents"] == []


def test_another_users_public_agent_is_readable_but_not_changeable(app, api, make_user):
    other = make_user()
    with app.app_context():
        shared = af.create_agent(other, "Shared", public=True).id
        hidden = af.create_agent(other, "Hidden").id
    assert api.get(f"/agents/{shared}").get_json()["owned"] is False
    assert api.patch(f"/agents/{shared}", json={"name": "Mine now"}).status_code == 404
    assert api.delete(f"/agents/{shared}").status_code == 404
    response = api.get(f"/agents/{hidden}")
    assert response.status_code == 404 and "Hidden" not in response.get_data(as_text=True)
