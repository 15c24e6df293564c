"""NextAuth-shaped account tables (User, Account, Session, VerificationToken) and API tokens."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.orm import Mapped, mapped_column

from discux.extensions import db
from discux.ids import epoch_ms, new_id, utcnow
from discux.models.types import Text, Timestamp

PLANS = ("free", "pro", "team")


class User(UserMixin, db.Model):
    __tablename__ = "User"
    __table_args__ = (
        sa.Index("idx_email", "email"),
        sa.Index("idx_subscription", "subscription"),
    )

    id: Mapped[str] = mapped_column(sa.String(255), primary_key=True, default=new_id)
    name: Mapped[str | None] = mapped_column(sa.String(255))
    email: Mapped[str] = mapped_column(sa.String(255), unique=True)
    email_verified: Mapped[datetime | None] = mapped_column("emailVerified", Timestamp, nullable=True)
    image: Mapped[str | None] = mapped_column(Text)
    avatar_url: Mapped[str | None] = mapped_column(sa.String(500))
    subscription: Mapped[str] = mapped_column(
        sa.Enum(*PLANS, name="subscription"), default="free", server_default="free"
    )
    max_agents: Mapped[int] = mapped_column(sa.Integer, default=3, server_default="3")
    max_rooms: Mapped[int] = mapped_column(sa.Integer, default=1, server_default="1")
    max_messages_per_month: Mapped[int] = mapped_column(
        sa.Integer, default=100, server_default="100"
    )
    last_active: Mapped[datetime] = mapped_column(
        Timestamp, default=utcnow, server_default=sa.func.current_timestamp()
    )
    created_at: Mapped[int] = mapped_column(sa.BigInteger, default=epoch_ms, server_default="0")
    updated_at: Mapped[int] = mapped_column(
        sa.BigInteger, default=epoch_ms, onupdate=epoch_ms, server_default="0"
    )
    # Set by an instance admin (discux/admin): no sign-in, session or API token works meanwhile.
    disabled_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    # Opted in to an email when mentioned in a room they do not have open (discux/notifications).
    email_mentions: Mapped[bool] = mapped_column(sa.Boolean, default=False,
                                                 server_default=sa.false())

    @property
    def display_name(self) -> str:
        return self.name or self.email.split("@")[0]

    def __repr__(self) -> str:
        return f"<User {self.email}>"


class Account(db.Model):
    __tablename__ = "Account"
    __table_args__ = (
        sa.UniqueConstraint("provider", "providerAccountId", name="idx_provider_account"),
        sa.Index("idx_userId", "userId"),
    )

    id: Mapped[str] = mapped_column(sa.String(255), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(
        "userId", sa.String(255), sa.ForeignKey("User.id", ondelete="CASCADE")
    )
    type: Mapped[str] = mapped_column(sa.String(255))
    provider: Mapped[str] = mapped_column(sa.String(255))
    provider_account_id: Mapped[str] = mapped_column("providerAccountId", sa.String(255))
    refresh_token: Mapped[str | None] = mapped_column(Text)
    access_token: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[int | None] = mapped_column(sa.Integer)
    token_type: Mapped[str | None] = mapped_column(sa.String(255))
    scope: Mapped[str | None] = mapped_column(sa.String(255))
    id_token: Mapped[str | None] = mapped_column(Text)
    session_state: Mapped[str | None] = mapped_column(sa.String(255))
    authorization_code: Mapped[str | None] = mapped_column(Text)
    expires_at_ms: Mapped[int | None] = mapped_column(sa.BigInteger)
    created_at: Mapped[int] = mapped_column(sa.BigInteger, default=epoch_ms, server_default="0")
    updated_at: Mapped[int] = mapped_column(
        sa.BigInteger, default=epoch_ms, onupdate=epoch_ms, server_default="0"
    )


class Session(db.Model):
    """A signed-in browser; `session_token` is the SHA-256 of the cookie's random token."""

    __tablename__ = "Session"
    __table_args__ = (
        sa.Index("idx_sessionToken", "sessionToken"),
        # SQLite index names are global, so the seed's second idx_userId gets the table's name.
        sa.Index("idx_Session_userId", "userId"),
    )

    id: Mapped[str] = mapped_column(sa.String(255), primary_key=True, default=new_id)
    session_token: Mapped[str] = mapped_column("sessionToken", sa.String(255), unique=True)
    user_id: Mapped[str] = mapped_column(
        "userId", sa.String(255), sa.ForeignKey("User.id", ondelete="CASCADE")
    )
    expires: Mapped[int] = mapped_column(sa.BigInteger)
    created_at: Mapped[int] = mapped_column(sa.BigInteger, default=epoch_ms, server_default="0")
    updated_at: Mapped[int] = mapped_column(
        sa.BigInteger, default=epoch_ms, onupdate=epoch_ms, server_default="0"
    )

    user: Mapped[User] = db.relationship(lazy="joined")


class VerificationToken(db.Model):
    """A single-use email sign-in link; `token` holds the SHA-256 of what was mailed."""

    __tablename__ = "VerificationToken"

    identifier: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    token: Mapped[str] = mapped_column(sa.String(255), primary_key=True, unique=True)
    expires: Mapped[int] = mapped_column(sa.BigInteger)
    created_at: Mapped[int] = mapped_column(sa.BigInteger, default=epoch_ms, server_default="0")
    updated_at: Mapped[int] = mapped_column(
        sa.BigInteger, default=epoch_ms, onupdate=epoch_ms, server_default="0"
    )


class ApiToken(db.Model):
    """A personal API token; only its SHA-256 is kept."""

    __tablename__ = "api_tokens"
    __table_args__ = (sa.Index("idx_api_tokens_user_id", "user_id"),)

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(
        sa.String(255), sa.ForeignKey("User.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(sa.String(100))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(
        Timestamp, default=utcnow, server_default=sa.func.current_timestamp()
    )
    last_used_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    # Loaded with the token: every API request needs both (one statement, not two).
    user: Mapped[User] = db.relationship(lazy="joined")
