"""Shared fixtures: an app on a real database (SQLite, or MariaDB via DISCUX_TEST_DATABASE_URL),
a live server on a free port, a real Chromium, and factories for users and their sessions."""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

# The environment the app reads, fixed before anything imports it.
for _name in list(os.environ):
    if _name.startswith("DISCUX_") and _name not in {"DISCUX_TEST_DATABASE_URL"}:
        del os.environ[_name]
os.environ.pop("DATABASE_URL", None)
os.environ["SECRET_KEY"] = "test-secret-key-not-for-production"
os.environ["DISCUX_INSTANCE_PATH"] = tempfile.mkdtemp(prefix="discux-instance-")
# No app under test probes the machine's Ollama port (11434): the registry's "local Ollama"
# fallback looks at a port held closed, so the demo responder answers whatever runs here.
from tests.support.closed_port import CLOSED_URL  # noqa: E402

os.environ["DISCUX_OLLAMA_URL"] = CLOSED_URL

from werkzeug.serving import make_server  # noqa: E402

from discux import create_app  # noqa: E402
from discux.auth.sessions import COOKIE_NAME  # noqa: E402
from discux.discussion.engine import engine_for  # noqa: E402
from discux.extensions import db  # noqa: E402
from tests.support import factories  # noqa: E402
from tests.support.fake_llm import FakeLLM  # noqa: E402
from tests.support.redis_server import PrivateRedis  # noqa: E402

TEST_DATABASE_URL = os.environ.get("DISCUX_TEST_DATABASE_URL")
IS_MYSQL = bool(TEST_DATABASE_URL and TEST_DATABASE_URL.startswith(("mysql", "mariadb")))


def pytest_report_header(config):
    return f"discux database: {TEST_DATABASE_URL or 'SQLite (temporary file)'}"


class TracebackCatcher(logging.Handler):
    """Keeps every log record that carries a traceback: a route that crashed, a thread that died."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or "Traceback (most recent call last)" in record.getMessage():
            self.records.append(record)


@pytest.fixture(autouse=True)
def no_logged_traceback(request) -> Iterator[None]:
    """A test fails when anything it ran logged a traceback (SPEC: no input ends in a 5xx);
    a test that provokes one on purpose says so with @pytest.mark.allows_traceback."""
    catcher = TracebackCatcher()
    root = logging.getLogger()
    root.addHandler(catcher)
    try:
        yield
    finally:
        root.removeHandler(catcher)
    if catcher.records and not request.node.get_closest_marker("allows_traceback"):
        first = catcher.records[0]
        pytest.fail(
            f"{len(catcher.records)} logged traceback(s); the first, from {first.name}: "
            f"{first.getMessage()[:300]}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    if TEST_DATABASE_URL:
        return TEST_DATABASE_URL
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'discux-test.db'}"


def base_config(database_url: str, **overrides) -> dict:
    config = {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "DISCUX_DEV_LOGIN": True,
        "RATELIMIT_ENABLED": False,
        "SERVER_NAME": None,
    }
    config.update(overrides)
    return config


def drop_everything(engine: sa.Engine) -> None:
    """Start the session from an empty database, whatever an earlier run left."""
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            rows = connection.exec_driver_sql(
                "SELECT type, name FROM sqlite_master WHERE type IN ('table','trigger') "
                "AND name NOT LIKE 'sqlite_%'"
            ).all()
            for kind, name in rows:
                if kind == "trigger":
                    connection.exec_driver_sql(f'DROP TRIGGER IF EXISTS "{name}"')
            for kind, name in rows:
                if kind == "table" and not re.match(r"messages_fts_", name):
                    connection.exec_driver_sql(f'DROP TABLE IF EXISTS "{name}"')
        else:
            connection.exec_driver_sql("SET FOREIGN_KEY_CHECKS=0")
            for (name,) in connection.exec_driver_sql("SHOW TABLES").all():
                connection.exec_driver_sql(f"DROP TABLE IF EXISTS `{name}`")
            connection.exec_driver_sql("SET FOREIGN_KEY_CHECKS=1")


@pytest.fixture(scope="session")
def migrated_database(database_url: str) -> str:
    """Run the real Alembic migrations once per test session."""
    from flask_migrate import upgrade

    app = create_app(base_config(database_url))
    with app.app_context():
        drop_everything(db.engine)
        upgrade()
        db.engine.dispose()
    return database_url


def empty_tables(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        for table in reversed(db.metadata.sorted_tables):
            connection.execute(table.delete())


@pytest.fixture(scope="session")
def redis_session_server() -> Iterator[PrivateRedis]:
    """One redis-server of the test run's own, on a free port (never a machine's 6379)."""
    server = PrivateRedis().start()
    yield server
    server.stop()


@pytest.fixture
def redis_server(redis_session_server: PrivateRedis) -> PrivateRedis:
    """The run's redis-server, emptied for this test."""
    redis_session_server.flush()
    return redis_session_server


