"""Signing in and out: demo sign-in, email links, database sessions, safe redirects."""

from __future__ import annotations

import html
import logging
import re

import pytest
import sqlalchemy as sa

from discux.auth import mail
from discux.auth.sessions import COOKIE_NAME, REFRESH_AFTER_MS, SESSION_LIFETIME_MS
from discux.extensions import db
from discux.ids import epoch_ms, sha256_hex
from discux.models import Session, User, VerificationToken
from tests.support.email_links import confirm_form, open_sign_in_link


def session_rows(app):
    with app.app_context():
        return db.session.scalars(sa.select(Session)).all()


def demo_sign_in(client, csrf_token, email="ana@example.com", name="Ana", next_url=""):
    return client.post("/login/demo", data={
        "email": email, "name": name, "next": next_url, "csrf_token": csrf_token(),
    })


def test_demo_sign_in_creates_user_and_lands_on_dashboard(app, client, csrf_token):
    response = demo_sign_in(client, csrf_token)
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    page = client.get("/").get_data(as_text=True)
    assert "Welcome, Ana" in page
    with app.app_context():
        assert db.session.scalar(sa.select(User.email)) == "ana@example.com"


def test_session_cookie_is_random_httponly_samesite_and_stored_hashed(app, client, csrf_token):
    response = demo_sign_in(client, csrf_token)
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith(COOKIE_NAME))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    raw = re.match(rf"{COOKIE_NAME}=([^;]+)", cookie).group(1)
    assert len(raw) >= 40
    [row] = session_rows(app)
    assert row.session_token == sha256_hex(raw)
    assert raw not in row.session_token
    assert row.expires > epoch_ms() + SESSION_LIFETIME_MS - 60_000


def test_demo_sign_in_is_absent_unless_enabled(make_app):
    app = make_app(DISCUX_DEV_LOGIN=False, DISCUX_BASE_URL="http://localhost")
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    assert "Demo sign-in" not in page
    assert "anyone who can reach this server" not in page
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
    response = client.post("/login/demo", data={"email": "a@example.com", "csrf_token": token})
    assert response.status_code == 404


def test_demo_banner_warns_on_every_page(client):
    for path in ("/", "/login"):
        assert "anyone who can reach this server can sign in as anyone" in client.get(
            path).get_data(as_text=True)


@pytest.mark.parametrize(
    ("email", "message"),
    [("", "Enter an email address."), ("not-an-email", "Enter a valid email address."),
     ("a@b", "Enter a valid email address.")],
)
def test_demo_sign_in_rejects_bad_email_and_keeps_the_name(app, client, csrf_token, email,
                                                          message):
    response = demo_sign_in(client, csrf_token, email=email, name="Keep Me")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in page
    assert 'value="Keep Me"' in page
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0


def test_sign_out_deletes_the_session_row(app, client, csrf_token):
    demo_sign_in(client, csrf_token)
    assert len(session_rows(app)) == 1
    response = client.post("/logout", data={"csrf_token": csrf_token()})
    assert response.status_code == 303
    assert session_rows(app) == []
    assert client.get("/settings").status_code == 302


def test_signed_out_visitor_is_sent_to_login_and_back(client, csrf_token):
    response = client.get("/settings")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=%2Fsettings")
    response = demo_sign_in(client, csrf_token, next_url="/settings")
    assert response.headers["Location"] == "/settings"


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example/", "/\\evil.example", "\\\\evil.example",
     "javascript:alert(1)", "http:/evil.example", "/\x00evil", "/\tevil"],
)
def test_next_never_leaves_the_site(client, csrf_token, target):
    response = demo_sign_in(client, csrf_token, next_url=target)
    assert response.status_code == 303
    assert response.headers["Location"] == "/"


def test_sign_out_other_sessions_keeps_this_one(app, client, make_user, login, csrf_token):
    user = make_user(email="bo@example.com")
    other = app.test_client()
    login(user, other)
    login(user)
    assert len(session_rows(app)) == 2
    response = client.post("/settings/sessions/sign-out-others",
                           data={"csrf_token": csrf_token()}, follow_redirects=True)
    assert "Signed out 1 other session." in response.get_data(as_text=True)
    assert len(session_rows(app)) == 1
    assert client.get("/settings").status_code == 200
    assert other.get("/settings").status_code == 302


