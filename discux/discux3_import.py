"""Moving in from Discux3: copy a Discux3 MySQL database (Prisma + NextAuth tables) into this one.

What is copied. Users (emails lower-cased, plan and limits, creation times), their OAuth links
(`accounts`: provider and provider account id, so GitHub/Google sign-in finds the same user;
no provider tokens, which Discux never keeps), agents, rooms with their settings, members,
roles and agents, messages with their mentions, and invitations (open ones stay usable by the
same link, used ones stay used). Sessions, email sign-in tokens, discussions and vector
mappings are not: people sign in again, and Discux runs discussions and search its own way.
Prisma writes DATETIME(3) in UTC; times are kept to the millisecond, enums (`OWNER`, `USER`,
`TRUTH_TELLER`…) become Discux's lower-case values (STYLE_FROM_DISCUX3).

Ids. Every copied row gets a new Discux id, and `imported_rows` (migration 0006) records
("discux3", source table, source id) → that id. A run first looks each source row up there: a
row imported before is left alone ("already there") and keeps its id, so running again adds
only what is new in the source. A table rather than ids derived from the cuids, because
message ids must be UUIDv7 in time order (a hash of a cuid is not) and because a Discux3 user
may land on a Discux user that already has the same email. Message ids are UUIDv7 of the
message's own timestamp, made in the source's order (timestamp, then id) with
discux.ids.uuid7_at, so Discux's id-ordered history shows them as Discux3 did.

Agent replies. Discux3 wrote `[AGENT:id:name:emoji:colour:style]` as the first line of each
agent reply; it is stripped, and its name, emoji and colour become the reply's sender as it
looked then (a reply whose agent is gone keeps them, like a deleted agent's reply in Discux).

All or nothing. Everything is written in one transaction of the destination, committed at the
end; `dry_run` rolls it back instead, so the report of a dry run is what a real run would do.
The source is only read, in one REPEATABLE READ transaction (a consistent snapshot). Search
covers the copied messages as it does any other: the database's own triggers and FULLTEXT
index see every insert (migrations 0001 and 0004).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa

from discux.agents.styles import DEFAULT_STYLE
from discux.auth.accounts import normalize_email
from discux.errors import DiscuxError
from discux.extensions import db
from discux.ids import new_id, sha256_hex, utcnow, uuid7_at
from discux.messages.rendering import HEX_COLOR, render_markdown
from discux.messages.service import SYSTEM_SENDER
from discux.models import (
    PLANS,
    ROLES,
    STYLES,
    Account,
    Agent,
    ImportedRow,
    Message,
    MessageMention,
    Room,
    RoomAgent,
    RoomInvitation,
    RoomParticipant,
    RoomSettings,
    User,
)
from discux.models.agents import agent_name_key

ORIGIN = "discux3"
# The source columns read, per table: a database without them is not a Discux3 database.
SOURCE_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("id", "name", "email", "emailVerified", "image", "avatar_url", "subscription",
              "max_agents", "max_rooms", "max_messages_per_month", "last_active", "created_at",
              "updated_at"),
    "accounts": ("id", "userId", "type", "provider", "providerAccountId", "token_type", "scope"),
    "agents": ("id", "name", "prompt", "emoji", "color", "style", "is_public", "usage_count",
               "created_at", "updated_at", "created_by"),
    "rooms": ("id", "name", "description", "is_active", "created_at", "updated_at",
              "created_by"),
    "room_settings": ("room_id", "max_agents", "allow_agent_creation", "auto_summarize"),
    "room_participants": ("id", "room_id", "user_id", "role", "joined_at"),
    "room_agents": ("id", "room_id", "agent_id", "added_by", "added_at"),
    "messages": ("id", "room_id", "content", "type", "sender_id", "processing_time",
                 "agent_confidence", "context_length", "timestamp"),
    "message_mentions": ("id", "message_id", "mentioned_agent_id"),
    "room_invitations": ("id", "room_id", "invited_by", "invite_token", "email", "expires_at",
                         "used_at", "created_at"),
}
# Prisma maps NextAuth's models to `users`, `accounts`…; installs that kept the adapter's
# default names have `User`, `Account`… (the same columns).
TABLE_SPELLINGS = {"users": ("users", "User"), "accounts": ("accounts", "Account"),
                   "sessions": ("sessions", "Session"),
                   "verification_tokens": ("verification_tokens", "VerificationToken")}
# Discux3 tables left behind on purpose, and why (shown in the report).
NOT_COPIED = {
    "sessions": "people sign in again",
    "verification_tokens": "Discux3 email sign-in links do not work here",
    "discussions": "Discux keeps no discussion state between replies",
    "vector_mappings": "Discux searches the messages themselves",
}
# Discux3's TRUTH_TELLER (blunt, no flattery) is closest to Discux's direct style.
STYLE_FROM_DISCUX3 = {style.upper(): style for style in STYLES} | {"TRUTH_TELLER": "direct"}
MESSAGE_BATCH = 500
DEFAULT_EMOJI = "🤖"
DEFAULT_COLOR = "#3B82F6"
# What the models hold: longer source values are cut (and the report says so).
AGENT_NAME_MAX = 100
ROOM_NAME_MAX = 200
EMOJI_MAX = 16
# The first line Discux3 wrote into agent replies. The name may itself hold colons, so it
# takes what is between the id and the last three fields.
AGENT_LINE = re.compile(
    r"\A\[AGENT:(?P<id>[^:\]\n]*):(?P<name>[^\]\n]*):(?P<emoji>[^:\]\n]*):"
    r"(?P<color>[^:\]\n]*):(?P<style>[^:\]\n]*)\][ \t]*(?:\r?\n|\Z)"
)


class ImportFailed(DiscuxError):
    """The source cannot be read as a Discux3 database; nothing was written."""


@dataclass
class TableReport:
    copied: int = 0
    already: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)


@dataclass
class ImportReport:
    source: str
    dry_run: bool
    tables: dict[str, TableReport] = field(default_factory=dict)
    not_copied: dict[str, tuple[int, str]] = field(default_factory=dict)

    def table(self, name: str) -> TableReport:
        return self.tables.setdefault(name, TableReport())

    def text(self) -> str:
        """The report printed at the end of `flask discux3 import`."""
        done = "Dry run: nothing was written." if self.dry_run else "Done."
        lines = [f"Discux3 import from {self.source}. {done}"]
        for name, counts in self.tables.items():
            skipped = sum(counts.skipped.values())
            lines.append(f"  {name:<20} copied {counts.copied}, already there {counts.already}, "
                         f"skipped {skipped}")
            lines += [f"      skipped, {why}: {n}" for why, n in sorted(counts.skipped.items())]
            lines += [f"      {why}: {n}" for why, n in sorted(counts.notes.items())]
        for name, (count, why) in self.not_copied.items():
            lines.append(f"  {name:<20} not copied ({count}): {why}")
        return "\n".join(lines)


def import_discux3(source_url: str, *, dry_run: bool = False) -> ImportReport:
    """Copy the Discux3 database at `source_url` into this one (or only report, `dry_run`).

    Raises ImportFailed, with nothing written, for a bad URL, a source that cannot be reached
    or is not a Discux3 database, or a destination not migrated to this version.
    """
    engine = source_engine(source_url)
    report = ImportReport(_shown(engine.url), dry_run)
    if not sa.inspect(db.engine).has_table(ImportedRow.__tablename__):
        raise ImportFailed("This Discux database is not up to date: run `flask db upgrade` "
                           "first, then import.")
    try:
        with engine.connect() as source:
            _Copy(source, check_schema(source), report).run()
        if dry_run:
            db.session.rollback()
        else:
            db.session.commit()
    except sa.exc.OperationalError as error:
        db.session.rollback()
        raise ImportFailed(f"Reading the Discux3 database failed: {_reason(error)}") from None
    except BaseException:
        db.session.rollback()
        raise
    finally:
        engine.dispose()
    return report


def source_engine(source_url: str) -> sa.Engine:
    """An engine on the Discux3 database; Discux3's own `mysql://…` DATABASE_URL will do."""
    try:
        url = sa.engine.make_url(source_url.strip())
    except sa.exc.ArgumentError:
        raise ImportFailed(
            "SOURCE_URL is not a database URL. Give the one Discux3 ran with, such as "
            "mysql://user:password@host:3306/discux3.") from None
    if url.get_backend_name() not in ("mysql", "mariadb") or not url.database:
        raise ImportFailed(
            f"SOURCE_URL must name a MySQL or MariaDB database, such as "
            f"mysql://user:password@host:3306/discux3 (got "
            f"{url.render_as_string(hide_password=True)}).")
    if url.get_driver_name() in ("mysqldb", "pymysql", "mariadbconnector"):
        url = url.set(drivername="mysql+pymysql")
    # Prisma's URLs may carry options only Prisma reads (connection_limit, sslaccept…).
    url = url.set(query={key: value for key, value in url.query.items() if key == "charset"})
    engine = sa.create_engine(url.update_query_dict({"charset": "utf8mb4"}),
                              isolation_level="REPEATABLE READ", poolclass=sa.pool.NullPool,
                              connect_args={"connect_timeout": 10})
    try:
        engine.connect().close()
    except sa.exc.DBAPIError as error:
        engine.dispose()
        raise ImportFailed(f"Cannot reach the Discux3 database at {_shown(url)}: "
                           f"{_reason(error)}") from None
    return engine


