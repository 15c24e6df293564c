"""Finding or creating the User behind a sign-in, and linking OAuth accounts to it."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from discux.errors import DiscuxError
from discux.extensions import db
from discux.ids import utcnow
from discux.models import Account, User


@dataclass(frozen=True)
class OAuthIdentity:
    provider: str
    account_id: str
    email: str | None
    email_verified: bool
    name: str | None
    avatar_url: str | None
    token_type: str | None = None
    scope: str | None = None


def normalize_email(email: str) -> str:
    return email.strip().lower()


def user_by_email(email: str) -> User | None:
    return db.session.scalar(sa.select(User).where(User.email == normalize_email(email)))


def user_for_email(email: str, name: str | None = None, verified: bool = False) -> User:
    """The user with this email, created on first sign-in."""
    user = user_by_email(email)
    if user is None:
        user = User(email=normalize_email(email), name=(name or "").strip() or None)
        db.session.add(user)
    elif name and not user.name:
        user.name = name.strip()
    if verified and user.email_verified is None:
        user.email_verified = utcnow()
    db.session.commit()
    return user


def user_for_oauth_identity(identity: OAuthIdentity) -> User:
    """Sign-in through a provider: the linked user, else the user with that verified email,
    else a new user. An unverified email never takes over an existing account."""
    account = db.session.scalar(
        sa.select(Account).where(
            Account.provider == identity.provider,
            Account.provider_account_id == identity.account_id,
        )
    )
    if account is not None:
        user = db.session.get(User, account.user_id)
        if identity.avatar_url and not user.avatar_url:
            user.avatar_url = identity.avatar_url
        db.session.commit()
        return user
    if not identity.email:
        raise DiscuxError(
            f"{identity.provider.title()} did not share an email address with Discux. "
            "Make one visible to the app and try again."
        )
    user = user_by_email(identity.email)
    if user is not None and not identity.email_verified:
        raise DiscuxError(
            f"An account with {identity.email} already exists, and "
            f"{identity.provider.title()} has not verified that address. "
            "Sign in the way you did before."
        )
    if user is None:
        user = User(
            email=normalize_email(identity.email),
            name=identity.name,
            avatar_url=identity.avatar_url,
            email_verified=utcnow() if identity.email_verified else None,
        )
        db.session.add(user)
        db.session.flush()
    # Tokens are not kept: Discux only needs to know who signed in.
    db.session.add(
        Account(
            user_id=user.id,
            type="oauth" if identity.provider == "github" else "oidc",
            provider=identity.provider,
            provider_account_id=identity.account_id,
            token_type=identity.token_type,
            scope=identity.scope,
        )
    )
    db.session.commit()
    return user
