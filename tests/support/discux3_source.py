"""A Discux3 database to import from: MySQL built from tests/fixtures/discux3_schema.sql, with
factories that write rows the way Discux3's Prisma client did (cuid ids, DATETIME(3) in UTC,
upper-case enums)."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pymysql
import sqlalchemy as sa

from discux.ids import utcnow

SCHEMA = Path(__file__).resolve().parent.parent / "fixtures" / "discux3_schema.sql"
_counter = itertools.count(1)


def cuid() -> str:
    """A cuid-shaped id: "c", 24 lower-case base-36 characters."""
    return "c" + format(next(_counter), "08x") + secrets.token_hex(8)


def at(text: str) -> datetime:
    """`at("2025-03-04 05:06:07.890")` → a naive UTC datetime, milliseconds kept."""
    return datetime.fromisoformat(text)


class Discux3Source:
    """One Discux3 database; `add(table, **columns)` inserts a row and returns its id."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = sa.engine.make_url(url)
        self._connect = dict(host=parsed.host, port=parsed.port or 3306, user=parsed.username,
                             password=parsed.password or "", database=parsed.database,
                             charset="utf8mb4", autocommit=True)

    def create_schema(self) -> Discux3Source:
        statements = [part.strip() for part in SCHEMA.read_text().split(";\n")]
        with self._cursor() as cursor:
            for statement in statements:
                lines = [line for line in statement.splitlines() if not line.startswith("--")]
                if "".join(lines).strip():
                    cursor.execute("\n".join(lines))
        return self

    @contextmanager
    def _cursor(self) -> Iterator[pymysql.cursors.Cursor]:
        connection = pymysql.connect(**self._connect)
        try:
            with connection.cursor() as cursor:
                yield cursor
        finally:
            connection.close()

    def add(self, table: str, **columns) -> str:
        columns.setdefault("id", cuid())
        names = ", ".join(f"`{name}`" for name in columns)
        marks = ", ".join(["%s"] * len(columns))
        with self._cursor() as cursor:
            cursor.execute(f"INSERT INTO `{table}` ({names}) VALUES ({marks})",
                           list(columns.values()))
        return columns["id"]

    def execute(self, sql: str, *args) -> None:
        with self._cursor() as cursor:
            cursor.execute(sql, args)

    # ---- the rows Discux3 wrote ----

    def user(self, email: str, name: str | None = None, created: str = "2025-01-01 00:00:00.000",
             **columns) -> str:
        when = at(created)
        return self.add("users", email=email, name=name, created_at=when, updated_at=when,
                        last_active=when, **columns)

    def account(self, user_id: str, provider: str, account_id: str) -> str:
        return self.add("accounts", userId=user_id, type="oauth", provider=provider,
                        providerAccountId=account_id, access_token="gho_secret",
                        refresh_token="refresh-secret", token_type="bearer", scope="read:user")

    def agent(self, owner_id: str, name: str, style: str = "PROFESSIONAL", emoji: str = "🤖",
              color: str = "#3B82F6", created: str = "2025-01-02 00:00:00.000") -> str:
        when = at(created)
        return self.add("agents", name=name, prompt=f"You are {name}.", emoji=emoji, color=color,
                        style=style, created_by=owner_id, created_at=when, updated_at=when)

    def room(self, owner_id: str, name: str, created: str = "2025-01-03 00:00:00.000",
             **columns) -> str:
        when = at(created)
        return self.add("rooms", name=name, created_by=owner_id, created_at=when,
                        updated_at=when, **columns)

    def member(self, room_id: str, user_id: str, role: str = "MEMBER",
               joined: str = "2025-01-03 00:00:00.000") -> str:
        return self.add("room_participants", room_id=room_id, user_id=user_id, role=role,
                        joined_at=at(joined))

    def room_agent(self, room_id: str, agent_id: str, added_by: str) -> str:
        return self.add("room_agents", room_id=room_id, agent_id=agent_id, added_by=added_by,
                        added_at=at("2025-01-03 00:00:01.000"))

    def message(self, room_id: str, kind: str, sender_id: str, content: str, when: str,
                message_id: str | None = None) -> str:
        return self.add("messages", id=message_id or cuid(), room_id=room_id, content=content,
                        type=kind, sender_id=sender_id, timestamp=at(when))

    def mention(self, message_id: str, agent_id: str) -> str:
        return self.add("message_mentions", message_id=message_id, mentioned_agent_id=agent_id)

    def invitation(self, room_id: str, invited_by: str, token: str, *, used: bool = False,
                   expires_in_days: int | None = 7, email: str | None = None) -> str:
        now = utcnow().replace(microsecond=0)
        return self.add(
            "room_invitations", room_id=room_id, invited_by=invited_by, invite_token=token,
            email=email, created_at=now,
            expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
            used_at=now if used else None)
