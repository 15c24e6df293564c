"""Real sockets and real HTTP against a live server, the way a browser would use them."""

from __future__ import annotations

import json
import re
import time
from urllib.parse import urlencode

import requests
import simple_websocket
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage

from discux.auth.sessions import COOKIE_NAME

CSRF_IN_PAGE = re.compile(r'"X-CSRFToken": "([^"]+)"')


def socket_url(base_url: str, room_id: str, **params) -> str:
    query = urlencode({key: value for key, value in params.items() if value is not None})
    return base_url.replace("http", "ws", 1) + f"/rooms/{room_id}/ws" + (f"?{query}" if query else "")


class Client(simple_websocket.Client):
    """simple-websocket's client, except that frames arriving in the same read as the handshake
    answer are not left waiting: its handshake takes only the first event from that read, so the
    rest (the server's presence snapshot, sent at once) sat in wsproto's buffer until the next
    bytes arrived, which in a quiet room is never."""

    def handshake(self):
        super().handshake()
        parts: list = []
        for event in self.ws.events():  # the rest of that read, before the reader thread starts
            if isinstance(event, TextMessage | BytesMessage):
                parts.append(event.data)
                if event.message_finished:
                    self.input_buffer.append(("" if isinstance(event, TextMessage) else b"")
                                             .join(parts))
                    parts = []
            elif isinstance(event, Ping):
                self.sock.send(self.ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                self.close_reason, self.close_message = event.code, event.reason
                self.connected = False


def connect(base_url: str, room_id: str, token: str | None, *, fmt: str | None = "json",
            after: str | None = None, origin: str | None = None,
            **params) -> simple_websocket.Client:
    """Open a room socket with the session cookie (raises ConnectionError(status) if refused)."""
    headers = {}
    if token:
        headers["Cookie"] = f"{COOKIE_NAME}={token}"
    if origin:
        headers["Origin"] = origin
    return Client.connect(
        socket_url(base_url, room_id, format=fmt, after=after, **params), headers=headers
    )


def refusal_status(base_url: str, room_id: str, token: str | None, **kwargs) -> int | None:
    """The HTTP status a refused handshake got, or None if the socket opened."""
    try:
        ws = connect(base_url, room_id, token, **kwargs)
    except simple_websocket.ConnectionError as error:
        return error.status_code
    ws.close()
    return None


def next_event(ws, timeout: float = 5.0) -> dict:
    """The next JSON event, or AssertionError after `timeout` seconds."""
    raw = ws.receive(timeout=timeout)
    assert raw is not None, f"no event within {timeout} s"
    return json.loads(raw)


def wait_for_event(ws, predicate, timeout: float = 5.0) -> dict:
    """Skip events until one matches `predicate` (bounded by `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no matching event within {timeout} s"
        raw = ws.receive(timeout=left)
        assert raw is not None, f"no matching event within {timeout} s"
        event = json.loads(raw) if raw.startswith("{") else raw
        if predicate(event):
            return event


def wait_for_text(ws, needle: str, timeout: float = 5.0) -> str:
    """Skip frames until an (HTML) frame containing `needle` arrives."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no frame with {needle!r} within {timeout} s"
        raw = ws.receive(timeout=left)
        assert raw is not None, f"no frame with {needle!r} within {timeout} s"
        if needle in raw:
            return raw


def close_code(ws, timeout: float = 5.0) -> int:
    """Read until the server closes the socket; its close code."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ws.receive(timeout=deadline - time.monotonic())
        except simple_websocket.ConnectionClosed as closed:
            return int(closed.reason)
    raise AssertionError(f"the socket was still open after {timeout} s")


class Member:
    """A signed-in person posting over HTTP with their cookie and CSRF token, like a browser."""

    def __init__(self, base_url: str, token: str):
        self.base_url = base_url
        self.http = requests.Session()
        self.http.cookies.set(COOKIE_NAME, token)
        page = self.http.get(base_url + "/", timeout=10)
        self.csrf = CSRF_IN_PAGE.search(page.text).group(1)

    def post(self, room_id: str, content: str, htmx: bool = True, fresh_connection=False,
             **form):
        headers = {"X-CSRFToken": self.csrf}
        if fresh_connection:
            headers["Connection"] = "close"  # the next request may land on another worker
        if htmx:
            headers["HX-Request"] = "true"
        return self.http.post(f"{self.base_url}/rooms/{room_id}/messages",
                              data={"content": content, **form}, headers=headers,
                              allow_redirects=False, timeout=30)

    def delete(self, room_id: str, message_id: str):
        return self.http.delete(f"{self.base_url}/rooms/{room_id}/messages/{message_id}",
                                headers={"X-CSRFToken": self.csrf, "HX-Request": "true"},
                                timeout=10)


class DeflateClient:
    """A socket client that offers permessage-deflate as browsers do (simple-websocket's client
    offers no extension), built on wsproto. `receive` has the same meaning as simple-websocket's."""

    def __init__(self, base_url: str, room_id: str, token: str, fmt: str = "json",
                 after: str | None = None, rcvbuf: int | None = None):
        import socket
        from urllib.parse import urlsplit

        from wsproto import ConnectionType, WSConnection
        from wsproto.events import AcceptConnection, Request
        from wsproto.extensions import PerMessageDeflate

        parts = urlsplit(base_url)
        self.sock = socket.socket()
        if rcvbuf:  # a small receive window: a client that stops reading stalls the server fast
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect((parts.hostname, parts.port))
        self.ws = WSConnection(ConnectionType.CLIENT)
        target = f"/rooms/{room_id}/ws?format={fmt}" + (f"&after={after}" if after else "")
        self.sock.sendall(self.ws.send(Request(
            host=f"{parts.hostname}:{parts.port}", target=target,
            extensions=[PerMessageDeflate()],
            extra_headers=[(b"Cookie", f"{COOKIE_NAME}={token}".encode())],
        )))
        self.pending: list[str] = []
        self.pongs: list[bytes] = []
        self._parts: list[str] = []
        accepted = None
        while accepted is None:
            self.ws.receive_data(self.sock.recv(65536))
            for event in self.ws.events():
                if isinstance(event, AcceptConnection):
                    accepted = event
                else:
                    self._handle(event)
        self.extensions = accepted.extensions

    def send(self, text: str) -> None:
        from wsproto.events import TextMessage

        self.sock.sendall(self.ws.send(TextMessage(data=text)))

    def ping(self, payload: bytes) -> None:
        from wsproto.events import Ping

        self.sock.sendall(self.ws.send(Ping(payload=payload)))

    def _handle(self, event) -> None:
        from wsproto.events import CloseConnection, Ping, Pong, TextMessage

        if isinstance(event, TextMessage):
            self._parts.append(event.data)
            if event.message_finished:
                self.pending.append("".join(self._parts))
                self._parts = []
        elif isinstance(event, Ping):
            self.sock.sendall(self.ws.send(event.response()))
        elif isinstance(event, Pong):
            self.pongs.append(bytes(event.payload))
        elif isinstance(event, CloseConnection):
            raise ConnectionError(f"closed {event.code}: {event.reason}")

    def receive(self, timeout: float = 5.0) -> str | None:

        deadline = time.monotonic() + timeout
        while not self.pending:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return None
            self.ws.receive_data(data or None)
            for event in self.ws.events():
                self._handle(event)
        return self.pending.pop(0)

    def close(self) -> None:
        from wsproto.events import CloseConnection

        try:
            self.sock.sendall(self.ws.send(CloseConnection(code=1000)))
        finally:
            self.sock.close()
