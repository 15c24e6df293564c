"""Test data made through the same domain code the app uses, with overridable defaults."""

from __future__ import annotations

import itertools

from discux import plans
from discux.auth.accounts import user_for_email
from discux.auth.sessions import SESSION_LIFETIME_MS
from discux.extensions import db
from discux.ids import epoch_ms, sha256_hex
from discux.models import Session, User

_counter = itertools.count(1)


def create_user(email: str | None = None, name: str | None = None, plan: str = "free",
                verified: bool = True) -> User:
    """A user who proved their address (an email link) unless `verified=False`."""
    number = next(_counter)
    user = user_for_email(email or f"user{number}@example.com", name or f"User {number}",
                          verified=verified)
    if plan != "free":
        plans.set_plan(user, plan)
        db.session.commit()
    return user


def create_session_token(user_id: str, raw_token: str | None = None) -> str:
    """A real Session row for `user_id`; returns the raw cookie value."""
    raw_token = raw_token or f"test-token-{next(_counter)}-{user_id}"
    db.session.add(
        Session(
            session_token=sha256_hex(raw_token),
            user_id=user_id,
            expires=epoch_ms() + SESSION_LIFETIME_MS,
        )
    )
    db.session.commit()
    return raw_token
