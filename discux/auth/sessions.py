"""Database-backed sign-in sessions (NextAuth's "database" strategy) behind Flask-Login.

The cookie holds a random token; the Session row stores only its SHA-256, so a leaked
database holds no live session.
"""

from __future__ import annotations

import secrets
import threading
import time
from datetime import timedelta

import sqlalchemy as sa
from flask import Flask, Response, current_app, flash, g, has_app_context, request
from flask_sqlalchemy.session import Session as FlaskSQLAlchemySession
from sqlalchemy import event
from sqlalchemy.orm import make_transient_to_detached

from discux.auth.accounts import DISABLED_MESSAGE, check_not_disabled
from discux.extensions import db, login_manager
from discux.ids import epoch_ms, sha256_hex, utcnow
from discux.models import Session, User
from discux.realtime.hub import hub_for

COOKIE_NAME = "discux_session"
SESSION_LIFETIME_MS = 30 * 24 * 3600 * 1000
REFRESH_AFTER_MS = 24 * 3600 * 1000  # sliding expiry moves at most once a day
LAST_ACTIVE_EVERY = timedelta(minutes=1)
SIGNED_IN_CACHE_SECONDS = 3.0
SIGNED_IN_CACHE_SIZE = 2_000  # ~3 KiB each (6 MiB at most); old entries stay until it fills
CACHE_KEY = "discux.signed_in"

# Built once: each request only binds the token's hash.
_SESSION_BY_TOKEN = sa.select(Session).where(Session.session_token == sa.bindparam("token_hash"))


# Sent through the broker so that every worker drops a user's kept sessions at once.
FORGET_USER_EVENT = "auth.forget_user"


def start_session(user: User) -> Session:
    """Create a session row for `user` and arrange for its cookie to be set on the response;
    AccountDisabled when an admin disabled the user (every way of signing in ends here)."""
    check_not_disabled(user)
    raw_token = secrets.token_urlsafe(32)
    row = Session(
        session_token=sha256_hex(raw_token),
        user_id=user.id,
        expires=epoch_ms() + SESSION_LIFETIME_MS,
    )
    db.session.add(row)
    user.last_active = utcnow()
    db.session.commit()
    g.set_session_cookie = (raw_token, row.expires)
    g.current_session = row
    return row


def end_session() -> None:
    """Delete the current session row and clear the cookie."""
    row = getattr(g, "current_session", None)
    if row is not None:
        db.session.execute(sa.delete(Session).where(Session.id == row.id))
        db.session.commit()
        # After the commit: a read that began before it has its copy refused (see keep()).
        signed_in_cache().drop_token(row.session_token)
    g.clear_session_cookie = True


def sign_out_other_sessions(user: User) -> int:
    """Delete every session of `user` except this browser's; returns how many ended."""
    current = getattr(g, "current_session", None)
    query = sa.delete(Session).where(Session.user_id == user.id)
    if current is not None:
        query = query.where(Session.id != current.id)
    count = db.session.execute(query).rowcount
    db.session.commit()
    signed_in_cache().drop_user(user.id, keep_token=current.session_token if current else None)
    return count


def sign_out_everywhere(user: User) -> int:
    """Delete every session of `user`; returns how many ended."""
    count = db.session.execute(sa.delete(Session).where(Session.user_id == user.id)).rowcount
    db.session.commit()
    signed_in_cache().drop_user(user.id)
    return count


def forget_user_everywhere(user_id: str) -> None:
    """Make every worker read `user_id`'s session rows afresh on their next request (an admin
    disabled the user); other workers would otherwise serve their kept copies for up to
    SIGNED_IN_CACHE_SECONDS."""
    signed_in_cache().drop_user(user_id)
    hub_for().publish({"type": FORGET_USER_EVENT, "room_id": "", "html": None,
                       "data": {"user_id": user_id}})


def sessions_of(user: User) -> list[Session]:
    return list(
        db.session.scalars(
            sa.select(Session)
            .where(Session.user_id == user.id, Session.expires > epoch_ms())
            .order_by(Session.updated_at.desc())
        )
    )


