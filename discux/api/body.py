"""Reading API input: one JSON object per body, typed fields, typed query parameters.

Only the shape is checked here (is it JSON, is `name` a string); what a value may be is for
the domain functions to say. Unknown fields are ignored.
"""

from __future__ import annotations

import json
from typing import Any

from flask import request

from discux.errors import DiscuxError


class BadRequest(DiscuxError):
    """The request itself is malformed (not JSON, a bad query parameter): 400."""

    status = 400
    code = "bad_request"


class InvalidField(DiscuxError):
    """A field has the wrong type or is missing: 422, naming the field."""

    status = 422
    code = "invalid"


class Missing:
    """The marker for "the body did not send this field" (distinct from null)."""

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = Missing()
TYPE_NAMES = {str: "a string", bool: "true or false", int: "a whole number"}


def json_body(*, optional: bool = False) -> Body:
    """The request's JSON object; an empty body counts as {} when every field is optional."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        if optional:
            return Body({})
        raise BadRequest(
            "Send a JSON object as the request body, with Content-Type: application/json.",
            code="invalid_json",
        )
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        # ValueError covers malformed JSON and bytes that are not UTF-8 text.
        raise BadRequest(
            "The request body is not valid JSON (UTF-8). Send a JSON object such as "
            '{"name": "…"}.',
            code="invalid_json",
        ) from None
    if not isinstance(data, dict):
        raise BadRequest(
            f"The request body must be a JSON object, not {_json_kind(data)}.",
            code="invalid_json",
        )
    return Body(data)


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, str):
        return "a string"
    return "a number"


class Body:
    """A JSON object's fields, each read with the type it must have."""

    def __init__(self, data: dict[str, Any]):
        self.data = data

    def __contains__(self, name: str) -> bool:
        return name in self.data

    def sent(self, *names: str) -> bool:
        """Whether any of these fields is in the body."""
        return any(name in self.data for name in names)

    def _get(self, name: str, kind: type, required: bool, nullable: bool) -> Any:
        if name not in self.data:
            if required:
                raise InvalidField(f"The field {name!r} is required.", name, code="missing")
            return MISSING
        value = self.data[name]
        if value is None and nullable:
            return None
        # bool is a subclass of int in Python, but true is not a number in JSON.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            expected = TYPE_NAMES[kind] + (" or null" if nullable else "")
            raise InvalidField(f"The field {name!r} must be {expected}.", name)
        return value

    def string(self, name: str, *, required: bool = False, nullable: bool = False) -> Any:
        value = self._get(name, str, required, nullable)
        if isinstance(value, str):
            _check_text(name, value)
        return value

    def boolean(self, name: str, *, required: bool = False) -> Any:
        return self._get(name, bool, required, nullable=False)

    def integer(self, name: str, *, required: bool = False, nullable: bool = False) -> Any:
        return self._get(name, int, required, nullable)


def _check_text(name: str, value: str) -> None:
    # JSON may carry "\u0000" or a lone surrogate ("\ud800"); neither is text a database stores.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidField(f"The field {name!r} contains characters that are not valid text "
                           "(a lone surrogate).", name) from None
    if "\x00" in value:
        raise InvalidField(f"The field {name!r} contains a NUL character.", name)


def query_int(name: str, default: int, low: int, high: int) -> int:
    """A whole-number query parameter within [low, high]; 400 naming it otherwise."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9 and low <= int(raw) <= high):
        raise BadRequest(f"{name} must be a whole number from {low} to {high}.", name)
    return int(raw)