def _shown(url: sa.engine.URL) -> str:
    """The URL for messages: no password, no driver or options the user did not write."""
    where = f"{url.host}:{url.port or 3306}/{url.database}"
    return f"mysql://{url.username}@{where}" if url.username else f"mysql://{where}"


def _reason(error: sa.exc.DBAPIError) -> str:
    args = getattr(error.orig, "args", ())
    return str(args[1] if len(args) > 1 else error.orig)


def check_schema(source: sa.Connection) -> dict[str, str]:
    """Each Discux3 table's name in the source; ImportFailed unless every table and column read
    is there."""
    inspector = sa.inspect(source)
    tables = set(inspector.get_table_names())
    if "alembic_version" in tables:
        raise ImportFailed("This is a Discux database, not a Discux3 one: move it with "
                           "`flask discux backup` and `flask discux restore` instead.")
    names = {name: next((spelling for spelling in TABLE_SPELLINGS.get(name, (name,))
                         if spelling in tables), name)
             for name in (*SOURCE_COLUMNS, *NOT_COPIED)}
    missing_tables = [name for name in SOURCE_COLUMNS if names[name] not in tables]
    if missing_tables:
        raise ImportFailed(
            f"This is not a Discux3 database: it has no {', '.join(missing_tables)} "
            f"table{'s' if len(missing_tables) > 1 else ''}.")
    for name, wanted in SOURCE_COLUMNS.items():
        columns = {column["name"] for column in inspector.get_columns(names[name])}
        missing = [column for column in wanted if column not in columns]
        if missing:
            raise ImportFailed(f"This is not a Discux3 database: its {names[name]} table has "
                               f"no {', '.join(missing)} column.")
    return {name: spelling for name, spelling in names.items() if spelling in tables}