def test_expired_session_is_signed_out_and_cookie_cleared(app, client, make_user, login):
    login(make_user())
    with app.app_context():
        db.session.execute(sa.update(Session).values(expires=epoch_ms() - 1))
        db.session.commit()
    response = client.get("/settings")
    assert response.status_code == 302
    assert any(c.startswith(f"{COOKIE_NAME}=;") for c in response.headers.getlist("Set-Cookie"))


def test_sliding_expiry_moves_at_most_daily(app, client, make_user, login):
    login(make_user())
    [row] = session_rows(app)
    fresh_expiry = row.expires
    client.get("/settings")
    assert session_rows(app)[0].expires == fresh_expiry  # refreshed less than a day ago
    old = epoch_ms() + SESSION_LIFETIME_MS - REFRESH_AFTER_MS - 60_000
    with app.app_context():
        db.session.execute(sa.update(Session).values(expires=old))
        db.session.commit()
    response = client.get("/settings")
    assert session_rows(app)[0].expires > old + REFRESH_AFTER_MS
    assert any(c.startswith(COOKIE_NAME) and "Max-Age=259" in c
               for c in response.headers.getlist("Set-Cookie"))


def request_link(client, csrf_token, caplog, email="cy@example.com", next_url=""):
    with caplog.at_level(logging.WARNING):
        response = client.post("/login/email", data={
            "email": email, "next": next_url, "csrf_token": csrf_token()})
        assert response.status_code == 200
        assert "Check your email" in response.get_data(as_text=True)
        assert mail.outbox(client.application).wait_idle()
    link = re.search(r"(http://\S+/login/email/verify\S+)", caplog.text).group(1)
    return link.replace("http://localhost", "")


def token_rows(app):
    with app.app_context():
        return db.session.scalars(sa.select(VerificationToken)).all()


def test_email_link_signs_in_once(app, client, csrf_token, caplog):
    link = request_link(client, csrf_token, caplog, next_url="/settings")
    [row] = token_rows(app)
    assert row.identifier == "cy@example.com"
    assert row.token not in link  # only the hash is stored
    response = open_sign_in_link(client, link)
    assert response.status_code == 303
    assert response.headers["Location"] == "/settings"
    with app.app_context():
        user = db.session.scalar(sa.select(User))
        assert user.email == "cy@example.com" and user.email_verified is not None
    assert token_rows(app) == []
    stranger = app.test_client()
    response = stranger.get(link)
    assert response.status_code == 410
    assert "not valid or was already used" in response.get_data(as_text=True)
    assert stranger.get("/settings").status_code == 302


def test_opening_the_link_spends_nothing_so_a_mail_scanner_cannot_burn_it(app, client,
                                                                          csrf_token, caplog):
    link = request_link(client, csrf_token, caplog)
    scanner = app.test_client()
    for _ in range(3):
        page = scanner.get(link)
        assert page.status_code == 200
        text = page.get_data(as_text=True)
        assert "Sign in as cy@example.com" in text and "<button" in text
        assert page.headers["Cache-Control"] == "no-store"
        assert page.headers["Referrer-Policy"] == "no-referrer"
    assert scanner.get("/settings").status_code == 302
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0
    assert len(token_rows(app)) == 1
    assert open_sign_in_link(client, link).status_code == 303
    assert client.get("/settings").status_code == 200


def test_pressing_the_button_needs_the_pages_csrf_token(app, client, csrf_token, caplog):
    link = request_link(client, csrf_token, caplog)
    _, fields = confirm_form(client.get(link).get_data(as_text=True))
    forged = app.test_client().post("/login/email/verify",
                                    data={**fields, "csrf_token": "forged"})
    assert forged.status_code == 400
    assert len(token_rows(app)) == 1  # still usable by its owner
    assert client.post("/login/email/verify", data=fields).status_code == 303