class SignedInCache:
    """This worker's recently checked sessions: token hash -> (Session row with its User, copied
    out of any database session, and the monotonic time they were read).

    Every request needs its session row and its user; reading them costs more than storing a
    message. A hit is merged into the request's database session without a query.

    Trade-off: a change made by *another* worker (or `flask users set-plan`, or SQL by hand) to a
    Session or User row reaches this worker within `SIGNED_IN_CACHE_SECONDS`: a session signed out
    elsewhere keeps working here for at most that long, a renamed user may post under the old name
    for that long. Changes made through this worker's ORM take effect at once: signing out, signing
    out other sessions, and any flush or bulk UPDATE/DELETE that touches a Session or a User drop
    the entries concerned (see `_drop_changed`), again once committed. Expiry is checked on every
    hit.

    Every drop moves `generation` on. A row read before a change committed but kept after the
    drop would bring the old row back for seconds, so `keep` refuses a row whose read began
    under an earlier generation.
    """

    def __init__(self, seconds: float = SIGNED_IN_CACHE_SECONDS,
                 size: int = SIGNED_IN_CACHE_SIZE, clock=time.monotonic) -> None:
        self.seconds = seconds
        self.size = size
        self.clock = clock
        self._entries: dict[str, tuple[Session, float]] = {}
        self._lock = threading.Lock()
        self.generation = 0

    def get(self, token_hash: str) -> Session | None:
        """The kept copy of the session row (user included), if it was read recently enough."""
        found = self._entries.get(token_hash)
        if found is None or self.clock() - found[1] >= self.seconds:
            return None
        return found[0]

    def keep(self, row: Session, read_at: float, generation: int) -> None:
        """Remember `row` and its user as read at `read_at` (by `clock`) by a read that began
        at `generation`; nothing if anything was dropped since."""
        copy = _detached_copy(row)
        with self._lock:
            if generation != self.generation:
                return
            if len(self._entries) >= self.size:
                self._entries.clear()  # bounded; entries live seconds, refilling is cheap
            self._entries[row.session_token] = (copy, read_at)

    def drop_token(self, token_hash: str) -> None:
        with self._lock:
            self.generation += 1
            self._entries.pop(token_hash, None)

    def drop_user(self, user_id: str, keep_token: str | None = None) -> None:
        """Forget every session of `user_id` (except `keep_token`'s)."""
        with self._lock:
            self.generation += 1
            for token_hash, (row, _) in list(self._entries.items()):
                if row.user_id == user_id and token_hash != keep_token:
                    del self._entries[token_hash]

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._entries.clear()


def _column_values(instance, model) -> dict:
    return {attr.key: getattr(instance, attr.key) for attr in sa.inspect(model).column_attrs}


def _detached_copy(row: Session) -> Session:
    """A copy of `row` and its user bound to no database session, with every column loaded."""
    user = User(**_column_values(row.user, User))
    make_transient_to_detached(user)
    copy = Session(**_column_values(row, Session), user=user)
    make_transient_to_detached(copy)
    return copy


def signed_in_cache(app: Flask | None = None) -> SignedInCache:
    return (app or current_app).extensions[CACHE_KEY]


def session_for_token(raw_token: str) -> Session | None:
    """The live Session row (with its user) for a cookie's token, or None."""
    token_hash = sha256_hex(raw_token)
    cache = signed_in_cache()
    kept = cache.get(token_hash)
    if kept is not None and kept.expires > epoch_ms():
        return db.session.merge(kept, load=False)
    read_at, generation = cache.clock(), cache.generation
    row = db.session.scalar(_SESSION_BY_TOKEN, {"token_hash": token_hash})
    if row is None or row.expires <= epoch_ms():
        return None
    cache.keep(row, read_at, generation)
    return row


