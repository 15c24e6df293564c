"""Redis going away and coming back: a clear error, local delivery meanwhile, then recovery with a
replay of what other workers published in the gap."""

from __future__ import annotations

import logging

from discux.realtime.broker import RedisBroker, redacted
from tests.conftest import LiveServer
from tests.support.chat_factories import World
from tests.support.redis_server import PrivateRedis
from tests.support.ws_client import Member, close_code, connect, wait_for_event


def test_redis_url_password_never_reaches_the_logs():
    assert redacted("redis://user:s3cret@cache.internal:6380/2") == (
        "redis://user:***@cache.internal:6380/2")


def test_lost_redis_is_logged_clearly_and_recovery_replays_the_gap(make_app, caplog,
                                                                    monkeypatch):
    # Alembic's fileConfig (run by the test session's migration) disables existing loggers.
    monkeypatch.setattr(logging.getLogger("discux.realtime"), "disabled", False)
    private = PrivateRedis()
    app = make_app(DISCUX_REDIS_URL=private.url)
    world = World(app)
    server = LiveServer(app).start()
    caplog.set_level(logging.INFO, logger="discux.realtime")
    try:
        # Redis is down from the start: the socket still works within this process.
        listener = connect(server.url, world.room_id, world.member.token)
        wait_for_event(listener, lambda e: e["type"] == "presence")
        assert any("is unreachable" in r.getMessage() and r.levelno == logging.ERROR
                   and private.url in r.getMessage() for r in caplog.records)
        poster = Member(server.url, world.owner.token)
        assert poster.post(world.room_id, "while redis is down").status_code == 200
        event = wait_for_event(listener, lambda e: e["type"] == "message.created")
        assert event["data"]["content"] == "while redis is down"
        last_seen = event["data"]["id"]

        # Redis comes back: the listener resubscribes and asks its clients to reconnect (1012)
        # so they replay whatever other workers published meanwhile.
        private.start()
        assert close_code(listener, timeout=40) == 1012
        assert any("is back" in r.getMessage() for r in caplog.records)
        assert poster.post(world.room_id, "after the outage").status_code == 200
        again = connect(server.url, world.room_id, world.member.token, after=last_seen)
        replayed = wait_for_event(again, lambda e: e["type"] == "message.created")
        assert replayed["data"]["content"] == "after the outage"
        # And live events travel through Redis again.
        poster.post(world.room_id, "through redis")
        live = wait_for_event(again, lambda e: e["type"] == "message.created")
        assert live["data"]["content"] == "through redis"
        again.close()
    finally:
        server.stop()
        if "discux.realtime" in app.extensions:
            app.extensions["discux.realtime"].close()
        private.stop()


def test_presence_is_shared_between_processes_through_redis():
    private = PrivateRedis()
    private.start()
    try:
        worker_1 = RedisBroker(private.url, deliver=lambda event: None)
        worker_2 = RedisBroker(private.url, deliver=lambda event: None)
        worker_1.set_presence("room", "ana", "away")
        worker_2.set_presence("room", "ana", "online")
        assert worker_1.presence("room") == {"ana": "online"}  # the most present tab wins
        worker_2.set_presence("room", "ana", "offline")
        assert worker_1.presence("room") == {"ana": "away"}
        worker_1.set_presence("room", "ana", "offline")
        assert worker_2.presence("room") == {}
        worker_1.close()
        worker_2.close()
    finally:
        private.stop()
