"""Frames are encoded once per kind of socket, and browser-style compressed sockets read right."""

from __future__ import annotations

import json
import zlib

import pytest

from discux.realtime.server import PLAIN, OutboundFrame
from tests.support.chat_factories import World, wait_until_sockets_closed
from tests.support.ws_client import DeflateClient, Member, connect, wait_for_event


@pytest.fixture
def world(app):
    world = World(app)
    yield world
    wait_until_sockets_closed(app)


def test_a_frame_is_encoded_once_per_group_of_sockets():
    frame = OutboundFrame('{"type":"message.created"}' * 20)
    deflate = ("deflate", 15)
    assert frame.encoded(deflate) is frame.encoded(deflate)
    assert frame.encoded(PLAIN) is frame.encoded(PLAIN)
    compressed = frame.encoded(deflate)
    assert compressed[0] == 0xC1  # FIN + RSV1 (compressed) + text
    assert len(compressed) < len(frame.encoded(PLAIN)) / 4
    payload = compressed[2:] if compressed[1] < 126 else compressed[4:]
    inflated = zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")
    assert inflated.decode() == frame.text


def test_browser_like_sockets_get_deflate_without_context_takeover(live_server, world):
    listeners = [DeflateClient(live_server.url, world.room_id, person.token)
                 for person in (world.member, world.admin)]
    for client in listeners:
        [deflate] = client.extensions
        assert deflate.server_no_context_takeover
        wait_for_event(client, lambda e: e["type"] == "presence")
    plain = connect(live_server.url, world.room_id, world.owner.token)
    poster = Member(live_server.url, world.owner.token)
    # Many messages in a row: a shared frame sent to a context-takeover socket would garble
    # everything after the first.
    for n in range(8):
        text = f"message {n}" + " lorem ipsum" * 40
        poster.post(world.room_id, text)
        for client in [*listeners, plain]:
            event = wait_for_event(client, lambda e: e["type"] == "message.created")
            assert event["data"]["content"] == text
    for client in listeners:
        client.close()
    plain.close()


def test_deflate_socket_replays_what_it_missed(app, live_server, world):
    from tests.support import chat_factories

    with app.app_context():
        first_id = chat_factories.create_message(world.room_id, world.owner.id, "first").id
        chat_factories.create_message(world.room_id, world.owner.id, "second" * 50)
        chat_factories.create_message(world.room_id, world.owner.id, "third")
    client = DeflateClient(live_server.url, world.room_id, world.member.token, after=first_id)
    replayed = []
    while len(replayed) < 2:
        event = json.loads(client.receive(timeout=5))
        if event["type"] == "message.created":
            replayed.append(event["data"]["content"])
    assert replayed == ["second" * 50, "third"]
    client.close()
