"""Database-backed sign-in sessions (NextAuth's "database" strategy) behind Flask-Login.

The cookie holds a random token; the Session row stores only its SHA-256, so a leaked
database holds no live session.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

import sqlalchemy as sa
from flask import Flask, Response, current_app, g, request

from discux.extensions import db, login_manager
from discux.ids import epoch_ms, sha256_hex, utcnow
from discux.models import Session, User

COOKIE_NAME = "discux_session"
SESSION_LIFETIME_MS = 30 * 24 * 3600 * 1000
REFRESH_AFTER_MS = 24 * 3600 * 1000  # sliding expiry moves at most once a day
LAST_ACTIVE_EVERY = timedelta(minutes=1)


def start_session(user: User) -> Session:
    """Create a session row for `user` and arrange for its cookie to be set on the response."""
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
    g.clear_session_cookie = True


def sign_out_other_sessions(user: User) -> int:
    """Delete every session of `user` except this browser's; returns how many ended."""
    current = getattr(g, "current_session", None)
    query = sa.delete(Session).where(Session.user_id == user.id)
    if current is not None:
        query = query.where(Session.id != current.id)
    count = db.session.execute(query).rowcount
    db.session.commit()
    return count


def sessions_of(user: User) -> list[Session]:
    return list(
        db.session.scalars(
            sa.select(Session)
            .where(Session.user_id == user.id, Session.expires > epoch_ms())
            .order_by(Session.updated_at.desc())
        )
    )


def session_for_token(raw_token: str) -> Session | None:
    row = db.session.scalar(
        sa.select(Session).where(Session.session_token == sha256_hex(raw_token))
    )
    if row is None or row.expires <= epoch_ms():
        return None
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


def init_sessions(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Sign in to see that page."
    login_manager.login_message_category = "info"
    app.after_request(_write_cookie)
