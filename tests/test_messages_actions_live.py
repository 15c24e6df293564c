"""Message actions as the room sees them live, against a real server, real sockets and the
fake model server: edits reach everyone and the agents' next prompt, Regenerate runs the agent
again through the turn queue, and Clear history empties every screen."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from discux.discussion.engine import engine_for
from discux.extensions import db
from discux.models import Message
from tests.conftest import LiveServer
from tests.support import chat_factories, factories, ws_client
from tests.support.fake_llm import FakeReply


class Room:
    """A room of Ana (owner) and Bo (member) with the agent Nova, on a live server."""

    def __init__(self, app, server: LiveServer):
        self.app, self.url = app, server.url
        with app.app_context():
            ana = factories.create_user(name="Ana", plan="pro")
            bo = factories.create_user(name="Bo", plan="pro")
            room = chat_factories.create_room(ana, name="Launch plan")
            chat_factories.add_member(room, bo)
            nova = chat_factories.create_agent(ana, name="Nova", style="analytical")
            chat_factories.add_agent(room, nova, ana)
            self.id, self.nova = room.id, nova.id
            self.tokens = {"ana": factories.create_session_token(ana.id),
                           "bo": factories.create_session_token(bo.id)}
        self.ana = ws_client.Member(server.url, self.tokens["ana"])
        self.bo = ws_client.Member(server.url, self.tokens["bo"])
        self.sockets = []

    def socket(self, who: str = "bo", **params):
        ws = ws_client.connect(self.url, self.id, self.tokens[who], **params)
        self.sockets.append(ws)
        return ws

    def wait(self):
        assert engine_for(self.app).wait_idle(self.id, timeout=15), "agents still busy"

    def messages(self) -> list[Message]:
        with self.app.app_context():
            rows = list(db.session.scalars(sa.select(Message).where(
                Message.room_id == self.id).order_by(Message.id)))
            for row in rows:
                db.session.expunge(row)
            return rows

    def action(self, member, path: str, **form):
        return member.http.post(f"{self.url}/rooms/{self.id}/{path}", data=form,
                                headers={"X-CSRFToken": member.csrf, "HX-Request": "true"},
                                allow_redirects=False, timeout=15)


@pytest.fixture
def room(llm_app):
    server = LiveServer(llm_app).start()
    room = Room(llm_app, server)
    yield room
    for ws in room.sockets:
        ws.close()
    chat_factories.wait_until_sockets_closed(llm_app)
    server.stop()


def prompt_text(request: dict) -> str:
    return "\n".join(m["content"] for m in request["messages"])


def test_agents_read_the_edited_text_and_an_edit_asks_no_agent(room, fake):
    fake.queue(FakeReply(text="Let me look at the numbers."))
    room.ana.post(room.id, "@Nova what is our budget for apples?")
    room.wait()
    question = room.messages()[0]
    edited = room.action(room.ana, f"messages/{question.id}/edit",
                         content="@Nova what is our budget for oranges?")
    assert edited.status_code == 200 and "oranges" in edited.text
    room.wait()
    assert len(fake.requests) == 1  # the edit mentions Nova, but asks her nothing
    room.ana.post(room.id, "@Nova and the total?")
    room.wait()
    second = prompt_text(fake.wait_for_requests(2)[1])
    assert "budget for oranges" in second and "apples" not in second


def test_an_edit_reaches_every_socket_and_a_reconnect_replays_it(room):
    first = room.ana.post(room.id, "Launch on Monday", htmx=False)
    assert first.status_code == 303
    live = room.socket("bo")
    room.ana.post(room.id, "Any objections?")
    later = room.messages()[-1]
    original = room.messages()[0]
    assert room.action(room.ana, f"messages/{original.id}/edit",
                       content="Launch on Tuesday").status_code == 200
    event = ws_client.wait_for_event(live, lambda e: e.get("type") == "message.updated")
    assert event["data"]["id"] == original.id
    assert event["data"]["content"] == "Launch on Tuesday" and event["data"]["edited_at"]
    # A page that had both messages and lost its socket gets the edit on reconnect.
    html = room.socket("bo", fmt="html", after=later.id)
    frame = ws_client.wait_for_text(html, "Launch on Tuesday")
    assert f'id="message-{original.id}"' in frame and ">edited</span>" in frame


def test_regenerate_replaces_the_reply_in_view_and_keeps_the_old_one(room, fake):
    fake.queue(FakeReply(text="Version one of the plan."))
    room.ana.post(room.id, "@Nova draft the plan")
    room.wait()
    question, old = room.messages()
    live = room.socket("bo")
    fake.queue(FakeReply(text="Version two of the plan."))
    answer = room.action(room.bo, f"messages/{old.id}/regenerate")
    assert answer.status_code == 204
    completed = ws_client.wait_for_event(live, lambda e: e.get("type") == "message.completed")
    assert completed["data"]["content"] == "Version two of the plan."
    assert completed["data"]["replaces_id"] == old.id
    retired = ws_client.wait_for_event(live, lambda e: e.get("type") == "message.updated")
    assert retired["data"]["id"] == old.id
    assert retired["data"]["replaced_by_id"] == completed["data"]["id"]
    room.wait()
    # The agent was asked the same question again, without its first answer in view.
    again = fake.wait_for_requests(2)[1]
    assert again["messages"][-1]["content"].endswith("@Nova draft the plan")
    assert "Version one" not in prompt_text(again)
    page = room.bo.http.get(f"{room.url}/rooms/{room.id}").text
    assert "Version two of the plan." in page and "Version one of the plan." not in page
    new_id = completed["data"]["id"]
    versions = room.bo.http.get(f"{room.url}/rooms/{room.id}/messages/{new_id}/versions").text
    assert "Version one of the plan." in versions
    earlier = room.bo.http.get(f"{room.url}/messages/{old.id}").text
    assert "Version one of the plan." in earlier and f'href="/messages/{new_id}"' in earlier
    # Later turns see only the newest version.
    room.ana.post(room.id, "@Nova summarize")
    room.wait()
    later = prompt_text(fake.wait_for_requests(3)[2])
    assert "Version two of the plan." in later and "Version one" not in later


def test_regenerate_is_refused_where_it_cannot_run(room, fake, make_user):
    room.ana.post(room.id, "@Nova hello")
    room.wait()
    question, reply = room.messages()
    assert room.action(room.ana, f"messages/{question.id}/regenerate").status_code == 404
    no_token = room.bo.http.post(f"{room.url}/rooms/{room.id}/messages/{reply.id}/regenerate",
                                 allow_redirects=False, timeout=10)
    assert no_token.status_code == 400
    with room.app.app_context():
        stranger = factories.create_user(name="Stranger")
        outsider = ws_client.Member(room.url, factories.create_session_token(stranger.id))
    assert room.action(outsider, f"messages/{reply.id}/regenerate").status_code == 404
    assert room.action(room.ana, f"messages/{reply.id}/regenerate").status_code == 204
    room.wait()
    twice = room.action(room.ana, f"messages/{reply.id}/regenerate")
    assert twice.status_code == 409 and "regenerated already" in twice.text
    assert len(fake.requests) == 2


def test_clear_history_empties_every_screen_and_says_who(room):
    room.ana.post(room.id, "Secret plan A")
    room.ana.post(room.id, "Secret plan B")
    old = room.messages()
    live, html = room.socket("bo"), room.socket("bo", fmt="html")
    answer = room.action(room.ana, "clear")
    assert answer.status_code == 204 and answer.headers["HX-Redirect"] == f"/rooms/{room.id}"
    cleared = ws_client.wait_for_event(live, lambda e: e.get("type") == "history.cleared")
    assert cleared["data"]["by"] == "Ana"
    note = ws_client.wait_for_event(live, lambda e: e.get("type") == "message.created")
    assert "**Ana** cleared the history" in note["data"]["content"]
    frame = ws_client.wait_for_text(html, 'hx-swap-oob="innerHTML"')
    assert '<div id="messages" hx-swap-oob="innerHTML"></div>' in frame
    # A page that saw the old messages and reconnects is told each one went.
    again = room.socket("bo", after=old[-1].id)
    gone = {ws_client.wait_for_event(again, lambda e: e.get("type") == "message.deleted")
            ["data"]["id"] for _ in old}
    assert gone == {m.id for m in old}
