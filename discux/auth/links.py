"""Email sign-in links kept as VerificationToken rows: single use, 24 hours.

Opening a link only shows a "Sign in as …" button (mail scanners fetch links to check them);
pressing it spends the token."""

from __future__ import annotations

import secrets

import sqlalchemy as sa

from discux.auth.accounts import normalize_email
from discux.errors import DiscuxError
from discux.extensions import db
from discux.ids import epoch_ms, sha256_hex
from discux.models import VerificationToken

LINK_LIFETIME_MS = 24 * 3600 * 1000
NOT_VALID = "This sign-in link is not valid or was already used. Ask for a new one."
EXPIRED = "This sign-in link has expired. Ask for a new one."


class LinkUnusable(DiscuxError):
    status = 410
    code = "sign_in_link_unusable"


def purge_expired_tokens(now_ms: int | None = None) -> int:
    """Delete every sign-in token past its expiry; returns how many (caller commits)."""
    return db.session.execute(
        sa.delete(VerificationToken).where(VerificationToken.expires <= (now_ms or epoch_ms()))
        .execution_options(synchronize_session=False)
    ).rowcount


def issue_sign_in_token(email: str) -> str:
    """Store a new token for `email` (hashed) and return the raw one for the link. Expired
    tokens of everyone go on the way, so the table never grows with links nobody used."""
    purge_expired_tokens()
    raw_token = secrets.token_urlsafe(32)
    db.session.add(
        VerificationToken(
            identifier=normalize_email(email),
            token=sha256_hex(raw_token),
            expires=epoch_ms() + LINK_LIFETIME_MS,
        )
    )
    db.session.commit()
    return raw_token


def _token_row(email: str, raw_token: str) -> VerificationToken | None:
    if not raw_token or len(raw_token) > 128:
        return None
    return db.session.scalar(
        sa.select(VerificationToken).where(
            VerificationToken.identifier == normalize_email(email),
            VerificationToken.token == sha256_hex(raw_token),
        )
    )


def check_sign_in_token(email: str, raw_token: str) -> str:
    """The email a still-usable token would sign in, without spending it."""
    row = _token_row(email, raw_token)
    if row is None:
        raise LinkUnusable(NOT_VALID)
    if row.expires <= epoch_ms():
        raise LinkUnusable(EXPIRED)
    return row.identifier


def withdraw_sign_in_token(email: str, raw_token: str) -> None:
    """Delete a token whose email never went out."""
    db.session.execute(
        sa.delete(VerificationToken).where(
            VerificationToken.identifier == normalize_email(email),
            VerificationToken.token == sha256_hex(raw_token),
        )
    )
    db.session.commit()


def consume_sign_in_token(email: str, raw_token: str) -> str:
    """Spend a token; returns the email it signs in. Deleting the row makes it single-use,
    and the rowcount tells which of two simultaneous clicks won."""
    row = _token_row(email, raw_token)
    if row is None:
        raise LinkUnusable(NOT_VALID)
    identifier, hashed = row.identifier, row.token
    expired = row.expires <= epoch_ms()
    deleted = db.session.execute(
        sa.delete(VerificationToken).where(
            VerificationToken.identifier == identifier, VerificationToken.token == hashed
        )
    ).rowcount
    db.session.commit()
    if expired:
        raise LinkUnusable(EXPIRED)
    if deleted != 1:
        raise LinkUnusable(NOT_VALID)
    return identifier
