"""Search through the API (only the caller's rooms, both orders, paging, clear refusals) and
what every body-taking route says to a body that is not a JSON object of the right types."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from discux.extensions import db
from discux.models import Agent, Message, Room, RoomInvitation, RoomParticipant
from tests.support import search_factories as sf
from tests.support.api_helpers import Api, error_of, issue_token


@pytest.fixture
def scene(app, make_user):
    reader, stranger = make_user(name="Rita Reader"), make_user(name="Sam Stranger")
    with app.app_context():
        mine = sf.room(reader.id, "Roadmap")
        theirs = sf.room(stranger.id, "Secret plans")
        ids = sf.messages(mine, [f"launch checklist item {n}" for n in range(5)]
                          + ["the launch slipped a week"])
        sf.messages(theirs, ["secret launch date is Friday"])
    return {"api": Api(app.test_client(), issue_token(app, reader)), "mine": mine,
            "theirs": theirs, "ids": ids}


def test_search_finds_only_messages_of_the_callers_rooms(scene):
    found = scene["api"].get("/search?q=launch").get_json()
    assert found["query"] == "launch" and found["order"] == "relevance"
    assert {hit["room_id"] for hit in found["results"]} == {scene["mine"]}
    assert len(found["results"]) == 6
    assert all("<mark>" in hit["snippet_html"] for hit in found["results"])
    assert "secret" not in str(found).lower()


def test_newest_first_pages_by_cursor(scene):
    api, ids = scene["api"], scene["ids"]
    first = api.get(f"/search?q=launch&order=newest&per_page=4&room_id={scene['mine']}")
    first = first.get_json()
    assert [hit["message_id"] for hit in first["results"]] == list(reversed(ids))[:4]
    assert first["next_before"] and first["page"] is None
    second = api.get(f"/search?q=launch&order=newest&per_page=4&before={first['next_before']}")
    assert [hit["message_id"] for hit in second.get_json()["results"]] == \
        list(reversed(ids))[4:]
    assert second.get_json()["next_before"] is None


def test_relevance_pages_by_number(scene):
    first = scene["api"].get("/search?q=launch&per_page=4").get_json()
    assert first["page"] == 1 and first["next_page"] == 2
    second = scene["api"].get("/search?q=launch&per_page=4&page=2").get_json()
    assert len(second["results"]) == 2 and second["next_page"] is None


@pytest.mark.parametrize(("query", "status", "field"), [
    ("q=", 422, "q"),
    ("q=%22%22", 422, "q"),
    ("q=launch&order=sideways", 422, "order"),
    ("q=launch&order=newest&before=xyz", 422, "before"),
    ("q=launch&per_page=0", 400, "per_page"),
    ("q=launch&page=abc", 400, "page"),
])
def test_unusable_searches_say_why(scene, query, status, field):
    response = scene["api"].get(f"/search?{query}")
    assert response.status_code == status
    assert error_of(response)["field"] == field


def test_searching_a_room_one_is_not_in_is_404(scene):
    response = scene["api"].get(f"/search?q=launch&room_id={scene['theirs']}")
    assert response.status_code == 404
    error = error_of(response)
    assert error["field"] == "room_id" and "Secret" not in response.get_data(as_text=True)


# ---- request bodies ----

@pytest.fixture
def owner_api(app, client, make_user):
    owner = make_user(plan="pro")
    with app.app_context():
        room = sf.room(owner.id, "Launch")
        agent = sf.agent(owner.id, "Critic")
    return Api(client, issue_token(app, owner)), room, agent


BODY_ROUTES = [
    ("POST", "/agents"), ("PATCH", "/agents/{agent}"), ("POST", "/rooms"),
    ("PATCH", "/rooms/{room}"), ("PATCH", "/rooms/{room}/settings"),
    ("PATCH", "/rooms/{room}/members/{someone}"), ("POST", "/rooms/{room}/transfer"),
    ("POST", "/rooms/{room}/agents"), ("POST", "/rooms/{room}/messages"),
    ("POST", "/rooms/{room}/invitations"), ("POST", "/invitations/accept"),
]
BAD_BODIES = {
    "form data": (b"name=Launch&content=hi", "application/x-www-form-urlencoded"),
    "broken JSON": (b'{"name": "Launch"', "application/json"),
    "an array": (b'["Launch"]', "application/json"),
    "a string": (b'"Launch"', "application/json"),
    "null": (b"null", "application/json"),
    "invalid UTF-8": (b'{"name": "\xff\xfe"}', "application/json"),
    "deep nesting": (b"[" * 100_000 + b"]" * 100_000, "application/json"),
}


def snapshot(app) -> tuple:
    with app.app_context():
        return tuple(
            db.session.scalar(sa.select(sa.func.count()).select_from(model))
            for model in (Room, Agent, Message, RoomInvitation, RoomParticipant))


@pytest.mark.parametrize("kind", list(BAD_BODIES))
@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
def test_a_body_that_is_not_a_json_object_is_400(app, owner_api, method, path, kind):
    api, room, agent = owner_api
    data, content_type = BAD_BODIES[kind]
    before = snapshot(app)
    response = api.request(method, path.format(room=room, agent=agent, someone="x"),
                           data=data, headers={"Content-Type": content_type})
    assert response.status_code == 400, response.get_data(as_text=True)
    error = error_of(response)
    assert error["code"] == "invalid_json" and "JSON" in error["message"]
    assert snapshot(app) == before


@pytest.mark.parametrize(("method", "path"), [r for r in BODY_ROUTES
                                              if r[1] != "/rooms/{room}/invitations"])
def test_an_empty_body_is_400_where_fields_are_needed(app, owner_api, method, path):
    api, room, agent = owner_api
    response = api.request(method, path.format(room=room, agent=agent, someone="x"))
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_json"


@pytest.mark.parametrize("text", ["\ud800 lone surrogate", "nul \u0000 inside"])
def test_strings_that_are_not_storable_text_are_422(app, owner_api, text):
    api, _, _ = owner_api
    before = snapshot(app)
    response = api.post("/rooms", json={"name": text})
    assert response.status_code == 422 and error_of(response)["field"] == "name"
    assert snapshot(app) == before


def test_unknown_fields_are_ignored(owner_api):
    api, _, _ = owner_api
    response = api.post("/rooms", json={"name": "Extra", "colour": "teal", "id": "mine"})
    assert response.status_code == 201
    assert response.get_json()["id"] != "mine"


def test_json_without_a_content_type_is_still_read(owner_api):
    api, _, _ = owner_api
    response = api.post("/rooms", data=b'{"name": "Plain curl -d"}')
    assert response.status_code == 201
