"""`/healthz` (the process answers) and `/readyz` (it can serve: database, Redis, schema) for
load balancers, compose healthchecks and systemd; no sign-in, and no detail beyond ok/failing."""

from __future__ import annotations

import logging
import time

import redis
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from flask import Blueprint, Flask, current_app, jsonify
from sqlalchemy.pool import NullPool

from discux.extensions import csrf, db, limiter, migrate

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)
csrf.exempt(bp)
limiter.exempt(bp)  # probes come every few seconds from one address

# Each check gets this long, so /readyz answers within a second even when a server hangs.
CHECK_TIMEOUT_SECONDS = 0.4
PROBE_ENGINE_KEY = "discux.health.engine"
HEADS_KEY = "discux.health.heads"
VERSION_QUERY = sa.text("SELECT version_num FROM alembic_version")


@bp.get("/healthz")
def healthz():
    return _answer({"status": "ok"}, 200)


@bp.get("/readyz")
def readyz():
    checks = {"database": "ok", "migrations": "ok", "redis": "not configured"}
    try:
        with probe_engine(current_app).connect() as connection:
            connection.execute(sa.text("SELECT 1"))
            applied = set(connection.execute(VERSION_QUERY).scalars())
        heads, known = migration_revisions(current_app)
        if applied != heads:
            # "ahead": the database was migrated by newer code than this (see docs/upgrading.md).
            checks["migrations"] = "behind" if applied <= known else "ahead"
    except sa.exc.SQLAlchemyError as error:
        cause = getattr(error, "orig", None) or error
        log.warning("Readiness: the database does not answer: %s: %s", type(cause).__name__, cause)
        checks["database"] = checks["migrations"] = "unavailable"
    redis_url = current_app.config.get("DISCUX_REDIS_URL")
    if redis_url:
        checks["redis"] = "ok" if redis_answers(redis_url) else "unavailable"
    ready = all(state in ("ok", "not configured") for state in checks.values())
    return _answer({"status": "ok" if ready else "unavailable", "checks": checks},
                   200 if ready else 503)


def probe_engine(app: Flask) -> sa.Engine:
    """The app's engine on SQLite (a local file cannot hang); on MySQL/MariaDB one of short
    timeouts and no pool, so a hung server costs the probe a fraction of a second."""
    if db.engine.dialect.name == "sqlite":
        return db.engine
    engine = app.extensions.get(PROBE_ENGINE_KEY)
    if engine is None:
        seconds = CHECK_TIMEOUT_SECONDS
        engine = sa.create_engine(
            db.engine.url, poolclass=NullPool,
            connect_args={"connect_timeout": seconds, "read_timeout": seconds,
                          "write_timeout": seconds})
        app.extensions[PROBE_ENGINE_KEY] = engine
    return engine


def migration_revisions(app: Flask) -> tuple[set[str], set[str]]:
    """The head revisions of the migration scripts this checkout ships, and every revision they
    know (read once per app)."""
    revisions = app.extensions.get(HEADS_KEY)
    if revisions is None:
        scripts = ScriptDirectory.from_config(migrate.get_config())
        revisions = (set(scripts.get_heads()),
                     {script.revision for script in scripts.walk_revisions()})
        app.extensions[HEADS_KEY] = revisions
    return revisions


def redis_answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=CHECK_TIMEOUT_SECONDS,
                                  socket_connect_timeout=CHECK_TIMEOUT_SECONDS)
    started = time.monotonic()
    try:
        return bool(client.ping())
    except redis.RedisError as error:
        log.warning("Readiness: Redis does not answer after %.2f s: %s",
                    time.monotonic() - started, error)
        return False
    finally:
        client.close()


def _answer(body: dict, status: int):
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response
