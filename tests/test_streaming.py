"""Streaming that loses nothing and Stop that stops, against a real local OpenAI-compatible
server and real sockets: a reply's text survives a dropped socket, a restart and an absence;
Stop and a newer message cut the model request off, also before its first token; agents wait
while people type."""

from __future__ import annotations

import contextlib

import pytest
from simple_websocket import ConnectionClosed

from discux.discussion.engine import engine_for
from discux.extensions import db
from discux.ids import new_id
from discux.models import Message
from discux.realtime.hub import hub_for
from tests.conftest import LiveServer, empty_tables
from tests.support import chat_factories, factories, ws_client
from tests.support.fake_llm import FakeReply
from tests.test_discussion_engine import Room

# Far beyond what a person waits for: the old engine sat out 3 × 60 s here before giving up.
PATIENT_TIMEOUT = 60.0
PROMPTLY = 10.0  # the bound on "the turn is over", well under a minute of retries
LONG_TEXT = " ".join(f"w{n}" for n in range(60))


@pytest.fixture
def app(make_app, fake):
    fake.reset()
    app = make_app(DISCUX_LLM_BASE_URL=fake.base_url, DISCUX_LLM_MODEL="fake-small",
                   DISCUX_LLM_TIMEOUT=PATIENT_TIMEOUT)
    yield app
    engine_for(app).wait_idle(timeout=10)
    with app.app_context():
        db.session.remove()
        empty_tables(db.engine)


@pytest.fixture
def server(app):
    live = LiveServer(app).start()
    yield live
    live.stop()


@pytest.fixture
def sockets(app, server):
    """`sockets(user_id, **connect_args)` → a room socket on the live server as that user."""
    opened = []

    def _open(room, user_id=None, **kwargs):
        with app.app_context():
            token = factories.create_session_token(user_id or room.owner_id)
        ws = ws_client.connect(server.url, room.id, token, **kwargs)
        opened.append(ws)
        return ws

    yield _open
    for ws in opened:
        with contextlib.suppress(ConnectionClosed):
            ws.close()


def is_agent_event(kind):
    return lambda e: e["type"] == kind and e["data"].get("type", "agent") == "agent"


def stored(app, message_id) -> Message | None:
    with app.app_context():
        row = db.session.get(Message, message_id)
        if row is not None:
            db.session.expunge(row)
        return row


def events_until(ws, state):
    """Every event up to the status line's `state`."""
    seen = []
    while not seen or (seen[-1]["type"], seen[-1]["data"].get("state")) != ("agent.status",
                                                                            state):
        seen.append(ws_client.next_event(ws, timeout=PROMPTLY))
    return seen


def statuses_until(ws, state):
    return [e["data"]["state"] for e in events_until(ws, state) if e["type"] == "agent.status"]


# ---- Stop means stop ----

def test_stop_before_the_first_token_aborts_the_request_and_ends_the_turn(app, fake, sockets):
    room = Room(app)
    ws = sockets(room)
    fake.queue(FakeReply(mode="silent"))
    room.post("@Nova @Scout are you there?")
    created = ws_client.wait_for_event(ws, is_agent_event("message.created"))
    fake.wait_for_requests(1)
    assert room.control("stop").status_code == 303
    assert fake.wait_for_hang_ups(1, timeout=PROMPTLY) == 1  # the request was cut off
    room.wait(timeout=PROMPTLY)
    events = events_until(ws, "idle")
    assert ("agent.status", "stopped") in [(e["type"], e["data"].get("state")) for e in events]
    # Nothing was said: the placeholder is gone, for the sockets too; nobody else was asked,
    # and the aborted request was not retried.
    assert {"type": "message.deleted", "room_id": room.id,
            "data": {"id": created["data"]["id"]}} in events
    assert room.replies() == [] and room.system_notes() == []
    assert len(fake.requests) == 1


def test_stop_between_two_tokens_keeps_what_was_said(app, fake, sockets):
    room = Room(app)
    ws = sockets(room)
    fake.queue(FakeReply(text="First words, then a long silence.", stall_after=2))
    room.post("@Nova think hard")
    ws_client.wait_for_event(ws, lambda e: e["type"] == "message.delta")
    assert room.control("stop").status_code == 303
    fake.wait_for_hang_ups(1, timeout=PROMPTLY)
    room.wait(timeout=PROMPTLY)
    [reply] = [m for m in room.messages() if m.type == "agent"]
    assert reply.status == "stopped"
    assert reply.content in {"First", "First words,"}  # the second piece may have come too
    assert room.system_notes() == []  # stopped, not failed


