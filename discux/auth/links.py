"""Email sign-in links kept as VerificationToken rows: single use, 24 hours."""

from __future__ import annotations

import secrets

import sqlalchemy as sa

from discux.auth.accounts import normalize_email
from discux.errors import DiscuxError
from discux.extensions import db
from discux.ids import epoch_ms, sha256_hex
from discux.models import VerificationToken

LINK_LIFETIME_MS = 24 * 3600 * 1000


def issue_sign_in_token(email: str) -> str:
    """Store a new token for `email` (hashed) and return the raw one for the link."""
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


def consume_sign_in_token(email: str, raw_token: str) -> str:
    """Spend a token; returns the email it signs in. Deleting the row makes it single-use,
    and the rowcount tells which of two simultaneous clicks won."""
    identifier = normalize_email(email)
    hashed = sha256_hex(raw_token)
    row = db.session.scalar(
        sa.select(VerificationToken).where(
            VerificationToken.identifier == identifier, VerificationToken.token == hashed
        )
    )
    if row is None:
        raise DiscuxError("This sign-in link is not valid or was already used. Ask for a new one.")
    expired = row.expires <= epoch_ms()
    deleted = db.session.execute(
        sa.delete(VerificationToken).where(
            VerificationToken.identifier == identifier, VerificationToken.token == hashed
        )
    ).rowcount
    db.session.commit()
    if expired:
        raise DiscuxError("This sign-in link has expired. Ask for a new one.")
    if deleted != 1:
        raise DiscuxError("This sign-in link was already used. Ask for a new one.")
    return identifier
