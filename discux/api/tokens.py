"""Personal API tokens: made in Settings, shown once, kept only as a SHA-256, and checked in
constant time on every API request."""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta

import sqlalchemy as sa

from discux.errors import DiscuxError
from discux.extensions import db
from discux.ids import sha256_hex, utcnow
from discux.models import ApiToken, User

TOKEN_PREFIX = "dxk_"
TOKEN_BYTES = 32  # 256 bits of secrets.token_urlsafe
TOKEN_MAX_CHARS = 100  # longer than any token we issue: refused before hashing
NAME_MAX = 100
TOKENS_PER_USER = 20
LAST_USED_EVERY = timedelta(minutes=1)


# Built once: it runs on every API request (its owner comes with it, see ApiToken.user).
_TOKEN_BY_HASH = sa.select(ApiToken).where(ApiToken.token_hash == sa.bindparam("digest"))


class TokenNotFound(DiscuxError):
    status = 404
    code = "not_found"


def create_token(user: User, name: str | None) -> tuple[ApiToken, str]:
    """A new token for `user`; returns the row and the raw token, which is never shown again."""
    name = (name or "").strip()
    if not name:
        raise DiscuxError("Name the token after the script or bot that will use it.", "name")
    if len(name) > NAME_MAX:
        raise DiscuxError(f"Keep the token's name to {NAME_MAX} characters or fewer.", "name")
    if len(tokens_of(user)) >= TOKENS_PER_USER:
        raise DiscuxError(
            f"You already have {TOKENS_PER_USER} tokens. Revoke one you no longer use first.",
            "name",
        )
    raw = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    token = ApiToken(user_id=user.id, name=name, token_hash=sha256_hex(raw))
    db.session.add(token)
    db.session.commit()
    return token, raw


def tokens_of(user: User) -> list[ApiToken]:
    """The user's tokens, newest first."""
    return list(db.session.scalars(
        sa.select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())
    ))


def revoke_token(user: User, token_id: str) -> ApiToken:
    """Delete one of the user's tokens; the very next request made with it is refused."""
    token = db.session.scalar(
        sa.select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user.id)
    )
    if token is None:
        raise TokenNotFound("There is no such token among yours.")
    db.session.delete(token)
    db.session.commit()
    return token


def token_for(raw: str | None) -> ApiToken | None:
    """The live token behind a raw Bearer value, or None; notes its use at most once a minute."""
    if not raw or not raw.startswith(TOKEN_PREFIX) or len(raw) > TOKEN_MAX_CHARS:
        return None
    digest = sha256_hex(raw)
    token = db.session.scalar(_TOKEN_BY_HASH, {"digest": digest})
    # The lookup is by hash already; compare again in constant time so no code path ever
    # compares token material with a short-circuiting ==.
    if token is None or not hmac.compare_digest(token.token_hash, digest):
        return None
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_EVERY:
        # Conditional so two requests in the same minute write once.
        db.session.execute(
            sa.update(ApiToken)
            .where(ApiToken.id == token.id,
                   sa.or_(ApiToken.last_used_at.is_(None),
                          ApiToken.last_used_at <= now - LAST_USED_EVERY))
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
    return token
