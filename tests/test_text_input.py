"""Bytes that are not UTF-8 text, in any form field or its name: refused with 400, nothing written."""

from __future__ import annotations

import logging
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from discux.extensions import db
from discux.models import User, VerificationToken

GARBAGE = b"\xff\xfe\xc3"  # not UTF-8 (a lone lead byte at the end, too)


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def urlencoded(fields: list[tuple[bytes, bytes]]) -> bytes:
    return b"&".join(quote(name).encode() + b"=" + quote(value).encode() for name, value in fields)


def multipart(fields: list[tuple[bytes, bytes]], boundary=b"discux-test-boundary") -> bytes:
    body = b""
    for name, value in fields:
        body += (b"--" + boundary + b"\r\nContent-Disposition: form-data; name=\"" + name
                 + b"\"\r\n\r\n" + value + b"\r\n")
    return body + b"--" + boundary + b"--\r\n"


def post_raw(client, path, body: bytes, kind: str):
    content_type = ("multipart/form-data; boundary=discux-test-boundary" if kind == "multipart"
                    else "application/x-www-form-urlencoded")
    return client.post(path, data=body, content_type=content_type)


def encode(kind: str, fields):
    return multipart(fields) if kind == "multipart" else urlencoded(fields)


@pytest.mark.parametrize("kind", ["urlencoded", "multipart"])
def test_garbage_address_gets_no_sign_in_link(app, client, csrf_token, kind, caplog):
    body = encode(kind, [(b"email", b"cy" + GARBAGE + b"@example.com"),
                         (b"csrf_token", csrf_token().encode())])
    with caplog.at_level(logging.WARNING):
        response = post_raw(client, "/login/email", body, kind)
    assert response.status_code == 400
    assert "not valid UTF-8 text" in response.get_data(as_text=True)
    assert count(app, VerificationToken) == 0
    assert "/login/email/verify" not in caplog.text


@pytest.mark.parametrize("kind", ["urlencoded", "multipart"])
@pytest.mark.parametrize("field", ["email", "name", "name of a field"])
def test_garbage_in_demo_sign_in_creates_no_user(app, client, csrf_token, kind, field):
    fields = {b"email": b"ana@example.com", b"name": b"Ana"}
    if field == "name of a field":
        fields[b"x" + GARBAGE] = b"1"
    else:
        fields[field.encode()] = fields[field.encode()] + GARBAGE
    body = encode(kind, [*fields.items(), (b"csrf_token", csrf_token().encode())])
    response = post_raw(client, "/login/demo", body, kind)
    assert response.status_code == 400
    assert "not valid UTF-8 text" in response.get_data(as_text=True)
    assert count(app, User) == 0
    assert client.get("/settings").status_code == 302


def test_raw_bytes_outside_percent_escapes_are_refused(app, client, csrf_token):
    body = b"email=ana" + GARBAGE + b"@example.com&name=Ana&csrf_token=" + csrf_token().encode()
    response = post_raw(client, "/login/demo", body, "urlencoded")
    assert response.status_code == 400
    assert count(app, User) == 0


def test_api_answers_json(client):
    response = client.get("/api/v1/search?q=%FF", headers={"Authorization": "Bearer x"})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_text"


@pytest.mark.parametrize("kind", ["urlencoded", "multipart"])
def test_a_name_with_emoji_and_accents_still_signs_in(app, client, csrf_token, kind):
    name = "Zoë 🚀 Łukasz"
    body = encode(kind, [(b"email", b"zoe@example.com"), (b"name", name.encode()),
                         (b"csrf_token", csrf_token().encode())])
    response = post_raw(client, "/login/demo", body, kind)
    assert response.status_code == 303
    assert f"Welcome, {name}" in client.get("/").get_data(as_text=True)
