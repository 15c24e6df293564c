"""Frames are encoded once per kind of socket, and browser-style compressed sockets read right."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
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



def test_sockets_are_grouped_by_what_their_handshake_agreed(app, live_server, world):
    """A browser-style socket (deflate offered) and a plain one each get the frame group their
    own handshake answer named, so shared frames only go where they read right."""
    from discux.realtime import hub_for

    deflating = DeflateClient(live_server.url, world.room_id, world.member.token)
    wait_for_event(deflating, lambda e: e["type"] == "presence")
    plain = connect(live_server.url, world.room_id, world.owner.token)
    wait_for_event(plain, lambda e: e["type"] == "presence")
    groups = {conn.user_id: conn.ws.frame_group for conn in hub_for(app).connections(world.room_id)}
    assert groups == {world.member.id: ("deflate", 15), world.owner.id: PLAIN}
    deflating.close()
    plain.close()


@pytest.mark.parametrize("answer, group", [
    (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\n\r\n", PLAIN),
    (b"HTTP/1.1 101 Switching Protocols\r\nsec-websocket-extensions: permessage-deflate; "
     b"server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10\r\n\r\n",
     ("deflate", 10)),
    (b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
     None),
])
def test_a_frame_group_comes_from_the_extensions_the_answer_agreed(answer, group):
    from discux.realtime.server import frame_group_of

    assert frame_group_of(answer) == group


@pytest.mark.parametrize("group", [PLAIN] + [("deflate", bits) for bits in (9, 12, 15)])
def test_frames_are_the_bytes_wsproto_would_write(group):
    """Frames are built by hand (cheaper than a protocol object per event): every length class,
    multi-byte text and every window size give exactly the bytes of wsproto's encoder."""
    from wsproto.extensions import PerMessageDeflate
    from wsproto.frame_protocol import FrameProtocol

    texts = ["", "a", "é" * 62, "x" * 125, "x" * 126, "🧑‍💻 ship it " * 40,
             os.urandom(40_000).hex()[:65535], os.urandom(50_000).hex(), "<p>" + "y" * 70_000]
    for text in texts:
        extensions = []
        if group != PLAIN:
            deflate = PerMessageDeflate(server_no_context_takeover=True,
                                        server_max_window_bits=group[1])
            deflate.finalize(f"{deflate.name}; server_no_context_takeover")
            extensions = [deflate]
        expected = bytes(FrameProtocol(client=False, extensions=extensions).send_data(text))
        assert OutboundFrame(text).encoded(group) == expected, (group, len(text))

def test_browser_like_sockets_get_deflate_without_context_takeover(live_server, world):
    listeners = [DeflateClient(live_server.url, world.room_id, person.token)
                 for person in (world.member, world.admin)]
    for client in listeners:
        [deflate] = client.extensions
        assert deflate.server_no_context_takeover and deflate.client_no_context_takeover
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
    # Their own frames are compressed too, and read right.
    listeners[0].send(json.dumps({"type": "typing", "padding": "typing " * 30}))
    typing = wait_for_event(plain, lambda e: e["type"] == "typing")
    assert typing["data"]["user_id"] == world.member.id
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


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_a_frame_the_kernel_took_in_part_is_finished_before_anything_else(app, live_server,
                                                                          world):
    """A listener that stops reading while pinging: the server's non-blocking write gets only part
    of a frame out; its pongs must not land inside that frame, and nothing may be reordered."""
    from discux.realtime import hub_for, publish

    client = DeflateClient(live_server.url, world.room_id, world.member.token, rcvbuf=4096)
    wait_for_event(client, lambda e: e["type"] == "presence")
    [conn] = hub_for(app).connections(world.room_id, world.member.id)
    wait_until(lambda: not conn.writing_behind)  # replay and presence written: live writes now
    sent = []
    behind_since = None
    with app.app_context():
        # The kernel buffers a few MiB on loopback: write until a frame goes out in part, then
        # a few more that must queue behind its rest.
        while len(sent) < 400 and (behind_since is None or len(sent) < behind_since + 5):
            text = base64.b64encode(os.urandom(48000)).decode()  # deflate barely shrinks it
            sent.append(text)
            publish(world.room_id, "message.delta", {"id": f"m{len(sent)}", "delta": text})
            client.ping(f"probe {len(sent)}".encode())
            if behind_since is None and conn.writing_behind:
                behind_since = len(sent)
    assert behind_since is not None, "the listener never fell behind"
    got = []
    while len(got) < len(sent):
        raw = client.receive(timeout=10)
        assert raw is not None, f"{len(got)} of {len(sent)} frames arrived"
        event = json.loads(raw)
        if event["type"] == "message.delta":
            got.append(event["data"]["delta"])
    assert got == sent
    deadline = time.monotonic() + 5
    while len(client.pongs) < len(sent) and time.monotonic() < deadline:
        client.receive(timeout=0.2)
    assert client.pongs == [f"probe {n}".encode() for n in range(1, len(sent) + 1)]
    client.close()


def test_a_written_part_of_a_frame_goes_out_before_a_later_write():
    """LockedSocket keeps what a non-blocking write left over and sends it first, whoever writes
    next (the reader thread's pong here)."""
    import socket
    import threading

    from discux.realtime.server import LockedSocket

    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    locked = LockedSocket(ours)
    frame = bytes(range(256)) * 4096  # 1 MiB: far more than the buffers hold
    with locked.lock:
        assert locked.write_nowait(frame) is False
    pong = b"\x8a\x05probe"
    writer = threading.Thread(target=locked.send, args=(pong,))
    writer.start()
    received = bytearray()
    while len(received) < len(frame) + len(pong):
        received += theirs.recv(65536)
    writer.join()
    assert bytes(received) == frame + pong
    ours.close()
    theirs.close()


def test_a_client_that_answers_pings_stays_and_one_that_does_not_is_closed(make_app, world):
    from tests.conftest import LiveServer

    quick = LiveServer(make_app(SOCK_SERVER_OPTIONS={"ping_interval": 0.5,
                                                     "max_message_size": 4096})).start()
    try:
        admin = Member(quick.url, world.admin.token)  # signs in now: no HTTP while pinged
        answering = DeflateClient(quick.url, world.room_id, world.member.token)
        silent = DeflateClient(quick.url, world.room_id, world.owner.token)
        # The answering client reads (and so answers pings) for several ping intervals.
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            answering.receive(timeout=0.1)
        # The silent one read nothing meanwhile: the server gave up on it. The answering one
        # keeps reading while we wait, as a browser would.
        deadline = time.monotonic() + 10
        with pytest.raises(ConnectionError, match="closed 1008"):
            while time.monotonic() < deadline:
                silent.receive(timeout=0.05)
                answering.receive(timeout=0.05)
        # Posted from another thread so the answering client never stops reading (a post can
        # take longer than the 0.5 s ping interval on a busy machine).
        poster = threading.Thread(target=admin.post,
                                  args=(world.room_id, "still with us?"))
        poster.start()
        event = wait_for_event(answering, lambda e: e["type"] == "message.created", timeout=15)
        poster.join()
        assert event["data"]["content"] == "still with us?"
        answering.close()
    finally:
        quick.stop()
