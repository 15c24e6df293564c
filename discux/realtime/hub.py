"""This process's open sockets, by room: fan-out, presence, closing on request.

Each socket is a `Connection` with a bounded outbound queue and one writer at a time. The
broker's `deliver` renders an event once per kind of listener and hands it to every socket of the
room under the room's lock, so every listener receives the room's events in the same order. For a
socket with nothing queued whose kernel buffer has room, the delivering thread writes the
(already encoded) frame itself without blocking; otherwise the frame is queued for the socket's
own handler thread, which also reads what the client sent (it sleeps in `poll` on the socket
and a wake-up descriptor). Waking a thousand threads per event would cost more than the writes. A socket whose queue is full (its
client stopped reading) is cut off instead of delaying anyone else.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Flask, current_app, has_app_context
from simple_websocket import ConnectionClosed

from discux.realtime import frames
from discux.realtime.broker import Broker, make_broker
from discux.realtime.server import OutboundFrame, RoomSocketServer

log = logging.getLogger("discux.realtime")

CLOSE_CONTROL = "control.close"
RIGHTS_CONTROL = "control.rights"
RIGHTS = ("may_delete_own", "may_delete_any")  # the Connection attributes a rights event sets
AWAY_AFTER = 60.0  # seconds without activity before "online" becomes "away" (SPEC §9)
SWEEP_EVERY = 5.0
HEARTBEAT_EVERY = 30.0
FLUSH = None  # a queue item: finish the frame a direct write could only start
TYPING_FRESH = 3.0  # seconds a typing event means "typing now" (clients repeat it every 2.5 s)
# A streaming reply whose events stopped coming (its worker died) is forgotten after this long.
STREAM_FORGET_AFTER = 600.0


class Connection:
    """One open socket of one member in one room.

    Its handler thread is both its reader and its writer of last resort: it sleeps in `poll` on
    the socket and on a wake-up descriptor, so a socket costs one thread, not two
    (simple-websocket's reader thread is never started, see `server.RoomSocketServer`)."""

    def __init__(self, ws: RoomSocketServer, *, room_id: str, user_id: str, user_name: str,
                 fmt: str, may_delete_own: bool, may_delete_any: bool, queue_limit: int):
        self.ws = ws
        self.room_id = room_id
        self.user_id = user_id
        self.user_name = user_name
        self.fmt = fmt
        self.may_delete_own = may_delete_own
        self.may_delete_any = may_delete_any
        self.queue_limit = queue_limit
        self.last_active = time.monotonic()
        self.opened_ms = time.time_ns() // 1_000_000
        self.last_typing = 0.0
        self.bad_frames = 0
        # ids already sent by the `?after=` replay: the live event for them is skipped
        self.replayed: set[str] = set()
        # streaming replies the replay sent in their final state: their live pieces are skipped
        self.settled: set[str] = set()
        # {reply id: text so far} of the room's streaming replies when the socket registered:
        # every later piece reaches the socket live (see Hub.register)
        self.streams_at_start: dict[str, str] = {}
        # {reply id: (offset, text from there)} of streaming replies this process first saw
        # mid-stream: the stored text supplies the beginning (see realtime.sockets.replay)
        self.stream_tails_at_start: dict[str, tuple[int, str]] = {}
        # {reply id: characters the replay sent}: live pieces are cut to what follows them
        self.stream_marks: dict[str, int] = {}
        # a list, not a deque: it is only appended to and taken whole (and a deque's first
        # block alone is 600 bytes, per socket)
        self._items: list[tuple[OutboundFrame | None, str | None, str | None]] = []
        self._lock = threading.Lock()
        self._wake_read, self._wake_write = wake_up_descriptors()
        # True while the handler thread writes (the replay, or a batch from the queue): frames
        # written from another thread meanwhile would overtake them.
        self._busy = True
        self._closing: tuple[int, str] | None = None
        self.aborted = False

    def offer(self, frame: OutboundFrame, message_id: str | None = None,
              piece_of: str | None = None) -> bool:
        """Send or queue a frame; False when the queue is full (the client is not keeping up).
        `message_id`: the message a created event is about; `piece_of`: the reply a streamed
        piece belongs to (both skipped when the replay already sent them).

        Written straight from the caller's thread only when nothing is queued and the handler
        thread is not writing, so a frame never overtakes an earlier one."""
        with self._lock:
            if self._closing or self.aborted:
                return True
            if not self._items and not self._busy:
                # The replay is over: a live copy of what it sent is dropped here.
                if self._sent_by_replay(message_id, piece_of):
                    return True
                written = self.ws.try_send_frame(frame)
                if written:
                    return True
                if written is False:
                    # The kernel took part of the frame; the socket keeps the rest, which the
                    # handler thread writes before anything queued after it.
                    self._items.append((FLUSH, None, None))
                    self._wake()
                    return True
            if len(self._items) >= self.queue_limit:
                return False
            self._items.append((frame, message_id, piece_of))
            self._wake()
        return True

    @property
    def writing_behind(self) -> bool:
        """Whether frames are waiting for this socket: its thread is writing or has a queue,
        or the kernel took only part of a frame."""
        with self._lock:
            return self._busy or bool(self._items) or bool(self.ws.sock.unsent)

    def _sent_by_replay(self, message_id: str | None, piece_of: str | None) -> bool:
        if message_id is not None and message_id in self.replayed:
            self.replayed.discard(message_id)
            return True
        return piece_of is not None and piece_of in self.settled

    def _wake(self) -> None:
        """Wake the handler thread (the caller holds `_lock`, so the descriptor is still open)."""
        if self._wake_write >= 0:
            with contextlib.suppress(OSError):  # already signalled and not yet read: fine
                os.write(self._wake_write, WAKE)

    def request_close(self, code: int, reason: str) -> None:
        """Ask the writer to close politely after what is already queued."""
        with self._lock:
            if self._closing is None:
                self._closing = (code, reason)
            self._wake()

    def abort(self) -> None:
        """Cut a client that stopped reading; it reconnects and replays what it missed."""
        self.aborted = True
        self.ws.abort()
        with self._lock:
            self._wake()

    def _take(self):
        with self._lock:
            items, self._items = self._items, []
            self._busy = bool(items)
            return items, self._closing

    def _done_writing(self) -> None:
        with self._lock:
            self._busy = bool(self._items)

    def serve(self, on_client_frame) -> None:
        """Write queued frames and read client frames until the socket ends."""
        ws = self.ws
        poller = select.poll()
        poller.register(ws.sock.fileno(), select.POLLIN)
        poller.register(self._wake_read, select.POLLIN)
        ping_every = ws.ping_interval
        next_ping = time.monotonic() + ping_every if ping_every else None
        try:
            self._done_writing()  # the replay is out: other threads may write directly now
            while not self.aborted:
                wait = None if next_ping is None else max(0.0, next_ping - time.monotonic())
                for fd, _ in poller.poll(None if wait is None else wait * 1000):
                    if fd == self._wake_read:
                        with contextlib.suppress(OSError):
                            os.read(self._wake_read, 64)
                    elif not ws.read_input():
                        return
                items, closing = self._take()
                for frame, message_id, piece_of in items:
                    if self._sent_by_replay(message_id, piece_of):
                        continue
                    if frame is FLUSH:
                        ws.flush()
                    else:
                        ws.send_frame(frame)
                self._done_writing()
                while closing is None and ws.input_buffer:
                    on_client_frame(self, ws.input_buffer.pop(0))
                    closing = self._closing
                if closing is not None:
                    ws.close(reason=closing[0], message=closing[1])
                    return
                if not ws.connected:
                    return
                if next_ping is not None and time.monotonic() >= next_ping:
                    if not ws.ping():
                        return
                    next_ping = time.monotonic() + ping_every
        except (ConnectionClosed, OSError):
            return

    def release(self) -> None:
        """Close the wake-up descriptors and the TCP socket (the handler is done with them)."""
        with self._lock:
            for fd in {self._wake_read, self._wake_write}:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._wake_read = self._wake_write = -1
        self.ws.end()

    def send_now(self, text: str) -> None:
        """Write directly; only the connection's own thread calls this (the replay)."""
        self.ws.send_frame(OutboundFrame(text))


WAKE = (1).to_bytes(8, "little")  # what an eventfd takes (a pipe takes anything)


def wake_up_descriptors() -> tuple[int, int]:
    """(read end, write end): one eventfd on Linux, else a pipe; both non-blocking."""
    if hasattr(os, "eventfd"):
        fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        return fd, fd
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    os.set_blocking(write_end, False)
    return read_end, write_end


@dataclass
class StreamText:
    """A streaming reply's text so far, as its events passed through this process."""

    parts: list[str]
    touched: float
    # Where the parts begin in the reply's text: 0 when this process saw the reply created;
    # later when it first saw the reply mid-stream (it started, or its broker reconnected).
    start: int = 0


@dataclass
class RoomChannel:
    """A room's sockets in this process and the text of its streaming replies; the lock orders
    its events for all of them. Sockets are added and removed holding the lock and the hub's."""

    conns: set[Connection] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    streams: dict[str, StreamText] = field(default_factory=dict)
    closed: bool = False  # dropped from the hub: a new channel takes its place

    def follow(self, event: dict) -> None:
        """Keep the text of the room's streaming replies up to date with this event."""
        kind = event["type"]
        data = event.get("data") or {}
        now = time.monotonic()
        if kind == "message.created" and data.get("status") == "streaming":
            for message_id in [m for m, t in self.streams.items()
                               if now - t.touched > STREAM_FORGET_AFTER]:
                del self.streams[message_id]
            self.streams[data.get("id", "")] = StreamText([data.get("content") or ""], now)
        elif kind == "message.delta":
            stream = self.streams.get(data.get("id", ""))
            if stream is not None:
                stream.parts.append(data.get("delta") or "")
                stream.touched = now
            elif isinstance(data.get("offset"), int):  # streaming since before we listened
                self.streams[data.get("id", "")] = StreamText(
                    [data.get("delta") or ""], now, start=data["offset"])
        elif kind in ("message.completed", "message.deleted"):
            self.streams.pop(data.get("id", ""), None)


class Hub:
    """The per-process registry of sockets, bound to one app and one broker."""

    def __init__(self, app: Flask):
        self.app = app
        self.max_sockets = int(app.config.get("DISCUX_MAX_SOCKETS", 1000))
        self.queue_limit = int(app.config.get("DISCUX_SOCKET_QUEUE", 512))
        self._rooms: dict[str, RoomChannel] = {}
        self._lock = threading.Lock()
        self._count = 0
        self._local_states: dict[tuple[str, str], str] = {}
        self._published: dict[tuple[str, str], str] = {}
        self._presence_lock = threading.Lock()
        # {room_id: {user_id: (name, when)}}: who typed lately, from every worker's sockets
        self._typing: dict[str, dict[str, tuple[str, float]]] = {}
        self._sweeper: threading.Thread | None = None
        # Events for this process's own machinery rather than its sockets (e.g. the discussion
        # engine's "stop this room"), keyed by type; they reach every worker like any event.
        self.control_handlers: dict[str, Callable[[dict], None]] = {}
        self.broker: Broker = make_broker(app.config, self.deliver, self._after_broker_outage)

    # ---- registry ----
    @property
    def socket_count(self) -> int:
        return self._count

    def register(self, conn: Connection) -> bool:
        """Add a socket, or refuse it (False) when this process is at its socket cap.

        The socket is added under its room's lock, with the text its streaming replies have
        so far (`conn.streams_at_start`): every event after that reaches it, none before."""
        with self._lock:
            if self._count >= self.max_sockets:
                return False
            self._count += 1
            if self._sweeper is None or not self._sweeper.is_alive():
                self._sweeper = threading.Thread(target=self._sweep, name="discux-presence",
                                                 daemon=True)
                self._sweeper.start()
        channel = self._locked_channel(conn.room_id, create=True)
        try:
            with self._lock:
                channel.conns.add(conn)
            conn.streams_at_start = {message_id: "".join(stream.parts)
                                     for message_id, stream in channel.streams.items()
                                     if stream.start == 0}
            conn.stream_tails_at_start = {message_id: (stream.start, "".join(stream.parts))
                                          for message_id, stream in channel.streams.items()
                                          if stream.start > 0}
        finally:
            channel.lock.release()
        self._presence_changed(conn.room_id, conn.user_id, conn.user_name)
        return True

    def unregister(self, conn: Connection) -> None:
        channel = self._locked_channel(conn.room_id, create=False)
        if channel is None:
            return
        try:
            if conn not in channel.conns:
                return
            with self._lock:
                channel.conns.discard(conn)
                self._count -= 1
            self._drop_if_unused(conn.room_id, channel)
        finally:
            channel.lock.release()
        self._presence_changed(conn.room_id, conn.user_id, conn.user_name)

    def _locked_channel(self, room_id: str, create: bool) -> RoomChannel | None:
        """The room's channel with its lock held (the caller releases it); None when there is
        none and `create` is False."""
        while True:
            with self._lock:
                channel = self._rooms.get(room_id)
                if channel is None:
                    if not create:
                        return None
                    channel = self._rooms[room_id] = RoomChannel()
            channel.lock.acquire()
            if not channel.closed:
                return channel
            channel.lock.release()  # dropped meanwhile: take the room's new one

    def _drop_if_unused(self, room_id: str, channel: RoomChannel) -> None:
        """Forget a channel with no socket and no streaming reply (its lock is held)."""
        if channel.conns or channel.streams:
            return
        with self._lock:
            if self._rooms.get(room_id) is channel:
                del self._rooms[room_id]
            channel.closed = True

    def typing(self, room_id: str) -> dict[str, str]:
        """{user_id: name} of the people typing in the room now, on any worker."""
        cutoff = time.monotonic() - TYPING_FRESH
        with self._lock:
            room = self._typing.get(room_id)
            if not room:
                return {}
            for user_id in [u for u, (_, when) in room.items() if when < cutoff]:
                del room[user_id]
            if not room:
                del self._typing[room_id]
            return {user_id: name for user_id, (name, _) in room.items()}

    def _follow_typing(self, event: dict) -> None:
        data = event.get("data") or {}
        room_id, user_id = event.get("room_id", ""), data.get("user_id") or data.get("sender_id")
        with self._lock:
            if event["type"] == "typing":
                self._typing.setdefault(room_id, {})[user_id] = (
                    data.get("name") or "Someone", time.monotonic())
            elif room_id in self._typing:  # their message is sent: they stopped typing
                self._typing[room_id].pop(user_id, None)

    def connections(self, room_id: str, user_id: str | None = None) -> list[Connection]:
        with self._lock:
            channel = self._rooms.get(room_id)
            conns = list(channel.conns) if channel else []
        return [c for c in conns if user_id is None or c.user_id == user_id]

    # ---- events ----
    def publish(self, event: dict) -> None:
        self.broker.publish(event)

    def deliver(self, event: dict) -> None:
        """Hand one event to this process's sockets of its room (called by the broker)."""
        handler = self.control_handlers.get(event.get("type", ""))
        if handler is not None:
            handler(event)
            return
        if event.get("type") == CLOSE_CONTROL:
            data = event.get("data") or {}
            for conn in self.connections(event.get("room_id", ""), data.get("user_id")):
                conn.request_close(int(data.get("code") or 1008), data.get("reason") or "")
            return
        if event.get("type") == RIGHTS_CONTROL:
            self._apply_rights(event.get("room_id", ""), event.get("data") or {})
            return
        kind = event.get("type", "")
        data = event.get("data") or {}
        if kind == "typing" or (kind == "message.created" and data.get("type") == "user"):
            self._follow_typing(event)
        room_id = event.get("room_id", "")
        # A streaming reply is followed even in a room with no socket here: one may reconnect.
        channel = self._locked_channel(
            room_id, create=(kind == "message.created" and data.get("status") == "streaming")
            or kind == "message.delta")
        if channel is None:
            return
        dedupe_id = data.get("id") if kind == "message.created" else None
        piece_of = data.get("id") if kind == "message.delta" else None
        slow = []
        try:
            channel.follow(event)
            with self._lock:
                conns = list(channel.conns)
            rendered: dict[tuple, OutboundFrame] = {}
            for conn in conns:
                key = frames.variant(event, conn)
                if key is None:
                    continue
                if piece_of is not None and piece_of in conn.stream_marks:
                    if not self._offer_cut(conn, event, key):
                        slow.append(conn)
                    continue
                frame = rendered.get(key)
                if frame is None:
                    frame = rendered[key] = OutboundFrame(
                        frames.render(event, key, self.app.jinja_env))
                if not conn.offer(frame, dedupe_id, piece_of):
                    slow.append(conn)
            self._drop_if_unused(room_id, channel)
        finally:
            channel.lock.release()
        for conn in slow:
            log.info("closing a socket of user %s in room %s: %d frames behind",
                     conn.user_id, conn.room_id, conn.queue_limit)
            conn.abort()

    def _offer_cut(self, conn: Connection, event: dict, key) -> bool:
        """Offer a piece of a reply whose text the replay sent from the stored row: only what
        follows that text (the row may be newer than the first live pieces)."""
        data = event["data"]
        reply_id, piece, offset = data["id"], data.get("delta") or "", data.get("offset")
        mark = conn.stream_marks[reply_id]
        if isinstance(offset, int):
            conn.stream_marks[reply_id] = max(mark, offset + len(piece))
            if offset < mark:
                piece = piece[mark - offset:]
                if not piece:
                    return True
                event = {**event, "data": {**data, "delta": piece, "offset": mark}}
        return conn.offer(OutboundFrame(frames.render(event, key, self.app.jinja_env)), None,
                          reply_id)

    def stream_start(self, room_id: str, reply_id: str, wait: float) -> int | None:
        """Where this process's copy of a streaming reply's text begins, waiting up to `wait`
        seconds for a first piece of it; None if none came."""
        deadline = time.monotonic() + wait
        while True:
            with self._lock:
                channel = self._rooms.get(room_id)
                stream = channel.streams.get(reply_id) if channel else None
                if stream is not None:
                    return stream.start
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def replay_text(self, conn: Connection, reply_id: str, stored: str) -> str | None:
        """What the replay sends of a streaming reply that this process had not seen when
        `conn` registered, given the text its row holds: None when its live events bring all
        of it (it began streaming since)."""
        channel = self._locked_channel(conn.room_id, create=False)
        if channel is None:
            conn.stream_marks[reply_id] = len(stored)
            return stored
        try:  # under the room's lock: no piece is offered between the look and the mark
            stream = channel.streams.get(reply_id)
            if stream is None:  # no piece seen yet: later ones are cut to follow the row's
                conn.stream_marks[reply_id] = len(stored)
                return stored
            if stream.start == 0:
                return None
            # First seen mid-stream since the socket registered: its pieces from stream.start
            # are queued for it, the row holds the text before (when it was stored since).
            return stored[:stream.start] if len(stored) >= stream.start else stored
        finally:
            channel.lock.release()

    def close_sockets(self, room_id: str, user_id: str | None, code: int, reason: str) -> None:
        self.publish({"type": CLOSE_CONTROL, "room_id": room_id, "html": None,
                      "data": {"user_id": user_id, "code": code, "reason": reason}})

    def set_rights(self, room_id: str, user_id: str, **rights: bool) -> None:
        """Give `user_id`'s open sockets in the room new `RIGHTS`, in every process; events
        published after this are rendered with them."""
        self.publish({"type": RIGHTS_CONTROL, "room_id": room_id, "html": None,
                      "data": {"user_id": user_id,
                               **{name: bool(rights.get(name)) for name in RIGHTS}}})

    def _apply_rights(self, room_id: str, data: dict) -> None:
        with self._lock:
            channel = self._rooms.get(room_id)
        if channel is None:
            return
        rights = {name: bool(data.get(name)) for name in RIGHTS}
        notices = {"json": OutboundFrame(frames.json_event("rights.changed", room_id, rights))}
        html = frames.rights_html(**rights)
        if html is not None:
            notices["html"] = OutboundFrame(html)
        with channel.lock:  # between two deliveries: an event is rendered with old or new rights
            for conn in self.connections(room_id, data.get("user_id")):
                for name, value in rights.items():
                    setattr(conn, name, value)
                if conn.fmt in notices:
                    conn.offer(notices[conn.fmt])

    def close_all(self, code: int = 1012, reason: str = "The server is restarting.") -> None:
        """Close every socket of this process politely; 1012 makes clients reconnect and replay."""
        with self._lock:
            conns = [conn for channel in self._rooms.values() for conn in channel.conns]
        for conn in conns:
            conn.request_close(code, reason)

    def _after_broker_outage(self) -> None:
        # Events published while Redis was away never reached this process: make every client
        # reconnect (1012 = service restart, the htmx extension retries) and replay the gap.
        self.close_all(1012, "Reconnecting to catch up.")

    # ---- presence ----
    def touch(self, conn: Connection) -> None:
        """The person behind `conn` did something: they are online."""
        conn.last_active = time.monotonic()
        if self._local_states.get((conn.room_id, conn.user_id)) != "online":
            self._presence_changed(conn.room_id, conn.user_id, conn.user_name)

    def _local_state(self, room_id: str, user_id: str) -> str:
        conns = self.connections(room_id, user_id)
        if not conns:
            return "offline"
        newest = max(conn.last_active for conn in conns)
        return "online" if time.monotonic() - newest < AWAY_AFTER else "away"

    def _presence_changed(self, room_id: str, user_id: str, name: str) -> None:
        with self._presence_lock:
            key = (room_id, user_id)
            local = self._local_state(room_id, user_id)
            if local != self._local_states.get(key, "offline"):
                if local == "offline":
                    self._local_states.pop(key, None)
                else:
                    self._local_states[key] = local
                self.broker.set_presence(room_id, user_id, local)
            state = self.broker.presence(room_id).get(user_id, "offline")
            if state == self._published.get(key, "offline"):
                return
            if state == "offline":
                self._published.pop(key, None)
            else:
                self._published[key] = state
            # Published under the lock so two changes of one person go out in order.
            self.publish({"type": "presence", "room_id": room_id, "html": None,
                          "data": {"user_id": user_id, "name": name, "state": state}})

    def presence(self, room_id: str) -> dict[str, str]:
        return self.broker.presence(room_id)

    def _sweep(self) -> None:
        """Turn idle sockets' people "away" and keep this process's presence fresh in Redis."""
        last_heartbeat = time.monotonic()
        while True:
            time.sleep(SWEEP_EVERY)
            with self._lock:
                if self._count == 0:
                    self._sweeper = None
                    return
                people = {(conn.room_id, conn.user_id): conn.user_name
                          for channel in self._rooms.values() for conn in channel.conns}
            for (room_id, user_id), name in people.items():
                if self._local_states.get((room_id, user_id)) == "online":
                    with contextlib.suppress(Exception):
                        self._presence_changed(room_id, user_id, name)
            if time.monotonic() - last_heartbeat >= HEARTBEAT_EVERY:
                last_heartbeat = time.monotonic()
                self.broker.refresh_presence(dict(self._local_states))

    def close(self) -> None:
        self.broker.close()


_create_lock = threading.Lock()
EXTENSION_KEY = "discux.realtime"


def hub_for(app: Flask | None = None) -> Hub:
    """The hub of `app` (default: the current app), created on first use."""
    if app is None:
        if not has_app_context():
            raise RuntimeError("publishing needs an app context (or pass the app)")
        app = current_app._get_current_object()
    hub = app.extensions.get(EXTENSION_KEY)
    if hub is None:
        with _create_lock:
            hub = app.extensions.get(EXTENSION_KEY)
            if hub is None:
                hub = app.extensions[EXTENSION_KEY] = Hub(app)
    return hub
