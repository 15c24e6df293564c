"""The living room brief: decisions, open questions and action items, kept as versions.

People edit it; summaries rewrite it. The latest version is the long-term memory agents get.
"""

from __future__ import annotations

import re

import sqlalchemy as sa

from discux.errors import DiscuxError
from discux.extensions import db
from discux.locks import lock_row
from discux.messages.service import post_system_message, render_markdown
from discux.models import Room, RoomBrief, User

MAX_BRIEF_LENGTH = 8000


class BriefConflict(DiscuxError):
    """Someone saved a newer version after this edit began; `latest` is that version."""

    status = 409
    code = "conflict"

    def __init__(self, latest: RoomBrief | None):
        version = latest.version if latest else 0
        super().__init__(
            f"Someone saved version {version} of the brief while you were editing. Your text "
            "is still in the form: compare it with the newer version below, copy what you "
            "want to keep, and save again.", "content")
        self.latest = latest


def brief_versions(room_id: str, limit: int = 20) -> list[RoomBrief]:
    return list(db.session.scalars(
        sa.select(RoomBrief).where(RoomBrief.room_id == room_id)
        .order_by(RoomBrief.version.desc()).limit(limit)
    ))


def current_brief(room_id: str, *, locking: bool = False) -> RoomBrief | None:
    query = (sa.select(RoomBrief).where(RoomBrief.room_id == room_id)
             .order_by(RoomBrief.version.desc()).limit(1))
    return db.session.scalar(query.with_for_update() if locking else query)


def latest_version(room_id: str) -> int:
    """The number of the latest version, 0 before the first: what an edit form is based on."""
    brief = current_brief(room_id)
    return brief.version if brief else 0


def link_sources(content: str, refs: dict[str, str]) -> str:
    """Turn the summary's (#3) citations into links to the messages they stand for."""

    def link(match: re.Match) -> str:
        message_id = refs.get(match.group(1))
        return f"([#{match.group(1)}](#message-{message_id}))" if message_id else match.group(0)

    return re.sub(r"\(#(\d{1,4})\)", link, content)


def add_version(room: Room, content: str, *, source: str, author: User | None = None,
                upto_message_id: str | None = None,
                base_version: int | None = None) -> RoomBrief:
    """Store a new version of the brief (numbered after the latest) and announce it.

    `base_version` is the version a person's edit started from (0: none yet); when a newer one
    was saved meanwhile, BriefConflict, and nothing is written (no edit silently lost). The
    room's row lock orders concurrent saves, so two never claim the same number."""
    content = (content or "").strip()
    if not content:
        raise DiscuxError("The brief cannot be empty. Write at least one line.", "content")
    if len(content) > MAX_BRIEF_LENGTH:
        raise DiscuxError(
            f"The brief can be at most {MAX_BRIEF_LENGTH:,} characters; this one has "
            f"{len(content):,}.", "content")
    try:
        lock_row(Room, room.id)
        latest = current_brief(room.id, locking=True)
        if latest is not None and latest.content == content:
            db.session.commit()  # nothing to write: release the lock
            return latest
        if base_version is not None and base_version != (latest.version if latest else 0):
            raise BriefConflict(latest)
        brief = RoomBrief(
            room_id=room.id, version=(latest.version + 1) if latest else 1, content=content,
            content_html=render_markdown(content), source=source,
            created_by=author.id if author else None,
            upto_message_id=upto_message_id or (latest.upto_message_id if latest else None),
        )
        db.session.add(brief)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    if source == "human":
        post_system_message(
            room, f"✏️ {author.display_name if author else 'Someone'} edited the room brief "
                  f"(version {brief.version}).")
    return brief