def test_a_newer_mention_aborts_the_reply_waiting_for_its_first_token(app, fake, sockets):
    room = Room(app)
    ws = sockets(room)
    fake.queue(FakeReply(mode="silent"), FakeReply(text="Right here."))
    room.post("@Nova slow question")
    fake.wait_for_requests(1)
    room.post("@Scout quick one")
    fake.wait_for_hang_ups(1, timeout=PROMPTLY)
    done = ws_client.wait_for_event(ws, is_agent_event("message.completed"), timeout=PROMPTLY)
    assert (done["data"]["sender_name"], done["data"]["content"]) == ("Scout", "Right here.")
    room.wait(timeout=PROMPTLY)
    assert room.replies() == [("Scout", "Right here.")]
    assert len(fake.requests) == 2


# ---- streaming that loses nothing ----

def test_a_socket_dropped_mid_reply_sees_the_text_so_far_then_the_rest_once(app, fake, sockets):
    room = Room(app)
    first = sockets(room)
    fake.queue(FakeReply(text=LONG_TEXT, delay_per_token=0.04))
    room.post("@Nova tell me everything")
    created = ws_client.wait_for_event(first, is_agent_event("message.created"))
    reply_id = created["data"]["id"]
    before_drop = ""
    while len(before_drop.split()) < 10:
        before_drop += ws_client.wait_for_event(
            first, lambda e: e["type"] == "message.delta")["data"]["delta"]
    first.close()

    # The newest message this client saw is the reply's own creation.
    again = sockets(room, after=reply_id)
    resent = ws_client.wait_for_event(
        again, lambda e: e["type"] == "message.updated" and e["data"]["id"] == reply_id)
    so_far = resent["data"]["content"]
    assert resent["data"]["status"] in {"streaming", "complete"}
    assert so_far.startswith(before_drop)
    rest = ""
    if resent["data"]["status"] == "streaming":
        while True:
            event = ws_client.wait_for_event(again, lambda e: e["data"].get("id") == reply_id
                                             and e["type"] in {"message.delta",
                                                               "message.completed"})
            if event["type"] == "message.completed":
                break
            rest += event["data"]["delta"]
        assert event["data"]["content"] == LONG_TEXT
    assert so_far + rest == LONG_TEXT  # every word, none twice


def test_the_row_holds_the_text_so_far_while_the_reply_streams(app, fake, sockets):
    # What a restarted worker, or a socket on another worker, finds.
    room = Room(app)
    ws = sockets(room)
    fake.queue(FakeReply(text=LONG_TEXT, delay_per_token=0.05))
    room.post("@Nova go on")
    reply_id = ws_client.wait_for_event(ws, is_agent_event("message.created"))["data"]["id"]
    seen = []
    while True:
        ws_client.wait_for_event(ws, lambda e: e["type"] in {"message.delta",
                                                             "message.completed"})
        row = stored(app, reply_id)
        if row is None:
            continue  # announced before its commit
        if row.status != "streaming":
            break
        if row.content:
            seen.append(row.content)
            break
    assert seen and LONG_TEXT.startswith(seen[0]) and seen[0] != LONG_TEXT


def test_a_reply_completed_while_the_client_was_away_is_replayed_in_its_final_state(
        app, fake, sockets):
    room = Room(app)
    first = sockets(room)
    fake.queue(FakeReply(text="The final answer is 42.", delay_per_token=0.05))
    room.post("@Nova what is the answer?")
    created = ws_client.wait_for_event(first, is_agent_event("message.created"))
    assert created["data"]["status"] == "streaming"
    first.close()
    room.wait()

    again = sockets(room, after=created["data"]["id"])
    final = ws_client.wait_for_event(
        again, lambda e: e["type"] == "message.updated"
        and e["data"]["id"] == created["data"]["id"])
    assert (final["data"]["status"], final["data"]["content"]) == (
        "complete", "The final answer is 42.")


# 8000: a process that made more than one id a millisecond (an import, a bulk insert) has ids
# ahead of the clock (each id in the same millisecond moves the ids' time on by one), and the
# replay must still reach back far enough.
@pytest.mark.parametrize("ids_made_between", [0, 8000])
def test_a_message_deleted_while_the_client_was_away_is_removed_on_reconnect(
        app, sockets, ids_made_between):
    room = Room(app)
    with app.app_context():
        doomed = chat_factories.create_message(room.id, room.owner_id, "regrettable")
        for _ in range(ids_made_between):
            new_id()
        newest = chat_factories.create_message(room.id, room.owner_id, "kept")
        doomed_id, newest_id = doomed.id, newest.id
    response = room.client.delete(f"/rooms/{room.id}/messages/{doomed_id}",
                                  headers={"X-CSRFToken": room.csrf, "HX-Request": "true"})
    assert response.status_code < 400
    ws = sockets(room, after=newest_id)
    gone = ws_client.wait_for_event(ws, lambda e: e["type"] == "message.deleted")
    assert gone["data"]["id"] == doomed_id


