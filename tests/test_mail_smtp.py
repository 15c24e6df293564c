"""Sign-in emails over SMTP, against a real local server (aiosmtpd): STARTTLS before AUTH or
nothing, smtps, a plain local relay, certificates verified, and the user told when it failed."""

from __future__ import annotations

import html
import logging
import re

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from discux.auth import mail
from discux.config import ConfigError, load_config
from discux.extensions import db
from discux.models import VerificationToken
from tests.conftest import LiveServer
from tests.support.smtp_server import PrivateSMTP, self_signed_cert

USERS = {"mailer": "s3cret-pass"}


@pytest.fixture(autouse=True)
def empty_database_after(app):
    """The `app` fixture empties the tables after each test, for the apps made here too."""


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    directory = tmp_path_factory.mktemp("smtp-certs")
    return self_signed_cert(directory, "trusted"), self_signed_cert(directory, "stranger")


@pytest.fixture
def smtp_server(request, certs):
    """`smtp_server(tls=..., cert=...)` → a started PrivateSMTP, stopped after the test."""
    servers = []

    def _start(tls="starttls", cert=None, users=USERS):
        server = PrivateSMTP(tls=tls, cert=cert if cert or tls == "none" else certs[0],
                             users=users).start()
        servers.append(server)
        return server

    yield _start
    for server in servers:
        server.stop()


def mail_app(make_app, certs, smtp_url):
    return make_app(DISCUX_SMTP_URL=smtp_url, DISCUX_SMTP_CA_FILE=str(certs[0].cert_file),
                    DISCUX_MAIL_FROM="discux@example.com")


def ask_for_link(app, caplog, email="ana@example.com"):
    """Press "Email me a link"; returns (status fragment once the send is done, log text)."""
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
    with caplog.at_level(logging.WARNING):
        response = client.post("/login/email", data={"email": email, "csrf_token": csrf})
        assert response.status_code == 200
        status_url = html.unescape(re.search(r'hx-get="([^"]+)"',
                                             response.get_data(as_text=True)).group(1))
        assert mail.outbox(app).wait_idle()
    fragment = client.get(status_url, headers={"HX-Request": "true"}).get_data(as_text=True)
    return client, fragment


def token_count(app) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(VerificationToken))


def send_failures(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "Could not send the sign-in email" in
            r.getMessage()]


def link_in(message) -> str:
    body = message.get_payload(decode=True).decode()
    return re.search(r"http://localhost(/login/email/verify\S+)", body).group(1)


def test_starttls_comes_before_the_password(make_app, certs, smtp_server, caplog):
    server = smtp_server("starttls")
    app = mail_app(make_app, certs, server.url("smtp", "mailer", "s3cret-pass"))
    client, fragment = ask_for_link(app, caplog)
    assert "The email is on its way" in fragment
    steps = server.steps()
    assert steps.index("STARTTLS") < steps.index("AUTH") < steps.index("DATA")
    assert ("AUTH", True) in server.events and ("AUTH", False) not in server.events
    assert server.logins == ["mailer"]
    [message] = server.messages
    assert message["To"] == "ana@example.com" and message["From"] == "discux@example.com"
    assert "Sign in as ana@example.com" in client.get(link_in(message)).get_data(as_text=True)
    assert send_failures(caplog) == []


def test_a_server_without_starttls_gets_neither_password_nor_link(make_app, certs, smtp_server,
                                                                   caplog):
    server = smtp_server("none")
    app = mail_app(make_app, certs, server.url("smtp", "mailer", "s3cret-pass"))
    _, fragment = ask_for_link(app, caplog)
    assert "We could not send the email" in fragment and "No link went out" in fragment
    assert "AUTH" not in server.steps() and server.messages == []
    [line] = send_failures(caplog)
    assert "does not offer STARTTLS" in line
    assert "/login/email/verify" not in caplog.text and "s3cret-pass" not in caplog.text
    assert token_count(app) == 0  # the link that never went out is withdrawn


def test_smtps_is_tls_from_the_first_byte(make_app, certs, smtp_server, caplog):
    server = smtp_server("implicit")
    app = mail_app(make_app, certs, server.url("smtps", "mailer", "s3cret-pass"))
    _, fragment = ask_for_link(app, caplog)
    assert "The email is on its way" in fragment
    assert server.events and all(over_tls for _, over_tls in server.events)
    assert "AUTH" in server.steps() and len(server.messages) == 1


def test_insecure_local_relay_sends_plain_without_credentials(make_app, certs, smtp_server,
                                                              caplog):
    server = smtp_server("none", users={})
    app = mail_app(make_app, certs, server.url("smtp+insecure"))
    _, fragment = ask_for_link(app, caplog)
    assert "The email is on its way" in fragment
    assert "STARTTLS" not in server.steps() and "AUTH" not in server.steps()
    assert len(server.messages) == 1


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
def test_a_certificate_nobody_vouches_for_is_refused(make_app, certs, smtp_server, caplog, tls):
    server = smtp_server(tls, cert=certs[1])
    scheme = "smtps" if tls == "implicit" else "smtp"
    app = mail_app(make_app, certs, server.url(scheme, "mailer", "s3cret-pass"))
    _, fragment = ask_for_link(app, caplog)
    assert "We could not send the email" in fragment
    assert "AUTH" not in server.steps() and server.messages == []
    [line] = send_failures(caplog)
    assert "certificate verify failed" in line


