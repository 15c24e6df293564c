"""The one error type domain functions raise, and the HTTP error pages."""

from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException

from discux.extensions import db

log = logging.getLogger(__name__)

# The database is down, restarting or overloaded (not a bug in a query): try again later.
DATABASE_UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)
UNAVAILABLE_RETRY_AFTER_SECONDS = 5


class DiscuxError(Exception):
    """A rule said no; `message` is written for the user, `field` names the input at fault."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code


class LimitReached(DiscuxError):
    status = 403
    code = "plan_limit"


class Forbidden(DiscuxError):
    status = 403
    code = "forbidden"


TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    413: "Too large",
    429: "Too many requests",
    500: "Something went wrong",
    503: "Temporarily unavailable",
}
MESSAGES = {
    400: "The request could not be understood.",
    403: "You don't have permission to do that.",
    404: "There is nothing here, or you don't have access to it.",
    405: "That action is not available here.",
    413: "That was more than this server accepts in one request (1 MB).",
    429: "You're going a little fast. Wait a moment and try again.",
    500: "The server hit an error. Nothing you sent was half-saved; try again.",
    503: "Discux cannot reach its database right now. Nothing you sent was half-saved; "
         "try again in a minute.",
}


def wants_json() -> bool:
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes[
        "text/html"
    ]


def error_response(status: int, message: str | None = None, code: str | None = None,
                   field: str | None = None):
    message = message or MESSAGES.get(status, TITLES.get(status, "Error"))
    if wants_json():
        error = {"code": code or TITLES.get(status, "error").lower().replace(" ", "_"),
                 "message": message}
        if field:
            error["field"] = field
        return jsonify({"error": error}), status
    try:
        return render_template(
            "errors/error.html", status=status, title=TITLES.get(status, "Error"), message=message
        ), status
    except DATABASE_UNAVAILABLE as error:  # the page asks who is signed in, and the database is down
        return database_unavailable(error)


def database_unavailable(error: Exception):
    """The 503 answer while the database is down, made without asking the database anything."""
    _roll_back_quietly()
    cause = getattr(error, "orig", None) or error
    log.warning("Database unavailable on %s %s: %s: %s", request.method, _route(),
                type(cause).__name__, cause)
    headers = {"Retry-After": str(UNAVAILABLE_RETRY_AFTER_SECONDS)}
    if wants_json():
        body = {"error": {"code": "database_unavailable", "message": MESSAGES[503]}}
        return jsonify(body), 503, headers
    # Straight from Jinja: render_template would run Flask-Login's context processor, which
    # loads the signed-in user from the database.
    page = current_app.jinja_env.get_template("errors/unavailable.html").render(
        status=503, title=TITLES[503], message=MESSAGES[503], request=request)
    return page, 503, headers


def _route() -> str:
    return request.url_rule.rule if request.url_rule else "(no route)"


def _roll_back_quietly() -> None:
    try:
        db.session.rollback()
    except sa_exc.SQLAlchemyError as error:  # the connection died with the server
        log.debug("Rollback after a database error failed too: %s", error)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_failed(error: CSRFError):
        return error_response(
            400, "Your form expired or came from another site. Reload the page and try again.",
            code="csrf_failed",
        )

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        status = error.code or 500
        message = error.description if status not in MESSAGES else None
        if status == 429:
            message = f"Too many requests: the limit is {error.description}. Wait and try again."
        return error_response(status, message)

    @app.errorhandler(DiscuxError)
    def domain_error(error: DiscuxError):
        return error_response(error.status, error.message, error.code, error.field)

    @app.errorhandler(sa_exc.OperationalError)
    @app.errorhandler(sa_exc.InterfaceError)
    @app.errorhandler(sa_exc.TimeoutError)
    def database_down(error: Exception):
        return database_unavailable(error)

    @app.errorhandler(BrokenPipeError)
    @app.errorhandler(ConnectionResetError)
    @app.errorhandler(ConnectionAbortedError)
    def client_went_away(error: OSError):
        # The visitor closed the connection (a tab shut mid-handshake): nobody is left to answer,
        # and nothing on the server went wrong.
        _roll_back_quietly()
        log.info("The client left during %s %s: %s", request.method, _route(), error)
        return "", 400

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        _roll_back_quietly()
        # The URL rule, not the path: a path can carry an invitation or sign-in token.
        app.logger.exception("Unhandled error on %s %s", request.method, _route())
        return error_response(500)
