"""Refuse form fields and query parameters that are not valid UTF-8, before any view reads them.

werkzeug decodes what it cannot read as text by substitution (U+FFFD, or the bytes kept as
"%FF"), so without this check a garbage address would pass the email form's shape check and be
stored or mailed. Checked here once, on the raw bytes, for every request."""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from flask import Flask, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from discux.errors import error_response


class NotText(ValueError):
    """Part of the request is not UTF-8 text; the message says which part."""


def _check_utf8(raw: bytes, what: str) -> None:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NotText(what) from None


def check_urlencoded(raw: bytes, where: str) -> None:
    """`a=1&b=2` with percent-escapes: every name and value must decode as UTF-8."""
    _check_utf8(raw, where)
    for pair in raw.split(b"&"):
        name, _, value = pair.partition(b"=")
        _check_utf8(unquote_to_bytes(name.replace(b"+", b" ")), f"a field name in {where}")
        _check_utf8(unquote_to_bytes(value.replace(b"+", b" ")), f"a field in {where}")


def check_multipart(raw: bytes, boundary: bytes) -> None:
    """Every part's headers (the field name) and every non-file field's value."""
    decoder = MultipartDecoder(boundary)
    decoder.receive_data(raw)
    decoder.receive_data(None)
    value = bytearray()
    is_field = False
    while True:
        try:
            event = decoder.next_event()
        except UnicodeDecodeError:
            raise NotText("a field name in the form") from None
        except ValueError:
            return  # a malformed body: werkzeug's own parser answers it as it does today
        if isinstance(event, NeedData | Epilogue):
            return
        if isinstance(event, File):  # uploads are bytes: only its name above had to be text
            is_field = False
        elif isinstance(event, Field):
            is_field, value = True, bytearray()
        elif isinstance(event, Data) and is_field:
            value += event.data
            if not event.more_data:
                _check_utf8(bytes(value), "a field in the form")


def refuse_bytes_that_are_not_text():
    try:
        check_urlencoded(request.query_string, "the address")
        if request.mimetype == "application/x-www-form-urlencoded":
            check_urlencoded(request.get_data(cache=True), "the form")
        elif request.mimetype == "multipart/form-data":
            boundary = request.mimetype_params.get("boundary", "").encode("latin-1")
            if boundary:
                check_multipart(request.get_data(cache=True), boundary)
    except RequestEntityTooLarge:
        return None  # werkzeug's form parsing answers 413 as before
    except NotText as error:
        return error_response(
            400, f"The request was refused: {error} is not valid UTF-8 text. Nothing was saved.",
            code="invalid_text",
        )
    return None


def init_text_input(app: Flask) -> None:
    # First of all before-request hooks: CSRF and rate-limit checks read the form too.
    app.before_request_funcs.setdefault(None, []).insert(0, refuse_bytes_that_are_not_text)