@pytest.fixture
def make_app(migrated_database: str):
    """Build extra apps on the same database (a second worker, other settings)."""
    apps = []

    def _make(**overrides):
        app = create_app(base_config(migrated_database, **overrides))
        apps.append(app)
        return app

    yield _make
    for app in apps:
        engine = app.extensions.get("discux.discussion")
        if engine is not None:  # no poll of this app may take a later test's turns
            engine.close()
        with app.app_context():
            db.engine.dispose()


@pytest.fixture(scope="module")
def fake():
    """The local OpenAI-compatible server a module's agents talk to (over HTTP)."""
    server = FakeLLM().start()
    yield server
    server.stop()


@pytest.fixture
def llm_app_config():
    """Settings a test file or test adds to `llm_app` (override or parametrize it)."""
    return {}


@pytest.fixture
def llm_app(make_app, fake, llm_app_config):
    """An app whose agents answer through `fake`; their turns finish before the tables empty."""
    fake.reset()
    app = make_app(DISCUX_LLM_BASE_URL=fake.base_url, DISCUX_LLM_MODEL="fake-small",
                   **llm_app_config)
    yield app
    engine_for(app).wait_idle(timeout=10)
    with app.app_context():
        db.session.remove()
        empty_tables(db.engine)


@pytest.fixture
def app(make_app):
    app = make_app()
    yield app
    engine = app.extensions.get("discux.discussion")
    if engine is not None:  # let agent replies a test set off finish before emptying tables
        engine.wait_idle(timeout=15)
    with app.app_context():
        db.session.remove()
        empty_tables(db.engine)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


CSRF_IN_PAGE = re.compile(r'"X-CSRFToken": "([^"]+)"')


@pytest.fixture
def csrf_token(client):
    """`csrf_token(test_client=client)` → a CSRF token valid for that client's session, read
    from a real page the way a browser would."""

    def _token(test_client=None):
        html = (test_client or client).get("/").get_data(as_text=True)
        match = CSRF_IN_PAGE.search(html)
        assert match, "no CSRF token on the page"
        return match.group(1)

    return _token


@pytest.fixture
def ctx(app):
    """An application context for calling domain functions and factories directly."""
    with app.app_context():
        yield


class LiveServer:
    def __init__(self, app):
        self.app = app
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        # A socket a test forgot to close must not keep the test run from exiting.
        self._server.daemon_threads = True
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> LiveServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)


@pytest.fixture
def live_server(app) -> Iterator[LiveServer]:
    server = LiveServer(app).start()
    yield server
    server.stop()


@pytest.fixture
def make_user(app):
    """`make_user(email=..., name=..., plan=...)` → a committed User."""

    def _make(**fields):
        with app.app_context():
            user = factories.create_user(**fields)
            db.session.refresh(user)  # load every column before detaching
            db.session.expunge(user)
            return user

    return _make


@pytest.fixture
def login(app, client):
    """`login(user)` signs the test client in as `user` through a real Session row."""

    def _login(user, test_client=None):
        test_client = test_client or client
        with app.app_context():
            raw_token = factories.create_session_token(user.id)
        test_client.set_cookie(COOKIE_NAME, raw_token, domain="localhost")
        return test_client

    return _login


# ---- Browser (Playwright driving Debian's Chromium) ----
CHROMIUM = os.environ.get("DISCUX_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `make browser` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_context(browser):
    """`new_context()` → a fresh browser profile (another person); all closed after the test."""
    contexts = []

    def _new(**options):
        options.setdefault("viewport", {"width": 1280, "height": 800})
        context = browser.new_context(**options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context

    yield _new
    for context in contexts:
        context.close()


@pytest.fixture
def signed_in_page(app, live_server, new_context):
    """`signed_in_page(user)` → a Playwright page of a new browser profile signed in as `user`."""

    def _page(user, **options):
        context = new_context(**options)
        with app.app_context():
            raw_token = factories.create_session_token(user.id)
        context.add_cookies([{"name": COOKIE_NAME, "value": raw_token, "url": live_server.url}])
        return context.new_page()

    return _page
