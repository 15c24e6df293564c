"""AI agents: a persona, a style and a look, owned by the user who made them."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, mapped_column, validates

from discux.extensions import db
from discux.ids import new_id, utcnow
from discux.models.types import Text, Timestamp

STYLES = ("professional", "direct", "friendly", "creative", "analytical")
# casefold() can lengthen a name ("ß" → "ss"): room for a 100-character name three times over.
# Binary collation on MariaDB: the key is already folded, and utf8mb4_unicode_ci would also
# equate "Café" with "Cafe", which SQLite does not.
NAME_KEY_LENGTH = 300
NameKey = sa.String(NAME_KEY_LENGTH).with_variant(
    mysql.VARCHAR(NAME_KEY_LENGTH, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
)


def agent_name_key(name: str | None) -> str:
    """What two names of one owner's agents must not share: "Nova", " nova " and "NOVA" clash."""
    return (name or "").strip().casefold()


class Agent(db.Model):
    __tablename__ = "agents"
    __table_args__ = (
        sa.Index("idx_agents_created_by", "created_by"),
        sa.Index("idx_style", "style"),
        sa.Index("idx_usage_count", "usage_count"),
        sa.Index("uq_agents_owner_name_key", "created_by", "name_key", unique=True),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(sa.String(100))
    # Set from `name` (see _keep_name_key): the database refuses a second agent of one owner
    # with the same name, whichever request gets there first.
    name_key: Mapped[str] = mapped_column(NameKey)
    prompt: Mapped[str] = mapped_column(Text)
    # One grapheme cluster, which may be many code points (👩‍💻 is 3, 11 bytes).
    emoji: Mapped[str] = mapped_column(sa.String(16), default="🤖", server_default="🤖")
    color: Mapped[str | None] = mapped_column(
        sa.String(7), default="#3B82F6", server_default="#3B82F6"
    )
    style: Mapped[str | None] = mapped_column(
        sa.Enum(*STYLES, name="agent_style"), default="professional", server_default="professional"
    )
    created_by: Mapped[str] = mapped_column(
        sa.String(255), sa.ForeignKey("User.id", ondelete="CASCADE")
    )
    is_public: Mapped[bool | None] = mapped_column(
        sa.Boolean, default=False, server_default=sa.false()
    )
    usage_count: Mapped[int | None] = mapped_column(sa.Integer, default=0, server_default="0")
    model: Mapped[str | None] = mapped_column(sa.String(200))
    created_at: Mapped[datetime | None] = mapped_column(
        Timestamp, default=utcnow, server_default=sa.func.current_timestamp()
    )
    updated_at: Mapped[datetime | None] = mapped_column(
        Timestamp, default=utcnow, onupdate=utcnow, server_default=sa.func.current_timestamp()
    )

    creator = db.relationship("User")

    @validates("name")
    def _keep_name_key(self, _key: str, name: str) -> str:
        self.name_key = agent_name_key(name)
        return name

    def __repr__(self) -> str:
        return f"<Agent {self.name}>"
