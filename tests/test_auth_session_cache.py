"""The per-worker cache of signed-in sessions: a sign-out, a deleted or expired session and a
changed user take effect at once in the worker that made the change, and within
SIGNED_IN_CACHE_SECONDS in any other worker."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from discux import plans
from discux.auth.sessions import COOKIE_NAME, SIGNED_IN_CACHE_SECONDS, signed_in_cache
from discux.extensions import db
from discux.ids import sha256_hex
from discux.models import Message, Session, User
from tests.support import chat_factories, factories


class FakeClock:
    """Stands in for time.monotonic so a test can let the cache's seconds pass without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def signed_in(app, client, **user_fields):
    """A user, a session cookie for them on `client`, and the raw token."""
    with app.app_context():
        user = factories.create_user(**user_fields)
        token = factories.create_session_token(user.id)
        user_id = user.id
    client.set_cookie(COOKIE_NAME, token, domain="localhost")
    return user_id, token


def own_room_and_post_headers(app, user_id, csrf_token, name):
    """A room the user owns, and the headers an htmx post from their page carries."""
    with app.app_context():
        room_id = chat_factories.create_room(db.session.get(User, user_id), name=name).id
    return room_id, {"X-CSRFToken": csrf_token(), "HX-Request": "true"}


def test_a_cached_session_is_served_without_reading_the_session_table(app, client):
    signed_in(app, client)
    assert "Sign out" in client.get("/").get_data(as_text=True)  # read, then kept
    statements = []
    with app.app_context():
        listen = sa.event.listens_for(db.engine, "before_cursor_execute")
        listen(lambda *args: statements.append(" ".join(args[2].split())))
    assert "Sign out" in client.get("/").get_data(as_text=True)
    assert statements  # the page itself still reads the database
    assert not [s for s in statements if "sessionToken\" = " in s or "sessionToken` = " in s]


def test_sign_out_takes_effect_at_once_even_for_a_kept_cookie(app, client, csrf_token):
    _, token = signed_in(app, client)
    assert client.get("/settings").status_code == 200
    assert client.post("/logout", data={"csrf_token": csrf_token()}).status_code == 303
    client.set_cookie(COOKIE_NAME, token, domain="localhost")  # a copy of the old cookie
    assert client.get("/settings").status_code == 302


def test_signing_out_other_sessions_ends_them_at_once(app, client, csrf_token, login, make_user):
    user = make_user()
    other = login(user, app.test_client())
    login(user)
    assert other.get("/settings").status_code == 200  # the other browser's session is kept
    client.post("/settings/sessions/sign-out-others", data={"csrf_token": csrf_token()})
    assert other.get("/settings").status_code == 302
    assert client.get("/settings").status_code == 200


def test_a_sign_out_committed_while_a_request_reads_the_session_is_not_undone(app, client):
    """A request of this worker reads the session row, then another request of this worker signs
    that session out (commit, then drop) before the first one keeps what it read: the old row
    must not come back for the cache's seconds."""
    _, token = signed_in(app, client)
    token_hash = sha256_hex(token)
    signed_out = threading.Event()

    def sign_out_meanwhile():
        with app.app_context():
            db.session.execute(sa.delete(Session).where(Session.session_token == token_hash))
            db.session.commit()
            signed_in_cache(app).drop_token(token_hash)

    def after_read(conn, cursor, statement, *args):
        if "sessionToken" in statement and not signed_out.is_set():
            signed_out.set()
            other = threading.Thread(target=sign_out_meanwhile)
            other.start()
            other.join()

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "after_cursor_execute", after_read)
    try:
        assert client.get("/settings").status_code == 200  # read before the sign-out committed
    finally:
        sa.event.remove(engine, "after_cursor_execute", after_read)
    assert signed_out.is_set()
    assert client.get("/settings").status_code == 302


def test_session_deleted_by_another_worker_stops_working_within_the_bound(app, client,
                                                                           make_app):
    clock = FakeClock()
    signed_in_cache(app).clock = clock
    _, token = signed_in(app, client)
    assert client.get("/settings").status_code == 200
    other_worker = make_app()
    with other_worker.app_context():
        db.session.execute(sa.delete(Session).where(Session.session_token == sha256_hex(token)))
        db.session.commit()
    clock.now += SIGNED_IN_CACHE_SECONDS
    response = client.get("/settings")
    assert response.status_code == 302
    assert any(c.startswith(f"{COOKIE_NAME}=;") for c in response.headers.getlist("Set-Cookie"))


def test_session_that_expires_while_kept_is_refused(app, client, monkeypatch):
    signed_in(app, client)
    assert client.get("/settings").status_code == 200
    with app.app_context():
        expires = db.session.scalar(sa.select(Session.expires))
    monkeypatch.setattr("discux.auth.sessions.epoch_ms", lambda: expires + 1)
    assert client.get("/settings").status_code == 302


def test_plan_change_in_this_worker_applies_to_the_next_post(app, client, csrf_token):
    user_id, _ = signed_in(app, client, plan="pro")
    room_id, headers = own_room_and_post_headers(app, user_id, csrf_token, "Quota")
    assert client.post(f"/rooms/{room_id}/messages", data={"content": "one"},
                       headers=headers).status_code == 200  # the user is kept as "pro"
    with app.app_context():
        user = db.session.get(User, user_id)
        plans.set_plan(user, "free")
        user.max_messages_per_month = 1
        db.session.commit()
    response = client.post(f"/rooms/{room_id}/messages", data={"content": "two"},
                           headers=headers)
    assert response.status_code == 422
    assert "Your free plan allows 1 messages a month" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalars(sa.select(Message.content)).all() == ["one"]


def test_kept_user_posts_under_their_current_name(app, client, csrf_token):
    user_id, _ = signed_in(app, client, name="Ana")
    room_id, headers = own_room_and_post_headers(app, user_id, csrf_token, "Names")
    client.post(f"/rooms/{room_id}/messages", data={"content": "as Ana"}, headers=headers)
    with app.app_context():
        db.session.get(User, user_id).name = "Ana Lima"
        db.session.commit()
    client.post(f"/rooms/{room_id}/messages", data={"content": "as Ana Lima"}, headers=headers)
    with app.app_context():
        names = db.session.execute(
            sa.select(Message.content, Message.sender_name).order_by(Message.id)).all()
    assert [tuple(n) for n in names] == [("as Ana", "Ana"), ("as Ana Lima", "Ana Lima")]
