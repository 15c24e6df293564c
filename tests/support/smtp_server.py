"""A real SMTP server (aiosmtpd) of the test's own, on a free port, that records what crossed.

    with PrivateSMTP(tls="starttls", cert=cert) as server:
        ... DISCUX_SMTP_URL=server.url("smtp", "mailer", "s3cret") ...
        server.events  # [("EHLO", False), ("STARTTLS", ...), ("AUTH", True), ("DATA", True)]

`tls` is "starttls" (offers STARTTLS), "none" (does not), or "implicit" (smtps: TLS from the
first byte). AUTH is accepted even over a plain connection, as a careless server would, so a
client that sent its password in clear would be seen doing it (("AUTH", False)).
`self_signed_cert()` makes a certificate for localhost/127.0.0.1 with `cryptography`."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass
from email import message_from_bytes
from pathlib import Path
from typing import Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Cert:
    cert_file: Path
    key_file: Path


def self_signed_cert(directory: Path, name: str = "smtp") -> Cert:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / f"{name}-cert.pem", directory / f"{name}-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return Cert(cert_file, key_file)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _is_tls(server) -> bool:
    return server.transport is not None and server.transport.get_extra_info("sslcontext") is not None


class _Recorder:
    """aiosmtpd handler hooks: note each step and whether it ran over TLS."""

    def __init__(self, owner: PrivateSMTP) -> None:
        self.owner = owner

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.owner._note("EHLO", _is_tls(server))
        session.host_name = hostname
        return responses

    def handle_STARTTLS(self, server, session, envelope):  # aiosmtpd calls this one plainly
        self.owner._note("STARTTLS", True)
        return True

    async def handle_DATA(self, server, session, envelope):
        # A held server keeps every message waiting here: a mail server that has gone slow.
        await asyncio.get_running_loop().run_in_executor(None, self.owner.released.wait)
        self.owner._note("DATA", _is_tls(server))
        self.owner.messages.append(message_from_bytes(envelope.original_content))
        return "250 Message accepted"


class PrivateSMTP:
    def __init__(self, tls: str = "starttls", cert: Cert | None = None,
                 users: dict[str, str] | None = None) -> None:
        assert tls in {"starttls", "none", "implicit"}
        assert tls == "none" or cert is not None
        self.tls = tls
        self.users = users or {}
        self.port = _free_port()
        self.events: list[tuple[str, bool]] = []
        self.messages: list = []
        self.logins: list[str] = []
        self._lock = threading.Lock()
        self.running = False
        self.released = threading.Event()  # clear() it to hold messages, set() to let them go
        self.released.set()
        context = None
        if cert is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert.cert_file, cert.key_file)
        options = {"auth_require_tls": False, "authenticator": self._authenticate}
        if tls == "starttls":
            options["tls_context"] = context
        self._controller = Controller(
            _Recorder(self), hostname="127.0.0.1", port=self.port,
            ssl_context=context if tls == "implicit" else None,
            server_hostname="localhost", ready_timeout=10, **options,
        )

    def _note(self, step: str, over_tls: bool) -> None:
        with self._lock:
            self.events.append((step, over_tls))

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        self._note("AUTH", _is_tls(server))
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        ok = self.users.get(login) == password
        if ok:
            self.logins.append(login)
        return AuthResult(success=ok, handled=False)

    def url(self, scheme: str, user: str | None = None, password: str | None = None) -> str:
        credentials = f"{user}:{password}@" if user else ""
        return f"{scheme}://{credentials}localhost:{self.port}"

    def steps(self) -> list[str]:
        return [step for step, _ in self.events]

    def start(self) -> Self:
        self._controller.start()
        self.running = True
        return self

    def stop(self) -> None:
        """Stop listening (the port then refuses connections); stopping twice is harmless."""
        self.released.set()  # a held message must not keep the server's loop from closing
        if self.running:
            self._controller.stop()
            self.running = False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
