"""`/rooms/<room_id>/ws`: a member's live view of a room.

Who may connect is decided before the WebSocket handshake (flask-sock completes it before the
route body runs): signed out or a foreign Origin → 403, not a member → 404, a malformed query →
400, all as plain HTTP answers with no socket opened. Past the handshake, a process at its
socket cap closes the new socket at once with 1013 (try again later) rather than letting it hang.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, g, request
from flask_login import current_user

from discux.extensions import db
from discux.external import site_origin
from discux.messages.history import ID_PATTERN, id_epoch_ms
from discux.messages.rendering import MessageView
from discux.models import Message, MessageDeletion, Room, User
from discux.realtime import frames
from discux.realtime.hub import Connection, hub_for
from discux.realtime.server import sock
from discux.rooms.permissions import can, membership
from discux.rooms.signals import role_changed

bp = Blueprint("realtime", __name__)

REPLAY_CHUNK = 100
REPLAY_LIMIT = 1000
# Changes are replayed from a little before the `after` message was written: a message whose
# id was taken before it but committed after it still reaches the client.
CHANGES_MARGIN = timedelta(seconds=5)
# How long a reconnect waits for a streaming reply's row to hold the text that this process
# missed (it started mid-reply); discux/discussion/engine.py stores the text every second.
STORED_TEXT_WAIT = 2.5
FIRST_PIECE_WAIT = 1.0
# A reply created this long before the socket opened may have sent pieces since it registered.
OPENING_MARGIN_MS = 5000
CLIENT_FRAME_TYPES = ("typing", "active")
TYPING_EVERY = 2.0  # seconds between two typing events of one socket
FRAME_BUDGET = 20  # client frames in a burst; refilled at FRAME_REFILL per second
FRAME_REFILL = 5.0
MAX_BAD_FRAMES = 10
CLOSE_POLICY = 1008
CLOSE_UNSUPPORTED = 1003
CLOSE_TRY_AGAIN = 1013


@dataclass(frozen=True)
class SocketRequest:
    room_id: str
    user_id: str
    user_name: str
    fmt: str
    after: str | None
    may_delete_own: bool
    may_delete_any: bool


def origin_allowed(origin: str | None) -> bool:
    """Only pages of this site: the host the request was made to (TRUSTED_HOSTS keeps that to
    DISCUX_BASE_URL's host, or localhost in demo mode) or DISCUX_BASE_URL's origin. No Origin
    means no browser, hence no cross-site page riding on the visitor's cookie."""
    if origin is None:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        return False
    return (parts.netloc.lower() == request.host.lower()
            or f"{parts.scheme}://{parts.netloc}".lower() == site_origin())


@bp.before_request
def check_before_handshake():
    if request.endpoint != "realtime.room_socket":
        return None
    if not current_user.is_authenticated:
        abort(403, "Sign in to follow this room live.")
    if not origin_allowed(request.headers.get("Origin")):
        abort(403, "This page may not open a live connection to the room.")
    room_id = request.view_args["room_id"]
    participant = membership(current_user, room_id)
    room = db.session.get(Room, room_id) if participant else None
    if room is None or not can(participant, "view", room):
        abort(404)
    fmt = request.args.get("format", "html")
    after = (request.args.get("after") or "").lower() or None
    if fmt not in {"html", "json"}:
        abort(400, "format must be html or json.")
    if after is not None and not ID_PATTERN.match(after):
        abort(400, "after must be a message id.")
    g.room_socket = SocketRequest(
        room_id=room.id,
        user_id=current_user.id,
        user_name=current_user.display_name,
        fmt=fmt,
        after=after,
        **delete_rights(participant, room),
    )
    return None


def delete_rights(participant, room: Room) -> dict[str, bool]:
    """What a socket's frames offer to delete: the member's own messages, anyone's."""
    return {"may_delete_own": can(participant, "delete_own_message", room),
            "may_delete_any": can(participant, "delete_any_message", room)}


@role_changed.connect
def push_new_rights(room_id: str, user_id: str, **_) -> None:
    """A member's role changed: their open sockets, on every worker, take the new role's rights
    at once (a socket's rights are otherwise fixed when it connects)."""
    user = db.session.get(User, user_id)
    participant = membership(user, room_id) if user is not None else None
    room = db.session.get(Room, room_id) if participant is not None else None
    if room is None:
        return  # no longer a member: removal closes the sockets itself
    hub_for().set_rights(room_id, user_id, **delete_rights(participant, room))


@sock.route("/rooms/<room_id>/ws", bp=bp)
def room_socket(ws, room_id: str):
    info: SocketRequest = g.room_socket
    hub = hub_for()
    conn = Connection(
        ws, room_id=info.room_id, user_id=info.user_id, user_name=info.user_name, fmt=info.fmt,
        may_delete_own=info.may_delete_own, may_delete_any=info.may_delete_any,
        queue_limit=hub.queue_limit,
    )
    try:
        if not hub.register(conn):
            ws.close(reason=CLOSE_TRY_AGAIN, message="This server has too many open connections; "
                                                     "try again shortly.")
            return
        try:
            if info.after:
                replay(conn, info.after)
            send_presence(conn, hub)
            # A socket lives for hours: give its database connection back to the pool now.
            db.session.remove()
            budget = FrameBudget()
            conn.serve(lambda c, data: on_client_frame(hub, c, data, budget))
        finally:
            hub.unregister(conn)
    finally:
        conn.release()


def replay(conn: Connection, after: str) -> None:
    """Bring the socket up to date from `after` (the newest message id its client has), before
    any live event: first what changed since a little before that message was written
    (`message.deleted`, then `message.updated` for messages at or before `after` that were
    completed, stopped, failed or streamed further), then the messages newer than `after`
    (`message.created`), oldest first. A streaming reply carries its text so far, and its
    later pieces come live, each once."""
    hub = hub_for(current_app._get_current_object())
    # From the message's own write time: a process that made ids faster than one a millisecond
    # has ids ahead of the clock (uuid6 moves the time on for each), so the id's time can be
    # later than the changes it must cover.
    written = db.session.scalar(sa.select(Message.timestamp).where(
        Message.id == after, Message.room_id == conn.room_id))
    since = min(written or time_of_id(after), time_of_id(after)) - CHANGES_MARGIN
    deleted = list(db.session.scalars(
        sa.select(MessageDeletion.message_id)
        .where(MessageDeletion.room_id == conn.room_id, MessageDeletion.deleted_at >= since,
               MessageDeletion.message_id <= after)
        .order_by(MessageDeletion.message_id).limit(REPLAY_LIMIT)))
    for message_id in deleted:
        send_event(conn, "message.deleted", {"id": message_id},
                   frames.deleted_html(message_id))
    changed = list(db.session.scalars(
        sa.select(Message)
        .where(Message.room_id == conn.room_id, Message.changed_at >= since,
               Message.id <= after)
        .order_by(Message.id).limit(REPLAY_LIMIT)))
    seen = {row.id for row in changed}
    # Replies that streamed on without their row being written yet (it is, about once a second).
    streaming = [message_id for message_id in conn.streams_at_start
                 if message_id <= after and message_id not in seen]
    if streaming:
        changed += db.session.scalars(sa.select(Message).where(
            Message.room_id == conn.room_id, Message.id.in_(streaming)))
        changed.sort(key=lambda row: row.id)
    send_messages(conn, hub, changed, "message.updated")
    cursor, sent = after, 0
    while sent < REPLAY_LIMIT:
        rows = list(db.session.scalars(
            sa.select(Message)
            .where(Message.room_id == conn.room_id, Message.id > cursor)
            .order_by(Message.id)
            .limit(REPLAY_CHUNK)
        ))
        if not rows:
            return
        send_messages(conn, hub, rows, "message.created")
        cursor, sent = rows[-1].id, sent + len(rows)


def time_of_id(message_id: str) -> datetime:
    """When a message with this (UUIDv7) id was created, as naive UTC like the columns."""
    return datetime.fromtimestamp(id_epoch_ms(message_id) / 1000, UTC).replace(tzinfo=None)


def as_replayed(conn: Connection, hub, row: Message) -> MessageView | None:
    """The message as the replay sends it; None when its events reach the socket live (a reply
    that began streaming after the socket registered)."""
    view = MessageView.from_message(row)
    if row.status != "streaming":
        if row.type == "agent" and (row.id in conn.streams_at_start
                                    or id_epoch_ms(row.id) >= conn.opened_ms - OPENING_MARGIN_MS):
            # Pieces of it may still be queued for the socket (it streamed while the socket
            # registered): the final text has them all.
            conn.settled.add(row.id)
        return view
    if row.id in conn.streams_at_start:
        view.content, view.content_html = conn.streams_at_start[row.id], ""
        return view
    stored = row.content or ""
    tail = conn.stream_tails_at_start.get(row.id)
    if tail is not None:  # seen from `start` on (this process started mid-reply): the row
        start, text = tail  # supplies the beginning, once it has been stored that far
        stored = stored_text_reaching(row.id, start, stored)
        if len(stored) >= start:
            view.content, view.content_html = stored[:start] + text, ""
            return view
    # Not seen here yet (this process has just started): its next piece says where the live
    # pieces begin, and the row is read again until it holds the text before them.
    start = hub.stream_start(conn.room_id, row.id, wait=FIRST_PIECE_WAIT)
    if start is not None:
        stored = stored_text_reaching(row.id, start, stored)
    text = hub.replay_text(conn, row.id, stored)
    if text is None:
        return None
    view.content, view.content_html = text, ""
    return view


def stored_text_reaching(reply_id: str, length: int, stored: str) -> str:
    """The reply's stored text once it holds at least `length` characters (it is written
    about once a second while it streams), waiting STORED_TEXT_WAIT seconds at most."""
    deadline = time.monotonic() + STORED_TEXT_WAIT
    while len(stored) < length and time.monotonic() < deadline:
        time.sleep(0.1)
        with db.engine.connect() as connection:  # a fresh read, leaving the replay's rows be
            row = connection.execute(sa.select(Message.content, Message.status).where(
                Message.id == reply_id)).first()
        if row is None or row.status != "streaming":
            break
        stored = row.content or ""
    return stored


def send_messages(conn: Connection, hub, rows: list[Message], kind: str) -> None:
    """Send `rows` as `kind` events (HTML sockets: one frame appending them); their live
    `message.created` events are skipped."""
    views = [view for view in (as_replayed(conn, hub, row) for row in rows) if view is not None]
    if not views:
        return
    conn.replayed.update(view.id for view in views)
    if conn.fmt == "json":
        for view in views:
            conn.send_now(frames.json_event(kind, conn.room_id, view.to_payload()))
        return
    env = current_app.jinja_env
    parts = []
    for view in views:
        own = view.type == "user" and view.sender_id == conn.user_id
        may_delete = (own and conn.may_delete_own) or conn.may_delete_any
        parts.append(frames.message_html(env, view, own, may_delete))
    # An updated message is appended too: the page keeps the newest copy of each id, in order.
    conn.send_now(frames.append_messages(parts))


def send_event(conn: Connection, kind: str, data: dict, html: str) -> None:
    conn.send_now(frames.json_event(kind, conn.room_id, data) if conn.fmt == "json" else html)


def send_presence(conn: Connection, hub) -> None:
    """Who is online or away right now: the page may have been rendered a while ago (or the
    socket is reconnecting), and presence events only report changes."""
    states = hub.presence(conn.room_id)
    if not states:
        return
    if conn.fmt == "json":
        names = {user.id: user.display_name
                 for user in db.session.scalars(sa.select(User).where(User.id.in_(states)))}
        for user_id, state in states.items():
            conn.send_now(frames.json_event("presence", conn.room_id, {
                "user_id": user_id, "name": names.get(user_id, "Someone"), "state": state}))
        return
    template = current_app.jinja_env.get_template("messages/_presence.html")
    conn.send_now("".join(template.render(user_id=user_id, state=state, oob=True)
                          for user_id, state in states.items()))


class FrameBudget:
    """A token bucket for client frames (Flask-Limiter never sees socket frames)."""

    def __init__(self):
        self.tokens = float(FRAME_BUDGET)
        self.stamp = time.monotonic()
        self.dropped = 0

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(FRAME_BUDGET, self.tokens + (now - self.stamp) * FRAME_REFILL)
        self.stamp = now
        if self.tokens < 1:
            self.dropped += 1
            return False
        self.tokens -= 1
        return True


def on_client_frame(hub, conn: Connection, data, budget: FrameBudget) -> None:
    """Clients only say `{"type": "typing"}` (or `"active"`); anything else is ignored, and a
    client that keeps sending junk or floods is closed with 1008."""
    if isinstance(data, bytes):
        conn.request_close(CLOSE_UNSUPPORTED, "This socket only accepts JSON text frames.")
        return
    if not budget.take():
        if budget.dropped > 4 * FRAME_BUDGET:
            conn.request_close(CLOSE_POLICY, "Too many frames.")
        return
    try:
        frame = json.loads(data)
    except ValueError:
        frame = None
    kind = frame.get("type") if isinstance(frame, dict) else None
    if kind not in CLIENT_FRAME_TYPES:
        conn.bad_frames += 1
        if conn.bad_frames > MAX_BAD_FRAMES:
            conn.request_close(CLOSE_POLICY, 'Send {"type": "typing"} frames only.')
        return
    hub.touch(conn)
    if kind == "typing":
        now = time.monotonic()
        if now - conn.last_typing >= TYPING_EVERY:
            conn.last_typing = now
            hub.publish({"type": "typing", "room_id": conn.room_id, "html": None,
                         "data": {"user_id": conn.user_id, "name": conn.user_name}})