@login_manager.request_loader
def load_user_from_request(req) -> User | None:
    raw_token = req.cookies.get(COOKIE_NAME)
    if not raw_token:
        return None
    row = session_for_token(raw_token)
    if row is None:
        g.clear_session_cookie = True
        return None
    if row.user.disabled_at is not None:
        # Disabled by an admin: this session ends on its first use since, and says why.
        db.session.execute(sa.delete(Session).where(Session.id == row.id))
        db.session.commit()
        g.clear_session_cookie = True
        flash(DISABLED_MESSAGE, "error")
        return None
    g.current_session = row
    now_ms = epoch_ms()
    touched = False
    if row.expires - now_ms < SESSION_LIFETIME_MS - REFRESH_AFTER_MS:
        row.expires = now_ms + SESSION_LIFETIME_MS
        g.set_session_cookie = (raw_token, row.expires)
        touched = True
    user = row.user
    if user.last_active is None or utcnow() - user.last_active >= LAST_ACTIVE_EVERY:
        user.last_active = utcnow()
        touched = True
    if touched:
        db.session.commit()
    return user


def _write_cookie(response: Response) -> Response:
    if getattr(g, "clear_session_cookie", False) and not hasattr(g, "set_session_cookie"):
        response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="Lax")
    pending = getattr(g, "set_session_cookie", None)
    if pending:
        raw_token, expires_ms = pending
        response.set_cookie(
            COOKIE_NAME,
            raw_token,
            max_age=max(0, (expires_ms - epoch_ms()) // 1000),
            path="/",
            httponly=True,
            samesite="Lax",
            secure=current_app.config["DISCUX_COOKIE_SECURE"] or request.is_secure,
        )
    return response


def _drop_changed(session, _flush_context=None) -> None:
    """(after_flush) Forget the cached sessions of every User or Session row this flush changed;
    again after the commit, in case another thread read the old rows in between."""
    if not has_app_context() or CACHE_KEY not in current_app.extensions:
        return
    changed = [_cache_key_of(instance) for instance in (*session.dirty, *session.deleted)
               if isinstance(instance, (User, Session))]
    if changed:
        session.info.setdefault(CACHE_KEY, []).extend(changed)
        _drop(changed)


def _drop_pending(session) -> None:
    """(after_commit, after_rollback) Drop again what the transaction's flushes changed."""
    changed = session.info.pop(CACHE_KEY, None)
    if changed and has_app_context() and CACHE_KEY in current_app.extensions:
        _drop(changed)


def _cache_key_of(instance: User | Session) -> tuple[str, str | None]:
    """("user", id) or ("token", hash), read without loading anything (None: unknown)."""
    state = sa.inspect(instance)
    if isinstance(instance, User):
        return ("user", state.identity[0] if state.identity else None)
    return ("token", state.committed_state.get("session_token")
            or state.dict.get("session_token"))


def _drop(keys: list[tuple[str, str | None]]) -> None:
    cache = signed_in_cache()
    for kind, value in keys:
        if value is None:
            cache.clear()
        elif kind == "user":
            cache.drop_user(value)
        else:
            cache.drop_token(value)


def _drop_all_on_bulk_change(state) -> None:
    """(do_orm_execute) A bulk UPDATE or DELETE of users or sessions empties the cache, now and
    again once committed."""
    if not (state.is_update or state.is_delete) or not has_app_context():
        return
    table = getattr(state.statement, "table", None)
    if table is not None and table.name in (User.__tablename__, Session.__tablename__):
        cache = current_app.extensions.get(CACHE_KEY)
        if cache is not None:
            cache.clear()
            state.session.info.setdefault(CACHE_KEY, []).append(("all", None))


def init_sessions(app: Flask) -> None:
    cache = app.extensions[CACHE_KEY] = SignedInCache()

    def forget_user(event: dict) -> None:
        cache.drop_user((event.get("data") or {}).get("user_id", ""))

    @app.before_request
    def hear_forgotten_users() -> None:  # the hub exists from the first request on
        hub_for(app).control_handlers.setdefault(FORGET_USER_EVENT, forget_user)

    if not event.contains(FlaskSQLAlchemySession, "after_flush", _drop_changed):
        event.listen(FlaskSQLAlchemySession, "after_flush", _drop_changed)
        event.listen(FlaskSQLAlchemySession, "after_commit", _drop_pending)
        event.listen(FlaskSQLAlchemySession, "after_rollback", _drop_pending)
        event.listen(FlaskSQLAlchemySession, "do_orm_execute", _drop_all_on_bulk_change)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Sign in to see that page."
    login_manager.login_message_category = "info"
    app.after_request(_write_cookie)
