"""Messages through the API: keyset pages newest first without gaps or repeats, posting with the
composer's rules and the plan's monthly quota, deleting, and agents answering an API post."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from discux.discussion.engine import engine_for
from discux.extensions import db
from discux.models import Message, MessageMention, Room
from tests.support import chat_factories as cf
from tests.support.api_helpers import Api, error_of, issue_token
from tests.support.fake_llm import FakeReply


@pytest.fixture
def people(make_user):
    return {"owner": make_user(name="Olive Owner"), "member": make_user(name="Mia Member")}


@pytest.fixture
def room_id(app, people) -> str:
    with app.app_context():
        room = cf.create_room(people["owner"], "Launch plan")
        cf.add_member(room, people["member"])
        return room.id


@pytest.fixture
def api(app, client, people):
    return Api(client, issue_token(app, people["owner"]))


def stored_messages(app, room_id: str) -> list[Message]:
    with app.app_context():
        rows = list(db.session.scalars(
            sa.select(Message).where(Message.room_id == room_id).order_by(Message.id)))
        db.session.expunge_all()
        return rows


def test_pages_walk_120_messages_newest_first_without_gaps_or_repeats(app, api, people,
                                                                     room_id):
    with app.app_context():
        written = [cf.create_message(room_id, people["owner"] if n % 2 else people["member"],
                                     f"Message {n}").id for n in range(120)]
    seen, pages, before = [], [], None
    while True:
        query = f"?limit=50&before={before}" if before else "?limit=50"
        page = api.get(f"/rooms/{room_id}/messages{query}").get_json()
        pages.append(len(page["messages"]))
        seen += [m["id"] for m in page["messages"]]
        before = page["next_before"]
        if before is None:
            break
    assert pages == [50, 50, 20]
    assert seen == list(reversed(written))
    assert len(set(seen)) == 120


def test_a_page_ending_exactly_at_the_oldest_message_has_no_next(app, api, people, room_id):
    with app.app_context():
        for n in range(4):
            cf.create_message(room_id, people["owner"], f"Message {n}")
    first = api.get(f"/rooms/{room_id}/messages?limit=2").get_json()
    second = api.get(f"/rooms/{room_id}/messages?limit=2&before={first['next_before']}")
    assert second.get_json()["next_before"] is None
    assert len(second.get_json()["messages"]) == 2


def test_messages_have_the_socket_payload_shape(app, api, people, room_id):
    with app.app_context():
        cf.create_message(room_id, people["member"], "**Hello** team")
    [message] = api.get(f"/rooms/{room_id}/messages").get_json()["messages"]
    assert message["content"] == "**Hello** team"
    assert message["content_html"] == "<p><strong>Hello</strong> team</p>\n"
    assert (message["type"], message["sender_name"], message["room_id"]) == (
        "user", "Mia Member", room_id)
    assert {"id", "timestamp", "status", "mentions", "humans_only"} <= set(message)


@pytest.mark.parametrize(("query", "field"), [
    ("limit=0", "limit"), ("limit=101", "limit"), ("limit=ten", "limit"), ("limit=-1", "limit"),
    ("before=not-an-id", "before"), ("before=' OR 1=1 --", "before"),
])
def test_bad_paging_parameters_are_400(api, room_id, query, field):
    response = api.get(f"/rooms/{room_id}/messages?{query}")
    assert response.status_code == 400
    assert error_of(response)["field"] == field


def test_post_returns_the_stored_message(app, api, room_id):
    response = api.post(f"/rooms/{room_id}/messages",
                        json={"content": "  Ship it on *Friday*  ", "humans_only": True})
    assert response.status_code == 201
    message = response.get_json()
    assert message["content"] == "Ship it on *Friday*" and message["humans_only"] is True
    assert message["content_html"] == "<p>Ship it on <em>Friday</em></p>\n"
    [stored] = stored_messages(app, room_id)
    assert stored.id == message["id"] and stored.sender_name == "Olive Owner"


@pytest.mark.parametrize(("body", "field", "text"), [
    ({"content": ""}, "content", "Write something"),
    ({"content": "   "}, "content", "Write something"),
    ({"content": "x" * 4001}, "content", "at most 4,000 characters"),
    ({"content": "bad\u0000byte"}, "content", "NUL"),
    ({}, "content", "required"),
    ({"content": 42}, "content", "must be a string"),
    ({"content": "Hi", "humans_only": "yes"}, "humans_only", "true or false"),
])
def test_invalid_message_is_422_and_not_stored(app, api, room_id, body, field, text):
    response = api.post(f"/rooms/{room_id}/messages", json=body)
    assert response.status_code == 422
    error = error_of(response)
    assert error["field"] == field and text in error["message"]
    assert stored_messages(app, room_id) == []


def test_the_monthly_message_quota_applies(app, api, people, room_id):
    with app.app_context():
        for n in range(100):
            cf.create_message(room_id, people["owner"], f"Earlier {n}")
    response = api.post(f"/rooms/{room_id}/messages", json={"content": "One more"})
    assert response.status_code == 403
    error = error_of(response)
    assert error["code"] == "plan_limit" and "100 messages a month" in error["message"]
    assert len(stored_messages(app, room_id)) == 100


def test_an_archived_room_is_read_only(app, api, room_id):
    with app.app_context():
        db.session.get(Room, room_id).is_active = False
        db.session.commit()
    response = api.post(f"/rooms/{room_id}/messages", json={"content": "Hello"})
    assert response.status_code == 403 and "archived" in error_of(response)["message"]
    assert api.get(f"/rooms/{room_id}/messages").status_code == 200


def test_delete_own_message_and_not_someone_elses(app, client, api, people, room_id):
    with app.app_context():
        mine = cf.create_message(room_id, people["member"], "Mine").id
        theirs = cf.create_message(room_id, people["owner"], "Owner's").id
    member_api = Api(client, issue_token(app, people["member"]))
    assert member_api.delete(f"/rooms/{room_id}/messages/{theirs}").status_code == 403
    assert member_api.delete(f"/rooms/{room_id}/messages/{mine}").status_code == 204
    assert [m.id for m in stored_messages(app, room_id)] == [theirs]
    missing = member_api.delete(f"/rooms/{room_id}/messages/{mine}")
    assert missing.status_code == 404 and error_of(missing)["code"] == "not_found"


def test_a_message_id_from_another_room_is_not_found(app, api, people, room_id, make_user):
    stranger = make_user()
    with app.app_context():
        elsewhere = cf.create_room(stranger, "Elsewhere")
        foreign = cf.create_message(elsewhere, stranger, "Not yours").id
    response = api.delete(f"/rooms/{room_id}/messages/{foreign}")
    assert response.status_code == 404
    with app.app_context():
        assert db.session.get(Message, foreign) is not None


# ---- agents answer API posts like composer posts ----

def test_posting_a_mention_through_the_api_makes_the_agent_answer(llm_app, fake, people):
    fake.respond_with(lambda request: FakeReply("The numbers say ship on Friday."))
    with llm_app.app_context():
        room = cf.create_room(people["owner"], "Launch plan")
        agent = cf.create_agent(people["owner"], "Critic")
        cf.add_agent(room, agent, people["owner"])
        room_id, agent_id = room.id, agent.id
    api = Api(llm_app.test_client(), issue_token(llm_app, people["owner"]))

    response = api.post(f"/rooms/{room_id}/messages", json={"content": "@Critic when do we ship?"})

    assert response.status_code == 201
    assert response.get_json()["mentions"] == [agent_id]
    assert engine_for(llm_app).wait_idle(room_id, timeout=15)
    newest = api.get(f"/rooms/{room_id}/messages").get_json()["messages"][0]
    assert (newest["type"], newest["sender_id"], newest["status"]) == (
        "agent", agent_id, "complete")
    assert newest["content"] == "The numbers say ship on Friday."
    with llm_app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(MessageMention)) == 1


def test_a_humans_only_post_reaches_no_agent(llm_app, fake, people):
    with llm_app.app_context():
        room = cf.create_room(people["owner"], "Launch plan")
        agent = cf.create_agent(people["owner"], "Critic")
        cf.add_agent(room, agent, people["owner"])
        room_id = room.id
    api = Api(llm_app.test_client(), issue_token(llm_app, people["owner"]))
    response = api.post(f"/rooms/{room_id}/messages",
                        json={"content": "@Critic only for humans", "humans_only": True})
    assert response.status_code == 201
    assert engine_for(llm_app).wait_idle(room_id, timeout=15)
    assert [m["type"] for m in api.get(f"/rooms/{room_id}/messages").get_json()["messages"]] \
        == ["user"]
    assert fake.requests == []
