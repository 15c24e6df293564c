"""Logs an operator can read: every `discux.*` record on stdout, as text or JSON lines, with one
line per request and one per model call.

What is never logged: message text, prompts, API keys, and session, invitation or sign-in tokens.
So a request line names the URL rule (`/invite/<token>`), never the path or the query string.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime

import sqlalchemy as sa
from flask import Flask, g, request
from flask.logging import default_handler
from flask_login import user_loaded_from_request

LOGGER_NAME = "discux"
REQUEST_LOG = logging.getLogger("discux.requests")
MODEL_CALL_LOG = logging.getLogger("discux.model_calls")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMATS = ("text", "json")
STARTED_KEY = "discux.started"
USER_KEY = "discux_log_user_id"


class StdoutHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout is at the time (pytest swaps it per test)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, _value) -> None:
        pass


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, and the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def init_app(app: Flask) -> None:
    """Send `discux.*` records to stdout at DISCUX_LOG_LEVEL in DISCUX_LOG_FORMAT, and log
    each request. Records still reach the root logger (pytest's caplog listens there); gunicorn
    writes only its own loggers, so nothing is written twice."""
    logger = logging.getLogger(LOGGER_NAME)  # also Flask's app.logger: the app is named discux
    logger.setLevel(app.config.get("DISCUX_LOG_LEVEL", "INFO"))
    logger.removeHandler(default_handler)  # Flask's stderr handler would repeat every line
    for handler in list(logger.handlers):
        if isinstance(handler, StdoutHandler):  # an earlier app in this process (tests)
            logger.removeHandler(handler)
    handler = StdoutHandler()
    handler.setFormatter(JsonFormatter() if app.config.get("DISCUX_LOG_FORMAT") == "json"
                         else TextFormatter())
    logger.addHandler(handler)

    app.wsgi_app = _StampStart(app.wsgi_app)
    app.after_request(_log_request)
    user_loaded_from_request.connect(_remember_user, app)


class _StampStart:
    """Notes when a request arrived, before any other part of the app sees it."""

    def __init__(self, wsgi_app) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        environ[STARTED_KEY] = time.perf_counter()
        return self.wsgi_app(environ, start_response)


def _remember_user(_app, user, **_extra) -> None:
    g.setdefault(USER_KEY, _identity_of(user))


def _identity_of(instance) -> str | None:
    """The primary key of an ORM object, read without a query (the database may be down)."""
    identity = sa.inspect(instance).identity if instance is not None else None
    return str(identity[0]) if identity else None


def request_user_id() -> str | None:
    """Who made this request, as far as it has been worked out already (never a new query)."""
    if g.get(USER_KEY):
        return g.get(USER_KEY)
    api_user = g.get("api_user")  # set by the API's Bearer-token check
    if api_user is not None:
        return _identity_of(api_user)
    started = g.get("current_session")  # a sign-in made by this very request
    if started is not None:
        return sa.inspect(started).dict.get("user_id")
    return None


def _log_request(response):
    started = request.environ.get(STARTED_KEY)
    fields = {
        "event": "request",
        "method": request.method,
        "route": request.url_rule.rule if request.url_rule else "(no route)",
        "status": response.status_code,
        "ms": round((time.perf_counter() - started) * 1000, 1) if started else None,
        "user": request_user_id(),
        "addr": request.remote_addr,
    }
    level = logging.WARNING if response.status_code >= 500 else logging.INFO
    REQUEST_LOG.log(level, as_text(fields), extra={"fields": fields})
    return response


def log_model_call(*, room_id: str | None, agent_id: str | None, model: str | None,
                   prompt_tokens: int | None, reply_tokens: int | None, seconds: float,
                   outcome: str) -> None:
    """One line per call to a model: who asked, how big, how long, how it ended (no text)."""
    fields = {
        "event": "model_call",
        "room": room_id,
        "agent": agent_id,
        "model": model or "(server default)",
        "prompt_tokens": prompt_tokens,
        "reply_tokens": reply_tokens,
        "ms": round(seconds * 1000, 1),
        "outcome": outcome,
    }
    MODEL_CALL_LOG.info(as_text(fields), extra={"fields": fields})


def as_text(fields: dict) -> str:
    """`request method=GET route=/rooms status=200 …`: the event, then key=value pairs."""
    pairs = " ".join(f"{key}={'-' if value is None else value}"
                     for key, value in fields.items() if key != "event")
    return f"{fields['event']} {pairs}"
