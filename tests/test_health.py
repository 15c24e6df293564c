"""/healthz and /readyz for probes, and the app's own 503 page while the database is down."""

from __future__ import annotations

import shutil
import socket
import threading

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade

from discux import create_app
from discux.extensions import db
from discux.realtime.hub import hub_for
from tests.conftest import base_config
from tests.support import chat_factories, factories
from tests.support.api_helpers import issue_token
from tests.support.mariadb_server import ThrowawayMariaDB, needs_mariadb_binaries
from tests.support.redis_server import PrivateRedis
from tests.support.scratch_databases import drop_mysql_database, previous_head, scratch_database_url

DATABASE_DOWN_TEXT = "cannot reach its database"


@pytest.fixture
def own_apps():
    """`own_apps(url, revision="head", **config)` → an app on a database of the test's own,
    migrated to `revision`; engines disposed afterwards."""
    apps = []

    def _make(url: str, revision: str = "head", **config):
        app = create_app(base_config(url, **config))
        apps.append(app)
        with app.app_context():
            upgrade(revision=revision)
        return app

    yield _make
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def signed_in_client_with_room(app):
    """A test client signed in as a user who has one room; returns (client, room id, API token)."""
    with app.app_context():
        ana = factories.create_user(email="ana@example.com", name="Ana")
        room = chat_factories.create_room(ana.id, name="Launch plan")
        raw_session = factories.create_session_token(ana.id)
        room_id = room.id
        db.session.refresh(ana)
        db.session.expunge(ana)
    client = app.test_client()
    client.set_cookie("discux_session", raw_session, domain="localhost")
    return client, room_id, issue_token(app, ana)


def test_healthz_answers_without_sign_in(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


def test_readyz_is_ready_on_a_migrated_database_and_names_no_data(client, make_user):
    make_user(email="secret-person@example.com")
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ok",
        "checks": {"database": "ok", "migrations": "ok", "redis": "not configured"},
    }
    assert b"secret-person" not in response.data


def test_readyz_turns_503_when_redis_stops(make_app):
    redis = PrivateRedis().start()
    app = None
    try:
        app = make_app(DISCUX_REDIS_URL=redis.url)
        client = app.test_client()
        assert client.get("/readyz").get_json()["checks"]["redis"] == "ok"

        redis.stop()
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.get_json() == {
            "status": "unavailable",
            "checks": {"database": "ok", "migrations": "ok", "redis": "unavailable"},
        }
        assert client.get("/healthz").status_code == 200  # the process itself is fine
    finally:
        if app is not None:
            hub_for(app).close()  # its listener would retry the stopped Redis for the whole run
        redis.stop()


def test_readyz_turns_503_when_migrations_are_behind_or_ahead(migrated_database, tmp_path, own_apps):
    url = scratch_database_url(migrated_database, tmp_path, "behind")
    try:
        probe = create_app(base_config(url))
        with probe.app_context():
            older = previous_head()
        app = own_apps(url, revision=older)
        response = app.test_client().get("/readyz")
        assert response.status_code == 503
        assert response.get_json()["checks"] == {
            "database": "ok", "migrations": "behind", "redis": "not configured"}

        with app.app_context():
            upgrade()
        assert app.test_client().get("/readyz").status_code == 200

        with app.app_context(), db.engine.begin() as connection:  # as if newer code migrated it
            connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
        response = app.test_client().get("/readyz")
        assert response.status_code == 503
        assert response.get_json()["checks"]["migrations"] == "ahead"
    finally:
        drop_mysql_database(url)


def assert_pages_say_database_is_down(client, room_id: str, api_token: str) -> None:
    page = client.get(f"/rooms/{room_id}")
    assert page.status_code == 503
    html = page.get_data(as_text=True)
    assert DATABASE_DOWN_TEXT in html and "Internal Server Error" not in html
    assert page.headers["Retry-After"]

    # A session this worker has not seen lately: the 404 page asks the database whose it is.
    other = client.application.test_client()
    other.set_cookie("discux_session", "a-session-not-in-this-worker's-cache", domain="localhost")
    missing = other.get("/no-such-page")
    assert missing.status_code == 503
    assert DATABASE_DOWN_TEXT in missing.get_data(as_text=True)

    api = client.get("/api/v1/rooms", headers={"Authorization": f"Bearer {api_token}"})
    assert api.status_code == 503
    assert api.get_json()["error"]["code"] == "database_unavailable"

    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["checks"]["database"] == "unavailable"
    assert client.get("/healthz").status_code == 200


def test_pages_answer_503_when_the_sqlite_file_is_gone(tmp_path, own_apps):
    folder = tmp_path / "data"
    folder.mkdir()
    app = own_apps(f"sqlite:///{folder / 'discux.db'}")
    client, room_id, api_token = signed_in_client_with_room(app)
    assert client.get(f"/rooms/{room_id}").status_code == 200

    shutil.rmtree(folder)  # the disk it lived on went away: nothing can open the file now
    with app.app_context():
        db.engine.dispose()  # open connections would keep the deleted file alive
    assert_pages_say_database_is_down(client, room_id, api_token)


@needs_mariadb_binaries
def test_pages_answer_503_while_mariadb_is_down_and_recover_when_it_returns(own_apps):
    server = ThrowawayMariaDB().start()
    try:
        app = own_apps(server.create_database())
        client, room_id, api_token = signed_in_client_with_room(app)
        assert client.get(f"/rooms/{room_id}").status_code == 200

        server.kill()
        assert_pages_say_database_is_down(client, room_id, api_token)

        server.start()
        assert client.get("/readyz").status_code == 200
        page = client.get(f"/rooms/{room_id}")
        assert page.status_code == 200
        assert "Launch plan" in page.get_data(as_text=True)
    finally:
        server.remove()


class SilentServer:
    """Accepts TCP connections and never says a word: a hung Redis or database server."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=16)
        self.port = self.listener.getsockname()[1]

    def close(self) -> None:
        self.listener.close()


def answer_within_bound(client, path: str, bound: float = 10.0):
    """The response, asserting one came at all (a probe that hangs is no probe)."""
    responses = []
    asker = threading.Thread(target=lambda: responses.append(client.get(path)), daemon=True)
    asker.start()
    asker.join(bound)
    assert responses, f"{path} did not answer within {bound} s"
    return responses[0]


def test_readyz_answers_503_when_redis_hangs(make_app):
    silent = SilentServer()
    app = None
    try:
        app = make_app(DISCUX_REDIS_URL=f"redis://127.0.0.1:{silent.port}/0")
        response = answer_within_bound(app.test_client(), "/readyz")
        assert response.status_code == 503
        assert response.get_json()["checks"]["redis"] == "unavailable"
    finally:
        silent.close()  # resets the connections it held, so the app's listener sees Redis gone
        if app is not None:
            hub_for(app).close()


def test_readyz_answers_503_when_the_database_server_hangs():
    silent = SilentServer()
    try:
        app = create_app(base_config(f"mysql+pymysql://root@127.0.0.1:{silent.port}/discux"))
        response = answer_within_bound(app.test_client(), "/readyz")
        assert response.status_code == 503
        assert response.get_json()["checks"]["database"] == "unavailable"
    finally:
        silent.close()


def test_probes_are_never_rate_limited(make_app):
    app = make_app(RATELIMIT_ENABLED=True, RATELIMIT_DEFAULT="2 per minute")
    client = app.test_client()
    assert [client.get("/").status_code for _ in range(3)][-1] == 429  # limits are on
    for path in ("/healthz", "/readyz"):
        assert {client.get(path).status_code for _ in range(5)} == {200}