def test_html_sockets_get_the_reply_so_far_on_reconnect(app, fake, sockets):
    room = Room(app)
    first = sockets(room)
    fake.queue(FakeReply(text=LONG_TEXT, delay_per_token=0.04))
    room.post("@Nova stream it")
    reply_id = ws_client.wait_for_event(first, is_agent_event("message.created"))["data"]["id"]
    ws_client.wait_for_event(first, lambda e: e["type"] == "message.delta")
    html = sockets(room, fmt=None, after=reply_id)
    frame = ws_client.wait_for_text(html, f'id="message-{reply_id}"')
    assert frame.startswith('<div hx-swap-oob="beforeend:#messages">')
    assert "w0" in frame


# ---- status line ----

def test_summarizing_shows_on_html_sockets(app, fake, sockets):
    room = Room(app)
    ws = sockets(room, fmt=None)
    room.post("We chose Postgres.")
    fake.queue(FakeReply(text="## Decisions\n- Postgres (#1)", delay_first=0.5))
    assert room.control("summarize").status_code == 303
    ws_client.wait_for_text(ws, "Summarizing the discussion")
    room.wait()


# ---- people first ----

def test_the_next_agent_waits_while_a_person_types_and_says_so(app, fake, sockets):
    room = Room(app)
    with app.app_context():
        ben = factories.create_user(name="Ben")
        chat_factories.add_member(room.id, ben)
        ben_id = ben.id
    watcher = sockets(room)
    ben_socket = sockets(room, user_id=ben_id)
    ben_socket.send('{"type": "typing"}')
    ws_client.wait_for_event(watcher, lambda e: e["type"] == "typing")
    fake.queue(FakeReply(text="After you, Ben."))
    room.post("@Nova your view?")
    waiting = ws_client.wait_for_event(watcher, lambda e: e["type"] == "agent.status")
    assert waiting["data"] == {"state": "people_typing", "names": "Ben"}
    assert fake.requests == []  # the model is not asked while Ben types
    assert "answering" in statuses_until(watcher, "answering")
    room.wait()
    assert room.replies() == [("Nova", "After you, Ben.")]


def test_an_agent_does_not_wait_for_the_person_who_just_asked(app, fake, sockets):
    room = Room(app)
    watcher = sockets(room)
    asker = sockets(room)
    asker.send('{"type": "typing"}')
    room.post("@Nova quick")
    status = ws_client.wait_for_event(watcher, lambda e: e["type"] == "agent.status")
    assert status["data"]["state"] == "answering"
    room.wait()


def test_a_socket_reconnecting_to_another_worker_mid_reply_loses_nothing(make_app, fake,
                                                                         redis_server):
    """Two app instances sharing Redis are two workers: the reply streams on one, the client
    reconnects to the other and gets the text so far, then the rest, once."""
    settings = {"DISCUX_LLM_BASE_URL": fake.base_url, "DISCUX_LLM_MODEL": "fake-small",
                "DISCUX_REDIS_URL": redis_server.url}
    worker_one, worker_two = make_app(**settings), make_app(**settings)
    hub_for(worker_two)  # a running worker follows the rooms' events (gunicorn.conf.py)
    fake.reset()
    room = Room(worker_one)
    one, two = LiveServer(worker_one).start(), LiveServer(worker_two).start()
    try:
        with worker_one.app_context():
            token = factories.create_session_token(room.owner_id)
        first = ws_client.connect(one.url, room.id, token)
        fake.queue(FakeReply(text=LONG_TEXT, delay_per_token=0.04))
        room.post("@Nova the long version")
        reply_id = ws_client.wait_for_event(first, is_agent_event("message.created"))["data"]["id"]
        ws_client.wait_for_event(first, lambda e: e["type"] == "message.delta")
        first.close()
        again = ws_client.connect(two.url, room.id, token, after=reply_id)
        resent = ws_client.wait_for_event(
            again, lambda e: e["type"] == "message.updated" and e["data"]["id"] == reply_id)
        text = resent["data"]["content"]
        while resent["data"]["status"] == "streaming":
            event = ws_client.wait_for_event(again, lambda e: e["data"].get("id") == reply_id
                                             and e["type"] in {"message.delta",
                                                               "message.completed"})
            if event["type"] == "message.completed":
                break
            text += event["data"]["delta"]
        assert text == LONG_TEXT
        again.close()
        engine_for(worker_one).wait_idle(timeout=10)
    finally:
        one.stop()
        two.stop()
        with worker_one.app_context():
            empty_tables(db.engine)
