"""The room socket over a real server and real sockets: who gets in, what arrives, in what order."""

from __future__ import annotations

import contextlib
import json
import time

import pytest
import simple_websocket

from discux.extensions import db
from discux.models import Message
from discux.realtime import close_sockets
from tests.support import chat_factories
from tests.support.chat_factories import World, wait_until_sockets_closed
from tests.support.ws_client import (
    DeflateClient,
    Member,
    close_code,
    connect,
    next_event,
    refusal_status,
    wait_for_event,
    wait_for_text,
)

DELIVERY_BOUND = 5.0  # seconds: generous, so a loaded machine does not fail it; figures live in bench/


@pytest.fixture
def world(app):
    world = World(app)
    yield world
    wait_until_sockets_closed(app)


def opened(live_server, world, person, **kwargs):
    ws = connect(live_server.url, world.room_id, person.token, **kwargs)
    # The server says the person is online once it has registered the socket: from then on
    # nothing published can miss it.
    if kwargs.get("fmt", "json") == "json":
        wait_for_event(ws, lambda e: e["type"] == "presence" and e["data"]["user_id"] == person.id)
    else:
        wait_for_text(ws, f'data-user-id="{person.id}" data-presence="online"')
    return ws


def test_member_receives_another_members_message_live(live_server, world):
    listener = opened(live_server, world, world.member)
    started = time.monotonic()
    response = Member(live_server.url, world.owner.token).post(world.room_id, "Kick-off at **10**")
    assert response.status_code == 200
    event = wait_for_event(listener, lambda e: e["type"] == "message.created",
                           timeout=DELIVERY_BOUND)
    assert time.monotonic() - started < DELIVERY_BOUND
    assert event["data"]["content"] == "Kick-off at **10**"
    assert event["data"]["sender_name"] == "Olga Owner"
    listener.close()


def test_json_events_have_the_documented_shape(live_server, world, app):
    listener = opened(live_server, world, world.member)
    Member(live_server.url, world.owner.token).post(world.room_id, "@Critic is this **sound**?")
    event = wait_for_event(listener, lambda e: e["type"] == "message.created")
    assert set(event) == {"type", "room_id", "data"}
    assert event["room_id"] == world.room_id
    data = event["data"]
    assert data["type"] == "user" and data["sender_id"] == world.owner.id
    assert data["content_html"] == "<p>@Critic is this <strong>sound</strong>?</p>\n"
    assert data["status"] == "complete"
    assert data["mentions"] == [world.agents[0][0]]
    assert data["timestamp"].startswith(time.strftime("%Y-", time.gmtime()))
    listener.close()


def test_typing_reaches_others_but_not_the_typist(live_server, world):
    owner = opened(live_server, world, world.owner)
    member = opened(live_server, world, world.member)
    member.send(json.dumps({"type": "typing"}))
    event = wait_for_event(owner, lambda e: e["type"] == "typing")
    assert event["data"] == {"user_id": world.member.id, "name": "Ana Member"}
    # The typist's own socket gets the next real event, never its own typing.
    Member(live_server.url, world.owner.token).post(world.room_id, "ok")
    first = wait_for_event(member, lambda e: e["type"] in {"typing", "message.created"})
    assert first["type"] == "message.created"
    owner.close()
    member.close()


def test_presence_goes_online_then_offline(live_server, world):
    owner = opened(live_server, world, world.owner)
    member = opened(live_server, world, world.member)
    online = wait_for_event(owner, lambda e: e["type"] == "presence"
                            and e["data"]["user_id"] == world.member.id)
    assert online["data"]["state"] == "online"
    member.close()
    offline = wait_for_event(owner, lambda e: e["type"] == "presence"
                             and e["data"]["user_id"] == world.member.id)
    assert offline["data"] == {"user_id": world.member.id, "name": "Ana Member",
                               "state": "offline"}
    owner.close()


def test_newcomer_is_told_who_is_already_online(live_server, world):
    owner = opened(live_server, world, world.owner)
    member = connect(live_server.url, world.room_id, world.member.token)
    event = wait_for_event(member, lambda e: e["type"] == "presence"
                           and e["data"]["user_id"] == world.owner.id)
    assert event["data"] == {"user_id": world.owner.id, "name": "Olga Owner", "state": "online"}
    member.close()
    owner.close()


def test_idle_member_shows_away_and_comes_back_online(app, live_server, world, monkeypatch):
    from discux.realtime import hub as hub_module

    monkeypatch.setattr(hub_module, "AWAY_AFTER", 0.3)
    monkeypatch.setattr(hub_module, "SWEEP_EVERY", 0.1)
    owner = opened(live_server, world, world.owner)
    member = opened(live_server, world, world.member)
    away = wait_for_event(owner, lambda e: e["type"] == "presence"
                          and e["data"]["user_id"] == world.member.id
                          and e["data"]["state"] == "away")
    assert away["data"]["name"] == "Ana Member"
    member.send(json.dumps({"type": "active"}))
    wait_for_event(owner, lambda e: e["type"] == "presence"
                   and e["data"]["user_id"] == world.member.id and e["data"]["state"] == "online")
    owner.close()
    member.close()


