"""The one error type domain functions raise, and the HTTP error pages."""

from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from discux.extensions import db


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
}
MESSAGES = {
    400: "The request could not be understood.",
    403: "You don't have permission to do that.",
    404: "There is nothing here, or you don't have access to it.",
    405: "That action is not available here.",
    413: "That was more than this server accepts in one request (1 MB).",
    429: "You're going a little fast. Wait a moment and try again.",
    500: "The server hit an error. Nothing you sent was half-saved; try again.",
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
    return render_template(
        "errors/error.html", status=status, title=TITLES.get(status, "Error"), message=message
    ), status


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

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        db.session.rollback()
        app.logger.exception("Unhandled error on %s %s", request.method, request.path)
        return error_response(500)
