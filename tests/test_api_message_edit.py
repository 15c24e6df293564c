"""Editing a message and replying through the API: the author's own only, validated as posting."""

from __future__ import annotations

import pytest

from discux.extensions import db
from discux.models import Message
from tests.support import chat_factories as cf
from tests.support.api_helpers import Api, error_of, issue_token


@pytest.fixture
def people(make_user):
    return {"owner": make_user(name="Olive Owner"), "member": make_user(name="Mia Member"),
            "outsider": make_user(name="Otto Outsider")}


@pytest.fixture
def room_id(app, people) -> str:
    with app.app_context():
        room = cf.create_room(people["owner"], "Launch plan")
        cf.add_member(room, people["member"])
        return room.id


def api_as(app, client, person) -> Api:
    return Api(client, issue_token(app, person))


def posted(api, room_id, content="Ship on Monday", **fields) -> dict:
    response = api.post(f"/rooms/{room_id}/messages", json={"content": content, **fields})
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def test_author_edits_own_message_through_the_api(app, client, people, room_id):
    api = api_as(app, client, people["member"])
    message = posted(api, room_id)
    response = api.patch(f"/rooms/{room_id}/messages/{message['id']}",
                         json={"content": "Ship on *Tuesday*"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["content"] == "Ship on *Tuesday*" and body["edited_at"]
    assert body["content_html"] == "<p>Ship on <em>Tuesday</em></p>\n"
    with app.app_context():
        assert db.session.get(Message, message["id"]).content == "Ship on *Tuesday*"


@pytest.mark.parametrize("content, status", [("", 422), ("x" * 4001, 422), (7, 422)])
def test_an_edit_is_validated_like_a_post(app, client, people, room_id, content, status):
    api = api_as(app, client, people["member"])
    message = posted(api, room_id)
    response = api.patch(f"/rooms/{room_id}/messages/{message['id']}", json={"content": content})
    assert response.status_code == status
    assert error_of(response)["field"] == "content"


def test_only_the_author_edits_and_outsiders_learn_nothing(app, client, people, room_id):
    message = posted(api_as(app, client, people["member"]), room_id)
    path = f"/rooms/{room_id}/messages/{message['id']}"
    owner = api_as(app, client, people["owner"]).patch(path, json={"content": "Mine"})
    assert owner.status_code == 403
    assert error_of(owner)["message"] == "You can only edit your own messages."
    outsider = api_as(app, client, people["outsider"]).patch(path, json={"content": "Mine"})
    assert outsider.status_code == 404
    assert Api(client, None).patch(path, json={"content": "Mine"}).status_code == 401


def test_a_reply_through_the_api_names_and_quotes_its_message(app, client, people, room_id):
    api = api_as(app, client, people["member"])
    original = posted(api_as(app, client, people["owner"]), room_id, "Who drafts the post?")
    reply = posted(api, room_id, "I will.", reply_to_id=original["id"])
    assert reply["reply_to_id"] == original["id"]
    assert (reply["quote_name"], reply["quote_text"]) == ("Olive Owner", "Who drafts the post?")
    gone = api.post(f"/rooms/{room_id}/messages",
                    json={"content": "To nothing", "reply_to_id": "not-an-id"})
    assert gone.status_code == 422 and error_of(gone)["field"] == "reply_to_id"
