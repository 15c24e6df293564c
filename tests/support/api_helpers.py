"""Personal API tokens and a test client that speaks to /api/v1 with one of them."""

from __future__ import annotations

from discux.api import tokens
from discux.extensions import db
from discux.models import User


def issue_token(app, user, name: str = "test script") -> str:
    """A real token for `user`, made by the tokens service; returns the raw value."""
    with app.app_context():
        _, raw = tokens.create_token(db.session.get(User, user.id), name)
        return raw


class Api:
    """`Api(client, token)`: requests to /api/v1 carrying `Authorization: Bearer <token>`
    (no header at all when `token` is None)."""

    def __init__(self, client, token: str | None):
        self.client = client
        self.token = token

    def request(self, method: str, path: str, json=None, data=None, headers=None, **kwargs):
        all_headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        all_headers.update(headers or {})
        return self.client.open("/api/v1" + path, method=method, json=json, data=data,
                                headers=all_headers, **kwargs)

    def get(self, path: str, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json=None, **kwargs):
        return self.request("POST", path, json=json, **kwargs)

    def patch(self, path: str, json=None, **kwargs):
        return self.request("PATCH", path, json=json, **kwargs)

    def delete(self, path: str, **kwargs):
        return self.request("DELETE", path, **kwargs)


def error_of(response) -> dict:
    """The `error` object of an API error response (asserting the shape on the way)."""
    body = response.get_json()
    assert isinstance(body, dict) and set(body) == {"error"}, response.get_data(as_text=True)
    error = body["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    return error
