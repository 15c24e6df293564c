"""People who lose a room lose its live feed at once: their open socket is closed."""

from __future__ import annotations

import json
import time

import pytest
import simple_websocket

from discux.auth.sessions import COOKIE_NAME
from tests.support import factories, ws_client
from tests.support import room_factories as rf

POLICY_VIOLATION = 1008  # the server's "you may not be here any more" close code


@pytest.fixture
def room(app, make_user):
    owner, member = make_user(name="Olive"), make_user(name="Mia")
    with app.app_context():
        room = rf.create_room(owner, "Live room")
        rf.add_member(room, member)
        return room.id, owner, member


def open_socket(app, live_server, room_id: str, user) -> simple_websocket.Client:
    """A room socket signed in as `user`, returned once the server has registered it."""
    with app.app_context():
        token = factories.create_session_token(user.id)
    ws = ws_client.Client.connect(
        live_server.url.replace("http", "ws", 1) + f"/rooms/{room_id}/ws?format=json",
        headers={"Cookie": f"{COOKIE_NAME}={token}"},
    )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        raw = ws.receive(timeout=deadline - time.monotonic())
        event = json.loads(raw) if raw and raw.startswith("{") else {}
        if event.get("type") == "presence" and event["data"].get("user_id") == user.id:
            return ws
    raise AssertionError("the socket was not registered within 5 s")


def close_code(ws, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ws.receive(timeout=deadline - time.monotonic())
        except simple_websocket.ConnectionClosed as closed:
            return int(closed.reason)
    raise AssertionError(f"the socket was still open after {timeout} s")


def test_removed_member_is_cut_off_the_live_room(app, client, csrf_token, login, live_server,
                                                 room):
    room_id, owner, member = room
    socket = open_socket(app, live_server, room_id, member)
    login(owner)
    client.post(f"/rooms/{room_id}/members/{member.id}/remove",
                data={"csrf_token": csrf_token()})
    assert close_code(socket) == POLICY_VIOLATION


def test_leaving_closes_my_socket(app, client, csrf_token, login, live_server, room):
    room_id, _, member = room
    socket = open_socket(app, live_server, room_id, member)
    login(member)
    client.post(f"/rooms/{room_id}/leave", data={"csrf_token": csrf_token()})
    assert close_code(socket) == POLICY_VIOLATION


def test_deleting_the_room_closes_everyones_socket(app, client, csrf_token, login, live_server,
                                                   room):
    room_id, owner, member = room
    sockets = [open_socket(app, live_server, room_id, person) for person in (owner, member)]
    login(owner)
    client.post(f"/rooms/{room_id}/delete", data={"csrf_token": csrf_token()})
    assert [close_code(socket) for socket in sockets] == [POLICY_VIOLATION] * 2


def test_room_page_shows_who_is_online_before_its_own_socket_connects(app, client, login,
                                                                     live_server, room):
    room_id, owner, member = room
    socket = open_socket(app, live_server, room_id, member)
    login(owner)
    page = client.get(f"/rooms/{room_id}").get_data(as_text=True)
    assert f'data-user-id="{member.id}" data-presence="online"' in page
    assert f'data-user-id="{owner.id}" data-presence="offline"' in page
    socket.close()
