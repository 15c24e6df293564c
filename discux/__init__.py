"""Discux: a self-hosted room where small teams think out loud with AI agents."""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
import time
from pathlib import Path

from dotenv import load_dotenv
from flask import Flask, current_app, request
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from werkzeug.exceptions import SecurityError
from werkzeug.middleware.proxy_fix import ProxyFix

from discux import logs
from discux.config import ConfigError, finish_config, load_config
from discux.extensions import csrf, db, limiter, migrate

__all__ = ["ConfigError", "create_app"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Everything from the app's own origin, nothing inline: scripts and styles are files under
# static/ (colours set from data-* attributes through CSSOM, static/app.js), images are ours or
# data: URIs (no remote avatars are shown), forms post here only, no page may frame ours.
# connect-src 'self' covers the room WebSocket on the same host (ws:/wss:, CSP Level 3).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "object-src 'none'; base-uri 'none'"
)
# Nothing goes to other sites; pages whose URL carries a secret (sign-in and invitation links)
# send only the origin even to us, which Flask-WTF's https Referer check still accepts.
REFERRER_POLICY = "same-origin"
SECRET_URL_REFERRER_POLICY = "strict-origin"
HSTS = "max-age=31536000"


def create_app(config: dict | None = None) -> Flask:
    """Build the app; `config` overrides what the environment says (tests use it)."""
    load_dotenv(PROJECT_ROOT / ".env", override=False)
    app = Flask(
        __name__,
        instance_path=os.environ.get("DISCUX_INSTANCE_PATH") or str(PROJECT_ROOT / "instance"),
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    app.config.update(load_config(Path(app.instance_path)))
    if config:
        app.config.update(config)
    finish_config(app.config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    logs.init_app(app)
    _trust_proxies(app)
    _configure_database(app)

    from discux import models  # noqa: F401  (registers every table on db.metadata)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))
    csrf.init_app(app)
    _configure_rate_limits(app)
    limiter.init_app(app)

    from discux.auth.providers import register_providers
    from discux.auth.sessions import init_sessions
    from discux.discussion.engine import init_app as init_engine
    from discux.notifications.service import init_app as init_notifications
    from discux.text_input import init_text_input

    init_sessions(app)
    register_providers(app)
    _register_blueprints(app)
    init_text_input(app)
    init_engine(app)
    init_notifications(app)

    from discux.errors import register_error_handlers

    register_error_handlers(app)
    app.register_error_handler(SecurityError, _untrusted_host)
    from discux.cli import register_cli

    register_cli(app)
    _register_template_helpers(app)
    app.after_request(_security_headers)

    with app.app_context():
        _tune_connections(db.engine)
    return app


def _trust_proxies(app: Flask) -> None:
    """Behind N trusted proxies, the client is what the Nth hop from the end says it is.

    Applied once, around everything: rate limits (get_remote_address), logs, request.scheme,
    Host and Secure cookies then all see the client, not the proxy every visitor comes through.
    With 0 hops X-Forwarded-* are ignored, so a client cannot pick its own address.
    """
    hops = app.config.get("DISCUX_TRUSTED_PROXIES") or 0
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)


class _ToDiscuxLog(logging.Handler):
    """Hands Flask-Limiter's records to the "discux.ratelimit" logger, so they are written where
    and how discux/logs.py writes the app's own (Flask-Limiter's logger has only a NullHandler:
    its "falling back to in-memory storage" warning would go unseen)."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger("discux.ratelimit").handle(record)


_LIMITER_LOG_HANDLER = _ToDiscuxLog()


def _configure_rate_limits(app: Flask) -> None:
    """Limits count in Redis when there is one, so every worker shares them.

    While Redis is unreachable they count in this process's memory instead of failing every
    limited request (Flask-Limiter logs one warning when it falls back), and go back to Redis
    once it answers again (Flask-Limiter checks with a backoff of up to about half a minute).
    """
    redis_url = app.config.get("DISCUX_REDIS_URL")
    app.config.setdefault("RATELIMIT_STORAGE_URI", redis_url or "memory://")
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", bool(redis_url))
    if redis_url:
        # A Redis host that vanished (not one that refuses) would otherwise hold a request for the
        # system's connect timeout, minutes, before the fallback takes over.
        app.config.setdefault("RATELIMIT_STORAGE_OPTIONS",
                              {"socket_connect_timeout": 1, "socket_timeout": 1})
    limiter_log = logging.getLogger("flask-limiter")
    if _LIMITER_LOG_HANDLER not in limiter_log.handlers:
        limiter_log.addHandler(_LIMITER_LOG_HANDLER)
        limiter_log.propagate = False  # its records reach the root through discux.ratelimit


def _untrusted_host(_error):
    """A Host (or trusted X-Forwarded-Host) not in TRUSTED_HOSTS: plain 400, no page. The app
    has no URL adapter for such a request, so the usual error page could not build its links."""
    return ("This server does not answer to that host name. Use the site's own address.\n", 400,
            {"Content-Type": "text/plain; charset=utf-8"})


# Connections beyond the pool for a moment's peak (a socket thread loading a room's history):
# opened when needed, closed again when given back.
POOL_OVERFLOW = 10


def database_pool_size(config) -> int:
    """Connections a worker keeps: DISCUX_DATABASE_POOL_SIZE, or one per thread that uses one.

    Every request thread (DISCUX_HTTP_THREADS) and agent thread (DISCUX_AGENT_WORKERS) may hold
    a connection at once; with fewer kept, a busy worker opens and throws away a fresh one for
    most requests (a TCP connect, a handshake and a login each on MariaDB)."""
    return (config.get("DISCUX_DATABASE_POOL_SIZE")
            or config["DISCUX_HTTP_THREADS"] + config["DISCUX_AGENT_WORKERS"])


def _configure_database(app: Flask) -> None:
    uri = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}))
    options.setdefault("pool_reset_on_return", None)  # see _skip_rollback_after_commit
    if uri.get_backend_name() in ("mysql", "mariadb"):
        # TIMESTAMP columns hold UTC; keep the server from converting them to its zone.
        connect_args = {"init_command": "SET time_zone = '+00:00'"}
        if not _asks_for_tls(uri, options.get("connect_args", {})) and _is_local(uri):
            # PyMySQL otherwise builds an SSLContext for every connection (reading the system's
            # CA bundle) to offer TLS to a server on this same host, where it protects nothing.
            connect_args["ssl_disabled"] = True
        options["connect_args"] = {**connect_args, **options.get("connect_args", {})}
        # Pinged by _ping_idle_connections instead: only a connection that sat idle.
        options["pool_pre_ping"] = False
    elif uri.get_backend_name() == "sqlite":
        # A file has no server to restart or idle timeout to outlive: pinging it before every
        # request (pre-ping is for MariaDB, SPEC §12) and recycling connections buy nothing.
        options.pop("pool_recycle", None)
        options.pop("pool_pre_ping", None)
        options.setdefault("connect_args", {"timeout": 15, "check_same_thread": False})
    in_memory = uri.get_backend_name() == "sqlite" and uri.database in (None, "", ":memory:")
    if not in_memory:  # an in-memory SQLite is one connection, kept by SQLAlchemy per thread
        options.setdefault("pool_size", database_pool_size(app.config))
        options.setdefault("max_overflow", POOL_OVERFLOW)
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options


def _asks_for_tls(uri: URL, connect_args: dict) -> bool:
    """The URL (`?ssl_ca=…`, as SQLAlchemy documents) or connect_args name a TLS setting."""
    return any(key.startswith("ssl") for key in (*uri.query, *connect_args))


def _is_local(uri: URL) -> bool:
    if uri.query.get("unix_socket") or uri.host in (None, "", "localhost"):
        return True
    try:
        return ipaddress.ip_address(uri.host).is_loopback
    except ValueError:  # a host name other than localhost: it may be another machine
        return False


def _tune_connections(engine) -> None:
    _skip_rollback_after_commit(engine)
    if engine.dialect.name != "sqlite":
        _ping_idle_connections(engine)
        return

    _queue_sqlite_writers(engine)

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record):
        # WAL + synchronous=NORMAL: ~7x the commit rate of the default journal (NOTES.md).
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.close()


# A writer waits this long for its turn in this process, then leaves it to SQLite's own busy
# handling (the same 15 s as busy_timeout: a turn that long means something is stuck).
WRITER_TURN_TIMEOUT = 15.0
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


def _queue_sqlite_writers(engine) -> None:
    """This process's SQLite writers wait their turn on a lock, not in SQLite's busy handler.

    SQLite has one write lock, held from a transaction's first write to its commit; a writer
    that finds it taken sleeps and tries again (1, 2, 5 … up to 100 ms a try), so with a dozen
    threads posting at once most wait far longer than the lock is ever held. Queued here, the
    next writer starts as soon as the last one's connection is back in the pool; only writers
    in other processes still meet SQLite's retries. (A connection kept after its commit keeps
    the turn until it is given back: the others wait at most WRITER_TURN_TIMEOUT for it.)
    """
    turn = threading.Lock()

    @event.listens_for(engine, "before_cursor_execute")
    def _wait_turn(conn, _cursor, statement, *_):
        info = conn.connection.info
        if not info.get("writer_turn") and statement.lstrip()[:7].upper().startswith(_WRITES):
            info["writer_turn"] = turn.acquire(timeout=WRITER_TURN_TIMEOUT)

    def end_turn(record) -> None:
        if record is not None and record.info.pop("writer_turn", False):
            turn.release()

    # The transaction is over once its connection is back in the pool (after the commit or
    # rollback, which the engine's own events would announce before they happen).
    @event.listens_for(engine.pool, "checkin")
    def _given_back(_dbapi_connection, record):
        end_turn(record)

    @event.listens_for(engine.pool, "invalidate")
    def _thrown_away(_dbapi_connection, record, _exception):
        end_turn(record)


# A server restart or an idle timeout takes seconds or hours: a connection back in the pool for
# less than this was alive a moment ago.
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_idle_connections(engine) -> None:
    """SQLAlchemy's pre-ping, for connections that sat idle in the pool for a second or more.

    A restarted MariaDB (SPEC §12) or one that dropped a connection after `wait_timeout` leaves
    dead connections in the pool; a ping on checkout finds them and the pool opens a fresh one,
    so no request sees the error. Pinging every checkout cost one round trip per request and per
    message posted (a quarter of a post's round trips); a connection that was in use less than
    PING_AFTER_IDLE_SECONDS ago cannot have sat through a restart.
    """
    @event.listens_for(engine.pool, "connect")
    @event.listens_for(engine.pool, "checkin")
    def _idle_from_now(_dbapi_connection, record, *_):
        if record is not None:
            record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _ping_if_idle(dbapi_connection, record, _proxy):
        if time.monotonic() - record.info.get("idle_since", 0.0) < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            if engine.dialect.is_disconnect(error, dbapi_connection, None):
                raise sa_exc.DisconnectionError(str(error)) from error  # the pool reconnects
            raise


def _skip_rollback_after_commit(engine) -> None:
    """Return a connection to the pool without a ROLLBACK when its transaction already ended.

    The pool rolls back every connection it gets back, even right after a commit (SQLAlchemy
    cannot tell the transaction is over once it committed it): on MariaDB that is one more round
    trip for every message posted. The transaction's own begin/commit/rollback events say whether
    one is still open; only then is it rolled back, so nothing half-done reaches the next user.
    """
    # `pool_reset_on_return=None` (set in _configure_database) hands the decision to these.
    @event.listens_for(engine.pool, "checkout")
    def _unknown(_dbapi_connection, record, _proxy):
        record.info["in_transaction"] = True  # e.g. a raw DBAPI user: assume the worst

    @event.listens_for(engine, "begin")
    def _opened(conn):
        conn.connection.info["in_transaction"] = True

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _ended(conn):
        conn.connection.info["in_transaction"] = False

    @event.listens_for(engine.pool, "reset")
    def _roll_back_if_open(dbapi_connection, record, _state):
        if record is None or record.info.get("in_transaction", True):
            dbapi_connection.rollback()
            if record is not None:
                record.info["in_transaction"] = False


def _register_blueprints(app: Flask) -> None:
    from discux.admin.routes import bp as admin_bp
    from discux.agents.routes import bp as agents_bp
    from discux.api.routes import bp as api_bp
    from discux.auth.routes import bp as auth_bp
    from discux.discussion.routes import bp as discussion_bp
    from discux.export.routes import bp as export_bp
    from discux.health import bp as health_bp
    from discux.invitations.routes import bp as invitations_bp
    from discux.main.routes import bp as main_bp
    from discux.messages.actions import bp as message_actions_bp
    from discux.messages.routes import bp as messages_bp
    from discux.notifications.routes import bp as notifications_bp
    from discux.realtime.sockets import bp as realtime_bp
    from discux.rooms.routes import bp as rooms_bp
    from discux.search.routes import bp as search_bp
    from discux.settings.routes import bp as settings_bp

    for blueprint in (main_bp, auth_bp, settings_bp):
        app.register_blueprint(blueprint)
    app.register_blueprint(rooms_bp)
    app.register_blueprint(invitations_bp)
    app.register_blueprint(agents_bp)
    app.register_blueprint(messages_bp)
    app.register_blueprint(message_actions_bp)
    app.register_blueprint(realtime_bp)
    app.register_blueprint(search_bp)
    app.register_blueprint(export_bp)
    app.register_blueprint(discussion_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(notifications_bp)


def _register_template_helpers(app: Flask) -> None:
    from discux.auth.providers import configured_providers

    @app.context_processor
    def inject_globals():
        return {
            "dev_login": app.config["DISCUX_DEV_LOGIN"],
            "sign_in_providers": configured_providers(app),
            "has_endpoint": lambda name: name in app.view_functions,
        }


def _security_headers(response):
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    carries_secret = "token" in request.args or "token" in (request.view_args or {})
    response.headers.setdefault(
        "Referrer-Policy", SECRET_URL_REFERRER_POLICY if carries_secret else REFERRER_POLICY)
    response.headers.setdefault("X-Frame-Options", "DENY")
    if (current_app.config.get("DISCUX_BASE_URL") or "").startswith("https://"):
        # Browsers then refuse plain http to this host for a year, even a typed http:// link.
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    response.vary.add("HX-Request")
    if request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "public, max-age=3600")
    return response