def _moment(value: datetime | int | None) -> datetime | None:
    """A source time as naive UTC: DATETIME(3) as it is, epoch milliseconds (the BIGINT
    columns of older Discux3 tables) converted, 0 as unknown."""
    if isinstance(value, datetime) or value is None:
        return value
    if not value:
        return None
    return datetime.fromtimestamp(int(value) / 1000, UTC).replace(tzinfo=None)


def _epoch_ms(value: datetime | int | None) -> int:
    moment = _moment(value)
    return int(moment.replace(tzinfo=UTC).timestamp() * 1000) if moment else 0


def _cut(text: str | None, limit: int, counts: TableReport, what: str) -> str:
    text = (text or "").strip()
    if len(text) > limit:
        counts.notes[f"{what} cut to {limit} characters"] += 1
        return text[:limit]
    return text


def strip_agent_line(content: str) -> tuple[str, dict[str, str] | None]:
    """An agent reply's text without Discux3's `[AGENT:…]` first line, and that line's fields."""
    found = AGENT_LINE.match(content)
    if found is None:
        return content, None
    return content[found.end():].lstrip("\r\n"), found.groupdict()


class _Copy:
    """One run: reads the source table by table and writes the destination in dependency order."""

    def __init__(self, source: sa.Connection, tables: dict[str, str],
                 report: ImportReport) -> None:
        self.source = source
        self.tables = tables
        self.report = report
        self.known: dict[tuple[str, str], str] = {
            (row.source_table, row.source_id): row.target_id
            for row in db.session.execute(sa.select(ImportedRow).where(ImportedRow.origin == ORIGIN))
            .scalars()
        }
        self.new_mappings: list[dict] = []
        for table in SOURCE_COLUMNS:  # the report lists them in this order
            if table != "room_settings":
                report.table(table)
        self.gone = self._deleted_since()
        self.agent_looks: dict[str, dict] = {}  # target agent id → its name, emoji, color
        self.display_names: dict[str, str] = {}  # target user id → name shown on messages

    def run(self) -> None:
        self.users()
        self.accounts()
        self.agents()
        self.rooms()
        self.participants()
        self.room_agents()
        self.messages()
        self.invitations()
        self._flush_mappings()
        for name, why in NOT_COPIED.items():
            if name in self.tables:
                count = self.source.scalar(sa.text(f"SELECT COUNT(*) FROM `{self.tables[name]}`"))
                self.report.not_copied[name] = (count, why)

    # ---- bookkeeping ----

    def _rows(self, table: str, order_by: str = "id") -> list[sa.RowMapping]:
        columns = ", ".join(f"`{column}`" for column in SOURCE_COLUMNS[table])
        return list(self.source.execute(
            sa.text(f"SELECT {columns} FROM `{self.tables[table]}` ORDER BY {order_by}"))
            .mappings())

    def _deleted_since(self) -> set[tuple[str, str]]:
        """Source rows imported before whose Discux row has been deleted since."""
        gone = set()
        for table, model in (("users", User), ("agents", Agent), ("rooms", Room),
                             ("messages", Message)):
            gone.update((table, source_id) for source_id in db.session.scalars(
                sa.select(ImportedRow.source_id).where(
                    ImportedRow.origin == ORIGIN, ImportedRow.source_table == table,
                    ~sa.exists().where(model.id == ImportedRow.target_id))))
        return gone

    def target(self, table: str, source_id: str | None) -> str | None:
        """The Discux id of a source row imported (now or before) and still there."""
        if source_id is None or (table, source_id) in self.gone:
            return None
        return self.known.get((table, source_id))

    def _remember(self, table: str, source_id: str, target_id: str) -> None:
        self.known[(table, source_id)] = target_id
        self.new_mappings.append({"origin": ORIGIN, "source_table": table,
                                  "source_id": source_id, "target_id": target_id})

    def _flush_mappings(self) -> None:
        if self.new_mappings:
            db.session.execute(sa.insert(ImportedRow), self.new_mappings)
            self.new_mappings = []

    def _insert(self, model, rows: list[dict]) -> None:
        if rows:
            db.session.execute(sa.insert(model), rows)

    def _new(self, table: str, row: sa.RowMapping) -> bool:
        """False when this source row was imported before: counted as already there, or as
        skipped when it has been deleted in Discux since (it is not brought back)."""
        if (table, row["id"]) in self.gone:
            self.report.table(table).skipped["deleted in Discux since it was imported"] += 1
            return False
        if self.target(table, row["id"]) is not None:
            self.report.table(table).already += 1
            return False
        return True

    # ---- tables ----

    def users(self) -> None:
        counts = self.report.table("users")
        rows, copied = [], set()
        by_email = dict(db.session.execute(sa.select(User.email, User.id)).all())
        for row in self._rows("users", "created_at, id"):
            if not self._new("users", row):
                continue
            email = normalize_email(row["email"] or "")
            if not email:
                counts.skipped["no email address, which Discux signs people in by"] += 1
                continue
            existing = by_email.get(email)
            if existing is not None:
                counts.notes["joined to another Discux3 user with the same email"
                             if existing in copied else
                             "joined to the Discux user who already had that email"] += 1
                self._remember("users", row["id"], existing)
                continue
            plan = (row["subscription"] or "").lower()
            user = {
                "id": new_id(), "name": (row["name"] or "").strip()[:255] or None,
                "email": email, "email_verified": _moment(row["emailVerified"]),
                "image": row["image"], "avatar_url": row["avatar_url"],
                "subscription": plan if plan in PLANS else "free",
                "max_agents": row["max_agents"], "max_rooms": row["max_rooms"],
                "max_messages_per_month": row["max_messages_per_month"],
                "last_active": _moment(row["last_active"]) or utcnow(),
                "created_at": _epoch_ms(row["created_at"]),
                "updated_at": _epoch_ms(row["updated_at"] or row["created_at"]),
            }
            rows.append(user)
            by_email[email] = user["id"]
            copied.add(user["id"])
            self._remember("users", row["id"], user["id"])
            counts.copied += 1
        self._insert(User, rows)
        # User.display_name, without loading every user as an object.
        self.display_names = {user_id: name or email.split("@")[0] for user_id, name, email in
                              db.session.execute(sa.select(User.id, User.name, User.email))}

    def accounts(self) -> None:
        counts = self.report.table("accounts")
        rows = []
        linked = {(provider, account_id): (user_id, target_id)
                  for provider, account_id, user_id, target_id in db.session.execute(
                      sa.select(Account.provider, Account.provider_account_id, Account.user_id,
                                Account.id))}
        for row in self._rows("accounts"):
            if not self._new("accounts", row):
                continue
            user_id = self.target("users", row["userId"])
            if user_id is None:
                counts.skipped["its user was not imported"] += 1
                continue
            key = (row["provider"], row["providerAccountId"])
            if key in linked:
                linked_user, linked_account = linked[key]
                if linked_user != user_id:
                    counts.skipped["that sign-in is already linked to another Discux user"] += 1
                    continue
                counts.notes["already linked in Discux"] += 1
                self._remember("accounts", row["id"], linked_account)
                continue
            account = {"id": new_id(), "user_id": user_id, "type": row["type"],
                       "provider": row["provider"], "provider_account_id": row["providerAccountId"],
                       "token_type": row["token_type"], "scope": row["scope"]}
            rows.append(account)
            linked[key] = (user_id, account["id"])
            self._remember("accounts", row["id"], account["id"])
            counts.copied += 1
        self._insert(Account, rows)

    def agents(self) -> None:
        counts = self.report.table("agents")
        rows = []
        taken = set(db.session.execute(sa.select(Agent.created_by, Agent.name_key)))
        for row in self._rows("agents", "created_at, id"):
            if not self._new("agents", row):
                continue
            owner = self.target("users", row["created_by"])
            if owner is None:
                counts.skipped["its owner was not imported"] += 1
                continue
            name = _cut(row["name"], AGENT_NAME_MAX, counts, "names") or "Agent"
            base, number = name, 1
            while (owner, agent_name_key(name)) in taken:
                number += 1
                name = f"{base[:AGENT_NAME_MAX - 6]} ({number})"
            if number > 1:
                counts.notes["renamed, as their owner already had an agent of that name"] += 1
            taken.add((owner, agent_name_key(name)))
            style = STYLE_FROM_DISCUX3.get((row["style"] or "").upper())
            if style is None:
                counts.notes[f"of the unknown style {row['style']!r}, now {DEFAULT_STYLE}"] += 1
                style = DEFAULT_STYLE
            agent = {
                "id": new_id(), "name": name, "name_key": agent_name_key(name),
                "prompt": row["prompt"] or "", "emoji": _emoji(row["emoji"]),
                "color": _color(row["color"]), "style": style, "created_by": owner,
                "is_public": bool(row["is_public"]), "usage_count": row["usage_count"] or 0,
                "created_at": row["created_at"], "updated_at": row["updated_at"] or row["created_at"],
            }
            rows.append(agent)
            self._remember("agents", row["id"], agent["id"])
            counts.copied += 1
        self._insert(Agent, rows)
        self.agent_looks = {agent.id: {"name": agent.name, "emoji": agent.emoji,
                                       "color": agent.color}
                       for agent in db.session.execute(sa.select(Agent.id, Agent.name,
                                                                 Agent.emoji, Agent.color))}

    def rooms(self) -> None:
        counts = self.report.table("rooms")
        settings = {row["room_id"]: row for row in self._rows("room_settings", "room_id")}
        rooms, room_settings = [], []
        for row in self._rows("rooms", "created_at, id"):
            if not self._new("rooms", row):
                continue
            owner = self.target("users", row["created_by"])
            if owner is None:
                counts.skipped["its creator was not imported"] += 1
                continue
            room = {"id": new_id(), "name": _cut(row["name"], ROOM_NAME_MAX, counts, "names"),
                    "description": row["description"], "created_by": owner,
                    "is_active": bool(row["is_active"]), "created_at": row["created_at"],
                    "updated_at": row["updated_at"] or row["created_at"]}
            rooms.append(room)
            chosen = settings.get(row["id"])
            room_settings.append({"room_id": room["id"]} | ({
                "max_agents": chosen["max_agents"],
                "allow_agent_creation": bool(chosen["allow_agent_creation"]),
                "auto_summarize": bool(chosen["auto_summarize"]),
            } if chosen else {}))
            if chosen is None:
                counts.notes["without settings, given Discux's defaults"] += 1
            self._remember("rooms", row["id"], room["id"])
            counts.copied += 1
        self._insert(Room, rooms)
        self._insert(RoomSettings, room_settings)

    def participants(self) -> None:
        counts = self.report.table("room_participants")
        members = set(db.session.execute(
            sa.select(RoomParticipant.room_id, RoomParticipant.user_id)))
        rows = []
        for row in self._rows("room_participants", "joined_at, id"):
            if not self._new("room_participants", row):
                continue
            room_id, user_id = self.target("rooms", row["room_id"]), self.target("users",
                                                                                row["user_id"])
            if room_id is None or user_id is None:
                counts.skipped["its room or user was not imported"] += 1
                continue
            if (room_id, user_id) in members:
                counts.skipped["the same person, under two Discux3 accounts"] += 1
                continue
            role = (row["role"] or "").lower()
            if role not in ROLES:
                counts.notes[f"of the unknown role {row['role']!r}, now member"] += 1
                role = "member"
            participant = {"id": new_id(), "room_id": room_id, "user_id": user_id,
                           "role": role, "joined_at": row["joined_at"]}
            rows.append(participant)
            members.add((room_id, user_id))
            self._remember("room_participants", row["id"], participant["id"])
            counts.copied += 1
        self._insert(RoomParticipant, rows)

    def room_agents(self) -> None:
        counts = self.report.table("room_agents")
        creators = dict(db.session.execute(sa.select(Room.id, Room.created_by)).all())
        rows = []
        for row in self._rows("room_agents", "added_at, id"):
            if not self._new("room_agents", row):
                continue
            room_id, agent_id = self.target("rooms", row["room_id"]), self.target("agents",
                                                                                 row["agent_id"])
            if room_id is None or agent_id is None:
                counts.skipped["its room or agent was not imported"] += 1
                continue
            added_by = self.target("users", row["added_by"]) or creators[room_id]
            room_agent = {"id": new_id(), "room_id": room_id, "agent_id": agent_id,
                          "added_by": added_by, "added_at": row["added_at"]}
            rows.append(room_agent)
            self._remember("room_agents", row["id"], room_agent["id"])
            counts.copied += 1
        self._insert(RoomAgent, rows)

    def messages(self) -> None:
        mentions: dict[str, list[sa.RowMapping]] = {}
        mention_counts = self.report.table("message_mentions")
        for row in self._rows("message_mentions"):
            mentions.setdefault(row["message_id"], []).append(row)
        counts = self.report.table("messages")
        last_id: str | None = None
        columns = ", ".join(f"`{column}`" for column in SOURCE_COLUMNS["messages"])
        stream = self.source.execution_options(yield_per=MESSAGE_BATCH).execute(
            sa.text(f"SELECT {columns} FROM `{self.tables['messages']}` "
                    "ORDER BY `timestamp`, `id`")).mappings()
        for batch in _batches(stream, MESSAGE_BATCH):
            messages, message_mentions = [], []
            for row in batch:
                if not self._new("messages", row):
                    for mention in mentions.get(row["id"], ()):
                        self._new("message_mentions", mention)
                    continue
                room_id = self.target("rooms", row["room_id"])
                if room_id is None:
                    counts.skipped["its room is not in Discux"] += 1
                message = self._message(row, room_id, counts) if room_id else None
                if message is None:
                    if row["id"] in mentions:
                        mention_counts.skipped["its message was not copied"] += len(
                            mentions[row["id"]])
                    continue
                message["id"] = last_id = uuid7_at(row["timestamp"], last_id)
                messages.append(message)
                self._remember("messages", row["id"], message["id"])
                counts.copied += 1
                for mention in mentions.get(row["id"], ()):
                    agent_id = self.target("agents", mention["mentioned_agent_id"])
                    if agent_id is None:
                        mention_counts.skipped["the agent it names was not imported"] += 1
                        continue
                    message_mentions.append({"id": new_id(), "message_id": message["id"],
                                             "mentioned_agent_id": agent_id})
                    self._remember("message_mentions", mention["id"], message_mentions[-1]["id"])
                    mention_counts.copied += 1
            self._insert(Message, messages)
            self._insert(MessageMention, message_mentions)
            self._flush_mappings()

    def _message(self, row: sa.RowMapping, room_id: str, counts: TableReport) -> dict | None:
        kind = (row["type"] or "").lower()
        content = row["content"] or ""
        sender: dict = {}
        if kind == "user":
            sender_id = self.target("users", row["sender_id"])
            if sender_id is None:
                counts.notes["sent by someone no longer in Discux3 (kept, unnamed)"] += 1
                sender_id = row["sender_id"]
            sender = {"sender_name": self.display_names.get(sender_id)}
        elif kind == "agent":
            content, line = strip_agent_line(content)
            sender_id = (self.target("agents", row["sender_id"])
                         or self.target("agents", (line or {}).get("id")))
            agent = self.agent_looks.get(sender_id, {})
            if line is not None:
                counts.notes["agent replies whose [AGENT:…] first line was taken off"] += 1
            if sender_id is None:
                counts.notes["agent replies of an agent no longer in Discux3 (kept, with its name)"] += 1
                sender_id = row["sender_id"]
            line = line or {}
            sender = {"sender_name": line.get("name") or agent.get("name"),
                      "sender_emoji": _emoji(line.get("emoji") or agent.get("emoji")),
                      "sender_color": _color(line.get("color") or agent.get("color"))}
        elif kind == "system":
            sender_id, sender = SYSTEM_SENDER, {"sender_name": "Discux"}
        else:
            counts.skipped[f"unknown message type {row['type']!r}"] += 1
            return None
        if not content.strip():
            counts.skipped["empty once the [AGENT:…] line was taken off"] += 1
            return None
        return {
            "room_id": room_id, "content": content, "content_html": render_markdown(content),
            "type": kind, "sender_id": sender_id, "timestamp": row["timestamp"],
            "processing_time": _number(row["processing_time"]),
            "agent_confidence": _number(row["agent_confidence"]),
            "context_length": row["context_length"], "status": "complete",
        } | sender

    def invitations(self) -> None:
        counts = self.report.table("room_invitations")
        rows = []
        for row in self._rows("room_invitations", "created_at, id"):
            if not self._new("room_invitations", row):
                continue
            room_id = self.target("rooms", row["room_id"])
            if room_id is None:
                counts.skipped["its room is not in Discux"] += 1
                continue
            invited_by = self.target("users", row["invited_by"])
            if invited_by is None:
                counts.skipped["whoever sent it was not imported"] += 1
                continue
            invitation = {
                "id": new_id(), "room_id": room_id, "invited_by": invited_by,
                # Discux keeps only the hash of a link's token; the old link still works.
                "invite_token": sha256_hex(row["invite_token"]),
                "email": normalize_email(row["email"]) if row["email"] else None,
                "expires_at": row["expires_at"], "used_at": row["used_at"],
                "created_at": row["created_at"],
            }
            rows.append(invitation)
            self._remember("room_invitations", row["id"], invitation["id"])
            counts.copied += 1
        self._insert(RoomInvitation, rows)


def _batches(rows: Iterable, size: int) -> Iterator[list]:
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _emoji(value: str | None) -> str:
    value = (value or "").strip()
    return value if value and len(value) <= EMOJI_MAX else DEFAULT_EMOJI


def _color(value: str | None) -> str:
    return value if value and HEX_COLOR.match(value) else DEFAULT_COLOR


def _number(value) -> float | None:
    return float(value) if value is not None else None