def test_expired_email_link_is_refused(app, client, csrf_token, caplog):
    link = request_link(client, csrf_token, caplog)
    _, fields = confirm_form(client.get(link).get_data(as_text=True))
    with app.app_context():
        db.session.execute(sa.update(VerificationToken).values(expires=epoch_ms() - 1))
        db.session.commit()
    for response in (client.get(link), client.post("/login/email/verify", data=fields)):
        assert response.status_code == 410
        page = response.get_data(as_text=True)
        assert "has expired" in page and "Ask for a new link" in page
    assert client.get("/settings").status_code == 302


def test_tampered_email_link_is_refused(client, csrf_token, caplog):
    link = request_link(client, csrf_token, caplog)
    response = client.get(link.replace("token=", "token=x"))
    assert response.status_code == 410
    assert "not valid" in response.get_data(as_text=True)


def expired_token(app, email="old@example.com"):
    with app.app_context():
        db.session.add(VerificationToken(identifier=email, token=sha256_hex(email),
                                         expires=epoch_ms() - 1))
        db.session.commit()


def test_asking_for_a_link_purges_expired_ones(app, client, csrf_token, caplog):
    expired_token(app)
    request_link(client, csrf_token, caplog)
    assert [row.identifier for row in token_rows(app)] == ["cy@example.com"]


def test_purge_tokens_command_deletes_only_expired_links(app, runner, client, csrf_token,
                                                         caplog):
    request_link(client, csrf_token, caplog)
    expired_token(app, "a@example.com")
    expired_token(app, "b@example.com")
    result = runner.invoke(args=["auth", "purge-tokens"])
    assert result.exit_code == 0, result.output
    assert "Deleted 2 expired sign-in links." in result.output
    assert [row.identifier for row in token_rows(app)] == ["cy@example.com"]
    assert "Deleted 0 expired sign-in links." in runner.invoke(
        args=["auth", "purge-tokens"]).output


def test_the_check_email_page_says_when_the_email_went_out(app, client, csrf_token, caplog):
    with caplog.at_level(logging.WARNING):
        response = client.post("/login/email", data={
            "email": "cy@example.com", "csrf_token": csrf_token()})
    page = response.get_data(as_text=True)
    status_url = html.unescape(re.search(r'hx-get="(/login/email/sent\?ticket=[^"]+)"',
                                         page).group(1))
    assert mail.outbox(app).wait_idle()
    status = client.get(status_url, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "The email is on its way" in status and "hx-get" not in status
    assert "can't tell" in client.get("/login/email/sent?ticket=nonsense").get_data(as_text=True)


def test_sign_in_is_rate_limited(make_app):
    app = make_app(RATELIMIT_ENABLED=True)
    client = app.test_client()
    token = re.search(r'"X-CSRFToken": "([^"]+)"', client.get("/login").get_data(as_text=True))[1]
    statuses = [client.post("/login/email", data={"email": "x@example.com", "csrf_token": token})
                .status_code for _ in range(7)]
    assert statuses[:5] == [200] * 5
    assert statuses[-1] == 429


def test_another_worker_answers_the_poll_through_redis(app, make_app, redis_server, caplog):
    """Behind gunicorn the page's poll may reach another worker process than the send."""
    first = make_app(DISCUX_REDIS_URL=redis_server.url)
    second = make_app(DISCUX_REDIS_URL=redis_server.url)
    client = first.test_client()
    csrf = re.search(r'"X-CSRFToken": "([^"]+)"', client.get("/login").get_data(as_text=True))[1]
    with caplog.at_level(logging.WARNING):
        page = client.post("/login/email", data={"email": "cy@example.com", "csrf_token": csrf})
        assert mail.outbox(first).wait_idle()
    status_url = html.unescape(re.search(r'hx-get="([^"]+)"', page.get_data(as_text=True))[1])
    status = second.test_client().get(status_url, headers={"HX-Request": "true"})
    assert "The email is on its way" in status.get_data(as_text=True)
