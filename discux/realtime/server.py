"""simple-websocket's Server with what a broadcasting room needs, reached only through the
libraries' public doors (a subclass of simple-websocket's `Server` with its documented
`thread_class`/`event_class` options, wsproto's events, a subclass of flask-sock's `Sock`):

- every write to the TCP socket (our frames, pongs, pings and close replies) goes through one
  lock with `sendall`, so frames never interleave or go out half-sent; the rest of a frame a
  non-blocking write could only start goes out before anything else;
- simple-websocket's reader thread is never started: the connection's handler thread reads too
  (`read_input`, `ping`, see `hub.Connection.serve`), so a socket costs one thread, not two;
- a frame is encoded once per broadcast and the same bytes are written to every socket with the
  same negotiated parameters (server frames are unmasked, so they are identical). Browsers offer
  permessage-deflate; the handshake accepts it with `server_no_context_takeover`, so each
  message is compressed afresh and compresses to the same bytes for every such socket (with
  context takeover a shared frame would corrupt the socket's later messages);
- `abort()` shuts a stuck socket from another thread without waiting for its lock.

`sock.route` (a `RoomSock`) makes each socket route build a RoomSocketServer.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import ssl
import struct
import threading
import time
import zlib
from functools import wraps

import flask_sock
from flask import Response, current_app, request
from simple_websocket import ConnectionClosed, Server
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    Request,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError

SOCKET_KEYS = ("werkzeug.socket", "gunicorn.socket")
NO_WAIT = getattr(socket, "MSG_DONTWAIT", None)


class LockedSocket:
    """A TCP socket whose writes are serialized and complete (`sendall`) under one lock.

    A non-blocking write (`write_nowait`) may get only part of a frame into the kernel: the rest
    is kept here and goes out first on the next write, whoever makes it (the connection's writer,
    or the reader thread's pong, ping or close reply), so no bytes ever land inside a frame.
    """

    def __init__(self, raw: socket.socket):
        self._raw = raw
        self.lock = threading.RLock()
        self.unsent = b""

    def send(self, data) -> int:
        with self.lock:
            if self.unsent:
                pending, self.unsent = self.unsent, b""
                self._raw.sendall(pending)
            self._raw.sendall(data)
        return len(data)

    sendall = send

    def flush(self) -> None:
        """Write the rest of a frame `write_nowait` could only start."""
        self.send(b"")

    @property
    def writes_without_waiting(self) -> bool:
        # With a timeout set, CPython polls for room before a send (even with MSG_DONTWAIT), which
        # could block the caller; a TLS socket takes no flags.
        return (NO_WAIT is not None and self._raw.gettimeout() is None
                and not isinstance(self._raw, ssl.SSLSocket))

    def write_nowait(self, data: bytes) -> bool | None:
        """Write what the kernel takes right now (the caller holds `lock`, nothing is unsent):
        True if all of it, None if none (nothing changed), False if a part: the rest is kept
        in `unsent` and must be flushed before anything else is written."""
        try:
            sent = self._raw.send(data, NO_WAIT)
        except (BlockingIOError, InterruptedError):
            return None
        if sent == len(data):
            return True
        if sent == 0:
            return None
        self.unsent = data[sent:]
        return False

    def recv(self, size: int) -> bytes:
        return self._raw.recv(size)

    def abort(self) -> None:
        """Cut the connection now, even while another thread is blocked writing to it."""
        with contextlib.suppress(OSError):
            self._raw.shutdown(socket.SHUT_RDWR)

    def __getattr__(self, name):
        return getattr(self._raw, name)


class OutboundFrame:
    """One event's payload for one kind of listener, encoded at most once per kind of socket."""

    __slots__ = ("_encoded", "text")

    def __init__(self, text: str):
        self.text = text
        self._encoded: dict[tuple, bytes] = {}

    def encoded(self, group: tuple) -> bytes:
        """The wire frame for sockets of `group` (see `RoomSocketServer.frame_group`)."""
        frame = self._encoded.get(group)
        if frame is None:
            frame = self._encoded[group] = encode_text_frame(self.text, group)
        return frame

    def plain_bytes(self) -> bytes:
        return self.encoded(PLAIN)


PLAIN = ("plain",)
FIN_TEXT = 0x81  # FIN bit + text opcode; server frames are never masked
RSV1 = 0x40  # "this message is compressed" (permessage-deflate)


def encode_text_frame(text: str, group: tuple) -> bytes:
    """One unfragmented server text frame for sockets of `group`, byte for byte what wsproto's
    `FrameProtocol.send_data` writes (a test checks), without building a protocol object and a
    deflate extension per event: that machinery cost more than the compression on the way to
    the first listener. Deflated frames (RFC 7692) are compressed afresh each time
    (`server_no_context_takeover`) and lose the sync flush's trailing 00 00 ff ff."""
    payload = text.encode("utf-8")
    first = FIN_TEXT
    if group != PLAIN:
        compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -int(group[1]))
        payload = (compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
        first |= RSV1
    size = len(payload)
    if size <= 125:
        header = bytes((first, size))
    elif size <= 0xFFFF:
        header = struct.pack("!BBH", first, 126, size)
    else:
        header = struct.pack("!BBQ", first, 127, size)
    return header + payload


EXTENSIONS_HEADER = re.compile(rb"^sec-websocket-extensions:[ \t]*(.*?)[ \t]*$",
                               re.IGNORECASE | re.MULTILINE)
WINDOW_BITS = re.compile(r"server_max_window_bits=(\d+)")


def frame_group_of(handshake_answer: bytes) -> tuple | None:
    """Which sockets may share this one's frames, from the extensions our own handshake
    answer agreed to: PLAIN (none), ("deflate", window bits) without server context takeover,
    or None (encode for this socket alone)."""
    found = EXTENSIONS_HEADER.search(handshake_answer.split(b"\r\n\r\n", 1)[0])
    if found is None:
        return PLAIN
    agreed = found.group(1).decode("latin-1")
    params = [part.strip() for part in agreed.split(";")]
    if "," in agreed or params[0] != "permessage-deflate" or (
            "server_no_context_takeover" not in params):
        return None
    bits = WINDOW_BITS.search(agreed)
    return ("deflate", int(bits.group(1)) if bits else 15)


class RoomSocketServer(Server):
    """A server-side WebSocket with locked writes, a wake-up hook and shared frames."""

    def __init__(self, environ, *args, **kwargs):
        for key in SOCKET_KEYS:
            raw = environ.get(key)
            if raw is not None and not isinstance(raw, LockedSocket):
                environ[key] = LockedSocket(raw)
        # The connection's handler thread reads (hub.Connection.serve): no reader thread, no
        # per-socket Event or selector.
        kwargs["thread_class"] = _NoReaderThread
        kwargs["event_class"] = _NoEvent
        self.frame_group: tuple | None = None  # set by the handshake
        self._message_parts: list[str | bytes] = []
        self._message_size = 0
        super().__init__(environ, *args, **kwargs)

    # ---- writes: all under the socket's lock ----
    def send(self, data) -> None:
        with self.sock.lock:
            super().send(data)

    def close(self, reason=None, message=None) -> None:
        with self.sock.lock:
            super().close(reason, message)

    def handshake(self) -> None:
        """Accept the opening request; a permessage-deflate offer is answered without context
        takeover either way."""
        request_head = b"GET / HTTP/1.1\r\n"
        for key, value in self.environ.items():
            if key.startswith("HTTP_"):
                header = "-".join(part.capitalize() for part in key[5:].split("_"))
                request_head += f"{header}: {value}\r\n".encode()
        self.ws.receive_data(request_head + b"\r\n")
        answer = b""
        for event in self.ws.events():
            if isinstance(event, Request):
                self.subprotocol = self.choose_subprotocol(event)
                # client_no_context_takeover: the inflate state of a client's (rare, tiny)
                # frames is dropped after each one instead of living as long as the socket.
                answer += self.ws.send(AcceptConnection(
                    subprotocol=self.subprotocol,
                    extensions=[PerMessageDeflate(server_no_context_takeover=True,
                                                  client_no_context_takeover=True)],
                ))
        if answer:
            self.frame_group = frame_group_of(answer)
            self.sock.send(answer)
        self.connected = bool(answer)

    def send_frame(self, frame: OutboundFrame) -> None:
        """Send a broadcast frame, reusing its encoded bytes when this connection allows it."""
        with self.sock.lock:
            if not self.connected:
                raise ConnectionClosed(self.close_reason, self.close_message)
            group = self.frame_group
            if group is None:
                super().send(frame.text)
            else:
                self.sock.send(frame.encoded(group))

    def try_send_frame(self, frame: OutboundFrame) -> bool | None:
        """Write `frame` from the caller's thread if nobody else is writing and the kernel takes
        it without waiting. True: all of it went out; False: a part went out and the socket holds
        the rest (the connection's writer must `flush` it); None: nothing was written (the
        connection's writer must send the whole frame)."""
        group = self.frame_group
        sock = self.sock
        if group is None or not self.connected or not sock.lock.acquire(blocking=False):
            return None
        try:
            if not self.connected or sock.unsent or not sock.writes_without_waiting:
                return None
            try:
                return sock.write_nowait(frame.encoded(group))
            except OSError:
                return None  # the writer meets the same error and ends the connection
        finally:
            sock.lock.release()

    def flush(self) -> None:
        """Finish the frame `try_send_frame` could only start."""
        with self.sock.lock:
            if not self.connected:
                raise ConnectionClosed(self.close_reason, self.close_message)
            self.sock.flush()

    def abort(self) -> None:
        self.connected = False
        self.sock.abort()

    # ---- reading, from the connection's handler thread ----
    def read_input(self) -> bool:
        """Take in what the client sent (the socket is readable): complete messages land in
        `input_buffer`, pings are answered, a close is replied to. False once the socket ended."""
        try:
            data = self.sock.recv(self.receive_bytes)
            if not data:
                raise ConnectionResetError
            self.ws.receive_data(data)
            with self.sock.lock:  # a pong or close reply never lands inside a frame
                self.connected = self.take_events()
        except (OSError, LocalProtocolError):
            self.connected = False
        return self.connected

    def take_events(self) -> bool:
        """Act on wsproto's events for what arrived: whole messages go to `input_buffer`, pings
        are answered, a close is replied to. False once the connection is over."""
        answer = b""
        going = True
        for event in self.ws.events():
            if isinstance(event, CloseConnection):
                answer += self.ws.send(event.response())
                self.close_reason, self.close_message = event.code, event.reason
                going = False
                break
            if isinstance(event, Ping):
                answer += self.ws.send(event.response())
            elif isinstance(event, Pong):
                self.pong_received = True
            elif isinstance(event, TextMessage | BytesMessage) and not self._take_part(event):
                answer += self.ws.send(CloseConnection(CloseReason.MESSAGE_TOO_BIG,
                                                       "Message is too big"))
                going = False
                break
        if answer:
            self.sock.send(answer)
        return going

    def _take_part(self, event: TextMessage | BytesMessage) -> bool:
        """Add a piece of a client message; False when the message is over the size limit."""
        self._message_size += len(event.data)
        if self.max_message_size and self._message_size > self.max_message_size:
            return False
        self._message_parts.append(event.data)
        if event.message_finished:
            joiner = "" if isinstance(event, TextMessage) else b""
            self.input_buffer.append(joiner.join(self._message_parts))
            self._message_parts, self._message_size = [], 0
        return True

    def ping(self) -> bool:
        """Ping the client; close it (False) if it did not answer the previous ping."""
        if not self.pong_received:
            self.close(reason=CloseReason.POLICY_VIOLATION, message="Ping/Pong timeout")
            return False
        self.pong_received = False
        with self.sock.lock:
            self.sock.send(self.ws.send(Ping()))
        return True

    def end(self, linger: float = 1.0) -> None:
        """Close the TCP socket (simple-websocket's reader thread did this when it stopped).

        Our close frame is followed by a FIN, and what the client still sends (its close reply)
        is read for up to `linger` seconds first: closing a socket with unread input sends a
        reset, which can make the client lose the close frame and its code."""
        self.connected = False
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)
            poller = select.poll()
            poller.register(self.sock.fileno(), select.POLLIN)
            deadline = time.monotonic() + linger
            while (left := deadline - time.monotonic()) > 0 and poller.poll(left * 1000):
                if not self.sock.recv(4096):
                    break
        # Under the lock: a delivering thread never writes to a descriptor number that another
        # connection may already have been given.
        with self.sock.lock, contextlib.suppress(OSError):
            self.sock.close()


