"""Two gunicorn workers and Redis: a message posted to one worker reaches a socket on the other."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from discux import create_app
from discux.extensions import db
from tests.conftest import base_config
from tests.support.chat_factories import World
from tests.support.redis_server import free_port
from tests.support.ws_client import Member, close_code, connect, wait_for_event

PROJECT = Path(__file__).resolve().parent.parent
WORKER_CONNECTIONS = 4  # small, so a worker full of sockets leaves new ones to the other


@pytest.fixture
def gunicorn_world(tmp_path, redis_server):
    """A migrated SQLite file with a room, served by `gunicorn -w 2 -k gthread` with Redis."""
    from flask_migrate import upgrade

    database_url = f"sqlite:///{tmp_path / 'discux.db'}"
    setup_app = create_app(base_config(database_url))
    with setup_app.app_context():
        upgrade()
    world = World(setup_app)
    with setup_app.app_context():
        db.engine.dispose()

    port = free_port()
    probes = tmp_path / "probes"
    probes.mkdir()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DISCUX_", "DATABASE_URL"))}
    env.update({
        "SECRET_KEY": "test-secret-key-not-for-production",
        "DATABASE_URL": database_url,
        "DISCUX_REDIS_URL": redis_server.url,
        "DISCUX_BASE_URL": f"http://127.0.0.1:{port}",
        "DISCUX_INSTANCE_PATH": str(tmp_path / "instance"),
        "DISCUX_MAX_SOCKETS": "50",
        "DISCUX_TEST_PROBE_DIR": str(probes),
    })
    log = (tmp_path / "gunicorn.log").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py", "-w", "2",
         "-k", "gthread", "-b", f"127.0.0.1:{port}",
         "--worker-connections", str(WORKER_CONNECTIONS), "tests.support.worker_probe:app"],
        cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        assert server.poll() is None, (tmp_path / "gunicorn.log").read_text()
        try:
            if requests.get(base_url + "/", timeout=5).status_code == 200:
                break
        except (requests.ConnectionError, requests.Timeout):
            pass
        assert time.monotonic() < deadline, "gunicorn did not start within 30 s"
        time.sleep(0.1)
    world.base_url, world.probes, world.server = base_url, probes, server
    yield world
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


def sockets_on_both_workers(world) -> dict[str, list]:
    """Open sockets until both workers hold some: {pid: [sockets]}.

    An idle gthread worker tends to win every accept(); but a worker holding
    `--worker-connections` connections stops accepting, so the next one goes to the other."""
    held: dict[str, list] = {}
    for _ in range(WORKER_CONNECTIONS * 2 + 1):
        probe = secrets.token_hex(8)
        ws = connect(world.base_url, world.room_id, world.member.token, probe=probe)
        held.setdefault((world.probes / probe).read_text(), []).append(ws)
        if len(held) == 2:
            return held
    raise AssertionError(f"every socket landed on one worker: {held}")


def test_message_posted_to_one_worker_reaches_a_socket_on_the_other(gunicorn_world):
    world = gunicorn_world
    held = sockets_on_both_workers(world)
    listeners = {pid: sockets[0] for pid, sockets in held.items()}
    poster = Member(world.base_url, world.owner.token)
    delivered_across = set()
    for n in range(40):
        response = poster.post(world.room_id, f"across {n}", fresh_connection=True)
        assert response.status_code == 200
        posted_by = response.headers["X-Test-Worker"]
        for pid, ws in listeners.items():
            event = wait_for_event(ws, lambda e, n=n: e["type"] == "message.created"
                                   and e["data"]["content"] == f"across {n}")
            assert event["room_id"] == world.room_id
            if pid != posted_by:
                delivered_across.add(pid)
        if delivered_across == set(listeners):
            break
        # The full worker only took the first posts' neighbours; free it to take posts too.
        for sockets in held.values():
            while len(sockets) > 1:
                sockets.pop().close()
    # Each worker's socket got a message the *other* worker stored and published.
    assert delivered_across == set(listeners)
    for ws in listeners.values():
        ws.close()


def test_stopping_a_worker_closes_its_sockets_so_clients_reconnect(gunicorn_world):
    world = gunicorn_world
    held = sockets_on_both_workers(world)
    (stopped_pid, stopped), (_, kept) = held.items()
    os.kill(int(stopped_pid), signal.SIGTERM)
    # 1012 (service restart): the htmx extension reconnects, replaying from its last message.
    for ws in stopped:
        assert close_code(ws, timeout=5) == 1012
    for ws in kept:
        assert ws.connected
        ws.close()