def test_an_unreachable_server_is_one_log_line_and_a_plain_message(make_app, certs, smtp_server,
                                                                   caplog):
    server = smtp_server("starttls")
    server.stop()  # nothing listens on its port any more
    app = mail_app(make_app, certs, server.url("smtp", "mailer", "s3cret-pass"))
    _, fragment = ask_for_link(app, caplog)
    assert "We could not send the email" in fragment
    [line] = send_failures(caplog)
    assert "ana@example.com" in line and "/login/email/verify" not in caplog.text


@pytest.mark.parametrize(
    ("value", "said"),
    [("smtp+insecure://mailer:pw@relay:25", "takes no user or password"),
     ("ftp://mail.example.com", "must look like smtp://"),
     ("smtp://", "must look like smtp://")],
)
def test_bad_smtp_settings_stop_start_up(monkeypatch, tmp_path, value, said):
    monkeypatch.setenv("DISCUX_DEV_LOGIN", "1")
    monkeypatch.setenv("DISCUX_BASE_URL", "http://localhost")
    monkeypatch.setenv("DISCUX_SMTP_URL", value)
    with pytest.raises(ConfigError, match="DISCUX_SMTP_URL") as raised:
        load_config(tmp_path)
    assert said in str(raised.value)


def test_a_missing_ca_file_stops_start_up(monkeypatch, tmp_path):
    monkeypatch.setenv("DISCUX_DEV_LOGIN", "1")
    monkeypatch.setenv("DISCUX_BASE_URL", "http://localhost")
    monkeypatch.setenv("DISCUX_SMTP_CA_FILE", str(tmp_path / "nope.pem"))
    with pytest.raises(ConfigError, match="DISCUX_SMTP_CA_FILE"):
        load_config(tmp_path)


def browser_app(make_app, certs, smtp_url):
    app = mail_app(make_app, certs, smtp_url)
    server = LiveServer(app)
    app.config["DISCUX_BASE_URL"] = server.url  # links in the email lead back to this server
    return app, server.start()


@pytest.mark.browser
def test_in_chromium_the_page_reports_the_send_and_the_emailed_link_signs_in(
        make_app, certs, smtp_server, new_context):
    smtp = smtp_server("starttls")
    app, live = browser_app(make_app, certs, smtp.url("smtp", "mailer", "s3cret-pass"))
    try:
        page = new_context().new_page()
        page.goto(live.url + "/login")
        page.get_by_label("Email").first.fill("ana@example.com")
        page.get_by_role("button", name="Email me a link").click()
        expect(page.get_by_text("The email is on its way")).to_be_visible()
        [message] = smtp.messages
        body = message.get_payload(decode=True).decode()
        link = re.search(r"(http://127\.0\.0\.1:\d+/login/email/verify\S+)", body).group(1)
        page.goto(link)
        page.get_by_role("button", name="Sign in as ana@example.com").click()
        expect(page.get_by_role("heading", name="Welcome")).to_be_visible()
    finally:
        live.stop()


@pytest.mark.browser
def test_in_chromium_a_failed_send_is_said_plainly(make_app, certs, smtp_server, new_context,
                                                   caplog):
    smtp = smtp_server("none")
    app, live = browser_app(make_app, certs, smtp.url("smtp", "mailer", "s3cret-pass"))
    try:
        page = new_context().new_page()
        page.goto(live.url + "/login")
        page.get_by_label("Email").first.fill("ana@example.com")
        with caplog.at_level(logging.WARNING):
            page.get_by_role("button", name="Email me a link").click()
            expect(page.get_by_text("We could not send the email.")).to_be_visible()
        assert len(send_failures(caplog)) == 1
    finally:
        live.stop()


def test_a_slow_mail_server_fills_a_bounded_queue_then_new_sends_fail_plainly(
        make_app, certs, smtp_server, caplog):
    server = smtp_server("none", users={})
    server.released.clear()  # every message now waits inside the server
    app = mail_app(make_app, certs, server.url("smtp+insecure"))
    client = app.test_client()
    csrf = re.search(r'"X-CSRFToken": "([^"]+)"', client.get("/login").get_data(as_text=True))[1]

    def ask(number):
        page = client.post("/login/email", data={"email": f"u{number}@example.com",
                                                 "csrf_token": csrf})
        assert page.status_code == 200  # the request never waits for the mail server
        url = html.unescape(re.search(r'hx-get="([^"]+)"', page.get_data(as_text=True))[1])
        return client.get(url, headers={"HX-Request": "true"}).get_data(as_text=True)

    with caplog.at_level(logging.WARNING):
        waiting = [ask(number) for number in range(mail.MAX_WAITING)]
        assert all("Sending the email" in fragment for fragment in waiting)
        assert "We could not send the email" in ask("one-too-many")
        [line] = send_failures(caplog)
        assert "already waiting to be sent" in line
        server.released.set()
        assert mail.outbox(app).wait_idle(timeout=60)
    assert len(server.messages) == mail.MAX_WAITING
