"""simple-websocket's Server with what a broadcasting room needs (NOTES.md, WebSockets):

- every write to the TCP socket (our frames, and the reader thread's pongs, pings and close
  replies) goes through one lock with `sendall`, so frames never interleave or go out half-sent;
- the reader thread wakes the connection's writer when a client frame arrives or the socket ends,
  so one thread per socket both writes and reads (no third thread);
- a frame is encoded once per broadcast and the same bytes are written to every socket that
  negotiated no extension (server frames are unmasked, so they are identical);
- `abort()` shuts a stuck socket from another thread without waiting for its lock.

flask-sock builds `flask_sock.Server`; `install()` points it at this class.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

import flask_sock
from simple_websocket import ConnectionClosed, Server
from wsproto.frame_protocol import FrameProtocol

SOCKET_KEYS = ("werkzeug.socket", "gunicorn.socket")


class LockedSocket:
    """A TCP socket whose writes are serialized and complete (`sendall`) under one lock."""

    def __init__(self, raw: socket.socket):
        self._raw = raw
        self.lock = threading.RLock()

    def send(self, data) -> int:
        with self.lock:
            self._raw.sendall(data)
        return len(data)

    sendall = send

    def recv(self, size: int) -> bytes:
        return self._raw.recv(size)

    def abort(self) -> None:
        """Cut the connection now, even while another thread is blocked writing to it."""
        with contextlib.suppress(OSError):
            self._raw.shutdown(socket.SHUT_RDWR)

    def __getattr__(self, name):
        return getattr(self._raw, name)


class OutboundFrame:
    """One event's payload for one kind of listener, with its wire bytes encoded at most once."""

    __slots__ = ("_plain", "text")

    def __init__(self, text: str):
        self.text = text
        self._plain: bytes | None = None

    def plain_bytes(self) -> bytes:
        """The frame for a connection without extensions (no compression)."""
        if self._plain is None:
            self._plain = bytes(FrameProtocol(client=False, extensions=[]).send_data(self.text))
        return self._plain


class RoomSocketServer(Server):
    """A server-side WebSocket with locked writes, a wake-up hook and shared frames."""

    def __init__(self, environ, *args, **kwargs):
        for key in SOCKET_KEYS:
            raw = environ.get(key)
            if raw is not None and not isinstance(raw, LockedSocket):
                environ[key] = LockedSocket(raw)
        # Called from the reader thread when a client frame arrives or the socket ends.
        self.on_input: Callable[[], None] | None = None
        super().__init__(environ, *args, **kwargs)

    # ---- writes: all under the socket's lock ----
    def send(self, data) -> None:
        with self.sock.lock:
            super().send(data)

    def close(self, reason=None, message=None) -> None:
        with self.sock.lock:
            super().close(reason, message)

    def send_frame(self, frame: OutboundFrame) -> None:
        """Send a broadcast frame, reusing its encoded bytes when this connection allows it."""
        with self.sock.lock:
            if not self.connected:
                raise ConnectionClosed(self.close_reason, self.close_message)
            if self._negotiated_extensions():
                # permessage-deflate keeps per-connection compressor state: encode here.
                super().send(frame.text)
            else:
                self.sock.send(frame.plain_bytes())

    def _negotiated_extensions(self) -> list:
        try:
            return self.ws.connection._proto.extensions
        except AttributeError:  # a wsproto without these internals: be safe, encode per socket
            return [None]

    def abort(self) -> None:
        self.connected = False
        self.sock.abort()

    # ---- the reader thread ----
    def _handle_events(self):
        with self.sock.lock:
            keep_going = super()._handle_events()
        if self.on_input is not None and (self.input_buffer or not keep_going):
            self.on_input()
        return keep_going

    def _thread(self):
        try:
            super()._thread()
        finally:
            if self.on_input is not None:
                self.on_input()


def install() -> None:
    """Make flask-sock build RoomSocketServer for every socket route."""
    flask_sock.Server = RoomSocketServer