class _NoReaderThread:
    """What simple-websocket starts to read a socket: nothing (see `read_input`)."""

    name = "discux-socket"

    def __init__(self, target=None):
        pass

    def start(self) -> None:
        pass


class _NoEvent:
    """simple-websocket's `receive()` waits on an Event the reader thread sets; nobody calls
    `receive()` on a room socket, so a per-socket Event would be dead weight."""

    @staticmethod
    def set() -> None:
        pass


class SocketEnded(Response):
    """The WSGI answer once a socket has ended: under gunicorn nothing more may be written to
    the connection (StopIteration tells its worker so, as flask-sock does); Werkzeug writes an
    empty response to the closed socket, which goes nowhere."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode

    def __call__(self, environ, start_response):
        if self.mode == "gunicorn":
            raise StopIteration()
        if self.mode == "werkzeug":
            return super().__call__(environ, start_response)
        return []


class RoomSock(flask_sock.Sock):
    """flask-sock's extension, except that its routes get a RoomSocketServer: its `route` builds
    a plain simple-websocket Server and takes no class to build instead."""

    def route(self, path, bp=None, **kwargs):
        def decorator(view):
            @wraps(view)
            def socket_route(*args, **view_args):
                ws = RoomSocketServer(request.environ,
                                      **current_app.config.get("SOCK_SERVER_OPTIONS", {}))
                with contextlib.suppress(ConnectionClosed):
                    view(ws, *args, **view_args)
                with contextlib.suppress(ConnectionClosed, OSError):
                    ws.close()
                return SocketEnded(ws.mode)

            if bp is None:
                raise TypeError("RoomSock routes live on a blueprint: pass bp=")
            bp.route(path, websocket=True, **kwargs)(socket_route)
            return socket_route

        return decorator


# Routes go on blueprints, so no app needs binding (`init_app`).
sock = RoomSock()
