"""20 people posting 50 messages each at once: every message stored once, every listener sees
all of them in the same order."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from discux.extensions import db
from discux.models import Message
from tests.support import chat_factories, factories
from tests.support.chat_factories import wait_until_sockets_closed
from tests.support.ws_client import Member, connect, wait_for_event

POSTERS = 20
MESSAGES_EACH = 50
TOTAL = POSTERS * MESSAGES_EACH


def collect(ws, into: list, done: threading.Event) -> None:
    """Record message.created ids until TOTAL arrived (or the socket goes quiet for 30 s)."""
    while len(into) < TOTAL:
        raw = ws.receive(timeout=30)
        if raw is None:
            break
        event = json.loads(raw)
        if event["type"] == "message.created":
            into.append(event["data"]["id"])
    done.set()


def test_twenty_posters_fifty_messages_each_stored_once_and_seen_in_one_order(app, live_server):
    with app.app_context():
        owner = factories.create_user(name="Owner", plan="pro")
        room = chat_factories.create_room(owner)
        posters = []
        for n in range(POSTERS):
            user = factories.create_user(name=f"Poster {n}", plan="pro")
            chat_factories.add_member(room, user)
            posters.append(factories.create_session_token(user.id))
        room_id, owner_token = room.id, factories.create_session_token(owner.id)

    listeners = []
    for _ in range(3):
        ws = connect(live_server.url, room_id, owner_token)
        listeners.append(ws)
    wait_for_event(listeners[0], lambda e: e["type"] == "presence")
    received = [[] for _ in listeners]
    finished = [threading.Event() for _ in listeners]
    readers = [threading.Thread(target=collect, args=(ws, got, done), daemon=True)
               for ws, got, done in zip(listeners, received, finished, strict=True)]
    for reader in readers:
        reader.start()

    members = [Member(live_server.url, token) for token in posters]
    start = threading.Barrier(POSTERS)

    def post_all(index: int) -> list[int]:
        start.wait()
        return [members[index].post(room_id, f"poster {index} message {n}").status_code
                for n in range(MESSAGES_EACH)]

    started = time.monotonic()
    with ThreadPoolExecutor(POSTERS) as pool:
        statuses = [code for codes in pool.map(post_all, range(POSTERS)) for code in codes]
    assert statuses == [200] * TOTAL

    for done in finished:
        assert done.wait(timeout=60), "a listener did not get every message"
    elapsed = time.monotonic() - started

    with app.app_context():
        stored = list(db.session.execute(
            sa.select(Message.id, Message.content).where(Message.room_id == room_id)))
    contents = [content for _, content in stored]
    assert len(stored) == TOTAL
    assert len(set(contents)) == TOTAL  # each message once, none lost, none doubled
    stored_ids = {message_id for message_id, _ in stored}
    for got in received:
        assert len(got) == TOTAL and set(got) == stored_ids
    assert received[0] == received[1] == received[2]  # one order for everyone
    assert elapsed < 90
    for ws in listeners:
        ws.close()
    wait_until_sockets_closed(app)