@pytest.mark.parametrize("who, status", [("outsider", 404), ("signed_out", 403)])
def test_handshake_is_refused_before_any_data(live_server, world, who, status):
    token = None if who == "signed_out" else world.outsider.token
    assert refusal_status(live_server.url, world.room_id, token) == status


def test_unknown_room_looks_the_same_as_a_room_you_are_not_in(live_server, world):
    assert refusal_status(live_server.url, "0190f0f0-0000-7000-8000-000000000000",
                          world.member.token) == 404


def test_socket_from_another_site_is_refused(live_server, world):
    assert refusal_status(live_server.url, world.room_id, world.member.token,
                          origin="https://evil.example") == 403


def test_socket_from_the_apps_own_page_is_accepted(live_server, world):
    # simple-websocket's client sends `Host: 127.0.0.1` (no port): the page's origin matches it.
    ws = opened(live_server, world, world.member, origin="http://127.0.0.1")
    assert ws.connected
    ws.close()


@pytest.mark.parametrize("params", [{"fmt": "xml"}, {"after": "not-an-id"}])
def test_malformed_query_is_refused_with_400(live_server, world, params):
    assert refusal_status(live_server.url, world.room_id, world.member.token, **params) == 400


def test_reconnect_with_after_replays_exactly_the_missed_messages_in_order(app, live_server,
                                                                          world):
    with app.app_context():
        seen = chat_factories.create_message(world.room_id, world.owner.id, "seen before")
        missed = [chat_factories.create_message(world.room_id, world.owner.id, f"missed {n}")
                  for n in range(5)]
        other_room = chat_factories.create_room(world.outsider.id)
        chat_factories.create_message(other_room, world.outsider.id, "not your room")
        seen_id, missed_ids = seen.id, [m.id for m in missed]
    ws = connect(live_server.url, world.room_id, world.member.token, after=seen_id)
    # The seen message was written moments before: it is sent again as it is now, in case it
    # changed (an update replaces the client's copy), then the missed ones are sent.
    again = next_event(ws)
    assert (again["type"], again["data"]["id"]) == ("message.updated", seen_id)
    replayed = [next_event(ws) for _ in missed_ids]
    assert [e["type"] for e in replayed] == ["message.created"] * 5
    assert [e["data"]["id"] for e in replayed] == missed_ids
    assert [e["data"]["content"] for e in replayed] == [f"missed {n}" for n in range(5)]
    # Then live events follow, and nothing else from the past.
    Member(live_server.url, world.owner.token).post(world.room_id, "live again")
    live = wait_for_event(ws, lambda e: e["type"] == "message.created")
    assert live["data"]["content"] == "live again"
    ws.close()


def test_html_frames_swap_out_of_band_with_the_page_partial(live_server, world):
    member = opened(live_server, world, world.member, fmt=None)
    owner = Member(live_server.url, world.owner.token)
    owner.post(world.room_id, "Hello **team**")
    frame = wait_for_text(member, "Hello <strong>team</strong>")
    assert frame.startswith('<div hx-swap-oob="beforeend:#messages"><article class="message')
    assert "Olga Owner" in frame and ">You<" not in frame
    assert 'class="message-delete"' not in frame  # a member may not delete the owner's message
    member.close()


def test_own_message_frame_says_you_and_offers_delete(live_server, world):
    member_socket = opened(live_server, world, world.member, fmt=None)
    Member(live_server.url, world.member.token).post(world.room_id, "mine")
    frame = wait_for_text(member_socket, "<p>mine</p>")
    assert '<strong class="sender-name">You</strong>' in frame
    assert 'hx-delete="/messages/' in frame
    member_socket.close()


def test_staff_frame_offers_delete_on_anyones_message(live_server, world):
    admin_socket = opened(live_server, world, world.admin, fmt=None)
    Member(live_server.url, world.member.token).post(world.room_id, "from a member")
    frame = wait_for_text(admin_socket, "from a member")
    assert "Ana Member" in frame and 'hx-delete="/messages/' in frame
    admin_socket.close()


