"""Finding or creating the User behind a sign-in, and linking OAuth accounts to it.

The rule (NextAuth's, without "dangerous" email linking): only an email address someone has
proven owns an account. An OAuth/OIDC identity whose email the provider did not verify signs
in only through an Account it is already linked to; it never creates, claims or links a user
by email."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import sqlalchemy as sa
from flask import current_app

from discux import plans
from discux.errors import DiscuxError
from discux.extensions import db
from discux.ids import utcnow
from discux.models import Account, ApiToken, Session, User

T = TypeVar("T")


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


class UnverifiedProviderEmail(DiscuxError):
    code = "unverified_email"


class AccountDisabled(DiscuxError):
    status = 403
    code = "account_disabled"


DISABLED_MESSAGE = ("This account has been disabled by an administrator of this Discux server. "
                    "Ask them if you think that is a mistake.")


def check_not_disabled(user: User) -> None:
    """Raise AccountDisabled when an instance admin disabled `user`."""
    if user.disabled_at is not None:
        raise AccountDisabled(DISABLED_MESSAGE)


def new_user(email: str, **fields) -> User:
    """A User (not yet added) on the instance's default plan (DISCUX_DEFAULT_PLAN)."""
    user = User(email=normalize_email(email), **fields)
    plans.set_plan(user, current_app.config["DISCUX_DEFAULT_PLAN"])
    return user


def normalize_email(email: str) -> str:
    return email.strip().lower()


def user_by_email(email: str) -> User | None:
    return db.session.scalar(sa.select(User).where(User.email == normalize_email(email)))


def _once_more_after_a_race(write: Callable[[], T]) -> T:
    """Run `write`; if a simultaneous sign-in committed the same user or account first (a
    unique key says so) or the database broke a lock tie, roll back and decide again on
    what is committed now: that run finds the other one's rows."""
    for attempt in range(2):
        try:
            return write()
        except (sa.exc.IntegrityError, sa.exc.OperationalError):
            db.session.rollback()
            if attempt:
                raise
    raise AssertionError("unreachable")


def mark_email_verified(user: User) -> None:
    """The person signing in has just proven they own `user.email`. If nobody had before,
    whatever was attached to the account came from someone who never proved it (under
    earlier versions, an OAuth identity with an unverified email could create the user):
    its provider links, sessions and API tokens are removed, so the owner inherits none."""
    if user.email_verified is not None:
        return
    if user.id is not None:
        for model in (Account, Session, ApiToken):
            db.session.execute(
                sa.delete(model).where(model.user_id == user.id)
                .execution_options(synchronize_session=False)
            )
    user.email_verified = utcnow()


def user_for_email(email: str, name: str | None = None, verified: bool = False) -> User:
    """The user with this email, created on first sign-in; `verified` when the person just
    proved the address (an email link)."""

    def write() -> User:
        user = user_by_email(email)
        if user is None:
            user = new_user(email, name=(name or "").strip() or None)
            db.session.add(user)
            db.session.flush()
        elif name and not user.name:
            user.name = name.strip()
        if verified:
            mark_email_verified(user)
        db.session.commit()
        return user

    return _once_more_after_a_race(write)


def user_for_oauth_identity(identity: OAuthIdentity, label: str | None = None) -> User:
    """Sign-in through a provider (`label` names it to the user): the user this identity is
    linked to; else, only when the provider verified the email, the user with that email (or
    a new one), now linked."""
    label = label or identity.provider.title()
    return _once_more_after_a_race(lambda: _user_for_oauth_identity_once(identity, label))


def _user_for_oauth_identity_once(identity: OAuthIdentity, label: str) -> User:
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
            f"{label} did not share an email address with Discux. "
            "Make one visible to the app and try again."
        )
    if not identity.email_verified:
        raise UnverifiedProviderEmail(
            f"{label} has not verified that address ({normalize_email(identity.email)}), so "
            "Discux cannot use it to sign you in. Verify the address there and try again, "
            "or sign in with an email link instead."
        )
    user = user_by_email(identity.email)
    if user is None:
        user = new_user(
            identity.email,
            name=identity.name,
            avatar_url=identity.avatar_url,
            email_verified=utcnow(),
        )
        db.session.add(user)
        db.session.flush()
    else:
        mark_email_verified(user)
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
