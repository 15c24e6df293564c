"""Sending sign-in links: over SMTP when DISCUX_SMTP_URL is set, else into the log.

Sending happens on a small background pool, so a slow or unreachable mail server never holds
a request; the "check your email" page asks for the outcome by ticket (`send_status`).

SMTP never carries a password in clear: `smtp://` upgrades with STARTTLS before anything else
and refuses to go on when the server does not offer it; `smtps://` is TLS from the first byte;
only `smtp+insecure://` (a local relay, no credentials: config.py refuses them) talks plain.
Certificates are verified against the system's CAs plus DISCUX_SMTP_CA_FILE."""

from __future__ import annotations

import secrets
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import redis
from flask import Flask, current_app

SENDING, SENT, FAILED = "sending", "sent", "failed"
STATUS_LIFETIME_S = 15 * 60
MAIL_THREADS = 2
MAX_WAITING = 50  # sends queued beyond this fail at once rather than pile up in memory


class MailNotSent(Exception):
    """The mail server could not be used safely or at all; the message is the log's reason."""


def _tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca_file = current_app.config.get("DISCUX_SMTP_CA_FILE")
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


def _message(email: str, link: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = "Your Discux sign-in link"
    message["From"] = current_app.config["DISCUX_MAIL_FROM"]
    message["To"] = email
    message.set_content(
        f"Open this link to sign in to Discux:\n\n{link}\n\n"
        "It works once and expires in 24 hours. If you did not ask for it, ignore this email."
    )
    return message


def send_sign_in_link(email: str, link: str) -> None:
    """Deliver the link now (on the calling thread); raises MailNotSent or OSError."""
    smtp_url = current_app.config.get("DISCUX_SMTP_URL")
    if not smtp_url:
        # No mail server: the operator reads the link in the server log (demo and laptops).
        current_app.logger.warning("Sign-in link for %s (no SMTP configured): %s", email, link)
        return
    deliver(_message(email, link))


def deliver(message: EmailMessage) -> None:
    """Send `message` through DISCUX_SMTP_URL now (on the calling thread), TLS before any
    password; raises MailNotSent or OSError. Callers check that SMTP is configured."""
    smtp_url = current_app.config["DISCUX_SMTP_URL"]
    parts = urlsplit(smtp_url)
    scheme, host = parts.scheme, parts.hostname
    if scheme == "smtps":
        smtp = smtplib.SMTP_SSL(host, parts.port or 465, timeout=10, context=_tls_context())
    else:
        smtp = smtplib.SMTP(host, parts.port or (25 if scheme == "smtp+insecure" else 587),
                            timeout=10)
    with smtp:
        if scheme in {"smtp", "smtp+starttls"}:
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                raise MailNotSent(
                    f"{host} does not offer STARTTLS, so nothing was sent (the password and "
                    "the link would cross in clear); use smtps:// or a server with STARTTLS"
                )
            smtp.starttls(context=_tls_context())
            smtp.ehlo()
        if parts.username:
            smtp.login(unquote(parts.username), unquote(parts.password or ""))
        smtp.send_message(message)


class _MemoryStatuses:
    """Outcomes kept in this process (one worker, or no Redis)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, tuple[float, str]] = {}

    def set(self, ticket: str, state: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._items = {k: v for k, v in self._items.items()
                           if now - v[0] < STATUS_LIFETIME_S}
            self._items[ticket] = (now, state)

    def get(self, ticket: str) -> str | None:
        with self._lock:
            item = self._items.get(ticket)
        return item[1] if item and time.monotonic() - item[0] < STATUS_LIFETIME_S else None


class _RedisStatuses:
    """Outcomes in Redis, so the worker that answers the page's poll knows what another sent."""

    def __init__(self, url: str, log) -> None:
        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._log = log

    def set(self, ticket: str, state: str) -> None:
        try:
            self._client.set(f"discux:mail:{ticket}", state, ex=STATUS_LIFETIME_S)
        except redis.RedisError as error:
            self._log.warning("Could not record a sign-in email's outcome in Redis: %s", error)

    def get(self, ticket: str) -> str | None:
        try:
            value = self._client.get(f"discux:mail:{ticket}")
        except redis.RedisError as error:
            self._log.warning("Could not read a sign-in email's outcome from Redis: %s", error)
            return None
        return value.decode() if value else None


class MailOutbox:
    """A bounded pool that sends sign-in emails with an app context, and their outcomes."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.pool = ThreadPoolExecutor(MAIL_THREADS, thread_name_prefix="discux-mail")
        self.statuses = (_RedisStatuses(app.config["DISCUX_REDIS_URL"], app.logger)
                         if app.config.get("DISCUX_REDIS_URL") else _MemoryStatuses())
        self._lock = threading.Lock()
        self._waiting = 0
        self._idle = threading.Event()
        self._idle.set()

    def send_sign_in_link(self, email: str, link: str,
                          on_failure: Callable[[], None] | None = None) -> str:
        """Queue the email; returns the ticket `status` answers for."""
        ticket = secrets.token_urlsafe(16)
        with self._lock:
            full = self._waiting >= MAX_WAITING
            if not full:
                self._waiting += 1
                self._idle.clear()
        if full:
            self.statuses.set(ticket, FAILED)
            self.app.logger.warning("Could not send the sign-in email to %s: %d emails are "
                                    "already waiting to be sent", email, MAX_WAITING)
            return ticket
        self.statuses.set(ticket, SENDING)
        self.pool.submit(self._send, ticket, email, link, on_failure)
        return ticket

    def run(self, job: Callable[[], None], what: str) -> None:
        """Run `job` on the pool with an app context (other mail than sign-in links); a failure
        is logged as one line naming `what`."""
        with self._lock:
            full = self._waiting >= MAX_WAITING
            if not full:
                self._waiting += 1
                self._idle.clear()
        if full:
            self.app.logger.warning("Could not send %s: %d emails are already waiting to be "
                                    "sent", what, MAX_WAITING)
            return
        self.pool.submit(self._run, job, what)

    def _run(self, job: Callable[[], None], what: str) -> None:
        try:
            with self.app.app_context():
                try:
                    job()
                except Exception as error:  # nobody else on this thread would report it
                    self.app.logger.warning("Could not send %s: %s", what,
                                            str(error) or type(error).__name__)
        finally:
            with self._lock:
                self._waiting -= 1
                if self._waiting == 0:
                    self._idle.set()

    def status(self, ticket: str) -> str | None:
        return self.statuses.get(ticket) if ticket and len(ticket) <= 64 else None

    def wait_idle(self, timeout: float = 15.0) -> bool:
        """Block until every queued email was sent or failed (tests, and shutdown)."""
        return self._idle.wait(timeout)

    def _run_failure_hook(self, on_failure: Callable[[], None]) -> None:
        try:
            on_failure()
        except Exception as error:  # the database is away too: the expired link is purged later
            self.app.logger.warning("Could not withdraw an unsent sign-in link: %s", error)

    def _send(self, ticket: str, email: str, link: str,
              on_failure: Callable[[], None] | None) -> None:
        try:
            with self.app.app_context():
                try:
                    send_sign_in_link(email, link)
                # MailNotSent, and smtplib's and ssl's errors (OSErrors), but also anything
                # else: on this thread nobody else would report it, and the user must be told.
                except Exception as error:
                    # One line with the reason; never the link, which would sign in whoever reads it.
                    self.app.logger.warning("Could not send the sign-in email to %s: %s",
                                            email, str(error) or type(error).__name__)
                    self.statuses.set(ticket, FAILED)
                    if on_failure:
                        self._run_failure_hook(on_failure)
                else:
                    self.statuses.set(ticket, SENT)
        finally:
            with self._lock:
                self._waiting -= 1
                if self._waiting == 0:
                    self._idle.set()


def outbox(app: Flask | None = None) -> MailOutbox:
    """This app's outbox, made on first use."""
    app = app or current_app._get_current_object()
    with _OUTBOX_LOCK:
        box = app.extensions.get("discux.mail")
        if box is None:
            box = app.extensions["discux.mail"] = MailOutbox(app)
    return box


_OUTBOX_LOCK = threading.Lock()