def test_malformed_client_frames_are_ignored_then_closed(live_server, world):
    ws = opened(live_server, world, world.member)
    ws.send("not json")
    ws.send(json.dumps({"type": "delete_everything"}))
    ws.send(json.dumps(["typing"]))
    # Still open and still receiving.
    Member(live_server.url, world.owner.token).post(world.room_id, "still here")
    assert wait_for_event(ws, lambda e: e["type"] == "message.created")["data"]["content"] == (
        "still here")
    # The server may close before the client has sent all twelve (the client then sees either
    # ConnectionClosed or, once its reader thread has closed the socket, EBADF).
    with contextlib.suppress(simple_websocket.ConnectionClosed, OSError):
        for _ in range(12):
            ws.send("{broken")
    assert close_code(ws) == 1008


def test_binary_client_frame_is_closed_as_unsupported(live_server, world):
    ws = opened(live_server, world, world.member)
    ws.send(b"\x00\x01")
    assert close_code(ws) == 1003


def test_oversized_client_frame_is_closed_as_too_big(live_server, world):
    ws = opened(live_server, world, world.member)
    ws.send(json.dumps({"type": "typing", "padding": "x" * 10_000}))
    assert close_code(ws) == 1009


def test_extra_socket_beyond_the_cap_is_closed_at_once_with_1013(make_app, world):
    from tests.conftest import LiveServer

    capped = LiveServer(make_app(DISCUX_MAX_SOCKETS=2)).start()
    try:
        first = connect(capped.url, world.room_id, world.member.token)
        second = connect(capped.url, world.room_id, world.owner.token)
        # simple-websocket's client drops a close frame that arrives with the handshake answer:
        # read this one with the wsproto client. Refused, not left waiting: an accepted socket
        # would get the room's presence first. (How fast: bench.sockets measures it.)
        with pytest.raises(ConnectionError, match="closed 1013"):
            third = DeflateClient(capped.url, world.room_id, world.admin.token)
            third.receive(timeout=5.0)
        # A freed slot is usable again.
        first.close()
        wait_for_event(second, lambda e: e["type"] == "presence"
                       and e["data"]["state"] == "offline", timeout=15)
        again = connect(capped.url, world.room_id, world.admin.token)
        assert wait_for_event(again, lambda e: e["type"] == "presence")["type"] == "presence"
        again.close()
        second.close()
    finally:
        capped.stop()


def test_close_sockets_closes_a_removed_members_socket_only(app, live_server, world):
    member = opened(live_server, world, world.member)
    owner = opened(live_server, world, world.owner)
    with app.app_context():
        close_sockets(world.room_id, world.member.id)
    assert close_code(member) == 1008
    Member(live_server.url, world.owner.token).post(world.room_id, "owner still live")
    event = wait_for_event(owner, lambda e: e["type"] == "message.created")
    assert event["data"]["content"] == "owner still live"
    owner.close()


def test_slow_listener_is_cut_off_and_delays_nobody(make_app, world):
    import socket

    from tests.conftest import LiveServer

    server = LiveServer(make_app(DISCUX_SOCKET_QUEUE=4)).start()
    hub = None
    try:
        # A client that completes the handshake and then never reads a byte.
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", server.port))
        stalled.sendall(
            f"GET /rooms/{world.room_id}/ws?format=json HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            f"Cookie: discux_session={world.admin.token}\r\n\r\n".encode()
        )
        listener = opened(server, world, world.member)
        hub = server.app.extensions["discux.realtime"]
        poster = Member(server.url, world.owner.token)
        big = "x" * 3900
        for n in range(400):
            started = time.monotonic()
            poster.post(world.room_id, f"{n} {big}")
            wait_for_event(listener, lambda e, n=n: e["type"] == "message.created"
                           and e["data"]["content"].startswith(f"{n} "))
            # The stalled reader never holds up the one who reads.
            assert time.monotonic() - started < DELIVERY_BOUND
            if world.admin.id not in {c.user_id for c in hub.connections(world.room_id)}:
                break
        else:
            raise AssertionError("the stalled socket was never cut off")
        listener.close()
        stalled.close()
    finally:
        server.stop()


def test_deleted_message_disappears_from_every_listener(app, live_server, world):
    with app.app_context():
        message_id = chat_factories.create_message(world.room_id, world.member.id, "oops").id
    listeners = [opened(live_server, world, p) for p in (world.owner, world.admin)]
    html_listener = opened(live_server, world, world.member, fmt=None)
    response = Member(live_server.url, world.member.token).delete(world.room_id, message_id)
    assert response.status_code == 200
    for ws in listeners:
        event = wait_for_event(ws, lambda e: e["type"] == "message.deleted")
        assert event["data"] == {"id": message_id}
    frame = wait_for_text(html_listener, "hx-swap-oob=\"delete\"")
    assert frame == f'<div id="message-{message_id}" hx-swap-oob="delete"></div>'
    with app.app_context():
        assert db.session.get(Message, message_id) is None
    for ws in [*listeners, html_listener]:
        ws.close()
