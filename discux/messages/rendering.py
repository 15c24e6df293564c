"""Markdown → safe HTML (once, at write time) and the one way a message is shown.

`MessageView` is what `templates/messages/_message.html` reads, built either from a database
row (page, "load earlier", socket replay) or from the JSON payload of a broker event (pushed
frames), so every place renders the same markup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

from discux.extensions import db
from discux.models import Message

# Only what Markdown produces; no attribute that can run script or drive htmx survives.
ALLOWED_TAGS = {
    "p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "blockquote", "ul", "ol", "li",
    "a", "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "span",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}
# Pygments token classes are the only classes kept (on <span>), so users cannot borrow app classes.
ALLOWED_CLASSES = {"span": {name for name in STANDARD_TYPES.values() if name}}
URL_SCHEMES = {"http", "https", "mailto"}

_FORMATTER = HtmlFormatter(nowrap=True)
HEX_COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")


def _highlight(code: str, language: str, _attrs) -> str:
    """Pygments spans for a fenced block whose language Pygments knows; else markdown-it escapes."""
    if not language:
        return ""
    try:
        lexer = get_lexer_by_name(language.split()[0], stripall=False)
    except ClassNotFound:
        return ""
    return highlight(code, lexer, _FORMATTER)


# commonmark with raw HTML off (escaped, not passed through), no auto-linking, and a newline
# typed in the composer kept as a line break, as chat users expect.
_markdown = (
    MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False, "breaks": True,
                              "highlight": _highlight})
    .enable(["table", "strikethrough"])
    # Remote images would leak readers' addresses to any host: `![a](u)` stays a plain link.
    .disable("image")
)


# What could make markdown-it produce anything but one paragraph of escaped text: inline syntax
# (backslash, backtick, * _ ~ [ ] ( ) ! < &), block syntax (# > - + = |, or "1." / "1)" opening
# a list), and line breaks or tabs. Most chat lines contain none of it.
_MARKDOWN_SYNTAX = re.compile(r"[\\`*_~\[\]()!<>&#\-+=|]|^\d+[.)]")


def is_plain_text(text: str) -> bool:
    """True when markdown-it would render `text` as exactly `<p>escaped text</p>`: one line of
    printable characters, no surrounding space, and nothing Markdown reads as syntax."""
    return (bool(text) and text.isprintable() and text == text.strip()
            and _MARKDOWN_SYNTAX.search(text) is None)


def render_markdown(text: str) -> str:
    """Markdown source → sanitized HTML, ready to store in `messages.content_html`."""
    if is_plain_text(text):
        # What markdown-it would return, without parsing (a test checks it is identical).
        return sanitize_html(f"<p>{escapeHtml(text)}</p>\n")
    return sanitize_html(_markdown.render(text))


_cleaner = nh3.Cleaner(
    tags=ALLOWED_TAGS,
    attributes=ALLOWED_ATTRIBUTES,
    allowed_classes=ALLOWED_CLASSES,
    url_schemes=URL_SCHEMES,
    link_rel="noopener nofollow",
    strip_comments=True,
)


def sanitize_html(html: str) -> str:
    """Allowlist-clean HTML from Markdown (users' and agents' alike); links get rel=noopener."""
    return _cleaner.clean(html)


@dataclass
class MessageView:
    """A message as the templates see it, from a row or from an event payload."""

    id: str
    room_id: str
    type: str
    sender_id: str
    sender_name: str | None
    content: str
    content_html: str | None
    status: str
    timestamp: datetime | None
    sender_emoji: str | None = None
    sender_color: str | None = None
    processing_time: float | None = None
    agent_confidence: float | None = None
    context_length: int | None = None
    humans_only: bool = False
    reply_to_id: str | None = None
    mentions: list[str] = field(default_factory=list)
    # From the discussion engine's context receipt: can it be shown, and was it the demo model?
    has_receipt: bool = False
    is_demo: bool = False
    edited_at: datetime | None = None
    # A regenerated reply names the version it replaces; a replaced one, its successor.
    replaces_id: str | None = None
    replaced_by_id: str | None = None
    # The message a person's message replies to, as its quote shows it (sender, start of text).
    quote_name: str | None = None
    quote_text: str | None = None

    @classmethod
    def from_message(cls, message: Message) -> MessageView:
        quoted = (db.session.get(Message, message.reply_to_id)
                  if message.reply_to_id and message.type == "user" else None)
        return cls(
            id=message.id, room_id=message.room_id, type=message.type,
            sender_id=message.sender_id, sender_name=message.sender_name,
            content=message.content, content_html=message.content_html,
            status=message.status or "complete", timestamp=message.timestamp,
            sender_emoji=message.sender_emoji, sender_color=message.sender_color,
            processing_time=message.processing_time, agent_confidence=message.agent_confidence,
            context_length=message.context_length, humans_only=bool(message.humans_only),
            reply_to_id=message.reply_to_id,
            mentions=[m.mentioned_agent_id for m in message.mentions],
            has_receipt=bool(message.context_receipt),
            is_demo=bool(message.context_receipt and '"demo":true' in message.context_receipt),
            edited_at=message.edited_at, replaces_id=message.replaces_id,
            replaced_by_id=message.replaced_by_id,
            quote_name=quoted.sender_name or "Someone" if quoted is not None else None,
            quote_text=quote_of(quoted.content) if quoted is not None else None,
        )

    @classmethod
    def from_row(cls, row) -> MessageView:
        """From a row of `history.VIEW_COLUMNS` (what a page shows; mentions are not shown, so
        they are not read)."""
        fields = dict(row._mapping)
        fields["status"] = fields["status"] or "complete"
        for flag in ("humans_only", "has_receipt", "is_demo"):  # SQLite answers 0/1 or NULL
            fields[flag] = bool(fields[flag])
        if fields.get("quote_text") is not None:
            fields["quote_text"] = quote_of(fields["quote_text"])
        return cls(**fields)

    @classmethod
    def from_payload(cls, data: dict) -> MessageView:
        fields = dict(data)
        stamp = fields.get("timestamp")
        fields["timestamp"] = datetime.fromisoformat(stamp) if stamp else None
        edited = fields.get("edited_at")
        fields["edited_at"] = datetime.fromisoformat(edited) if edited else None
        known = cls.__dataclass_fields__
        return cls(**{key: value for key, value in fields.items() if key in known})

    def to_payload(self) -> dict:
        """The JSON shape of a message in socket events (SPEC §9 `data`)."""
        return {
            "id": self.id, "room_id": self.room_id, "type": self.type,
            "sender_id": self.sender_id, "sender_name": self.sender_name,
            "sender_emoji": self.sender_emoji, "sender_color": self.sender_color,
            "content": self.content, "content_html": self.content_html, "status": self.status,
            "timestamp": self.timestamp.isoformat(timespec="milliseconds")
            if self.timestamp else None,
            "processing_time": self.processing_time, "agent_confidence": self.agent_confidence,
            "context_length": self.context_length, "humans_only": self.humans_only,
            "reply_to_id": self.reply_to_id, "mentions": list(self.mentions),
            "has_receipt": self.has_receipt, "is_demo": self.is_demo,
            "edited_at": self.edited_at.isoformat(timespec="milliseconds")
            if self.edited_at else None,
            "replaces_id": self.replaces_id, "replaced_by_id": self.replaced_by_id,
            "quote_name": self.quote_name, "quote_text": self.quote_text,
        }

    # ---- what the partial prints (each label is read more than once per render) ----
    @cached_property
    def day(self) -> str:
        return day_of(self.timestamp)

    @cached_property
    def day_label(self) -> str:
        return day_label_of(self.timestamp)

    @cached_property
    def time_label(self) -> str:
        return f"{self.timestamp:%H:%M}" if self.timestamp else ""

    @cached_property
    def iso_time(self) -> str:
        return self.timestamp.isoformat(timespec="milliseconds") + "Z" if self.timestamp else ""

    @cached_property
    def edited_label(self) -> str:
        """"Edited Wednesday 25 November 2026, 14:05 UTC" for the "edited" tag's title."""
        if not self.edited_at:
            return ""
        return f"Edited {day_label_of(self.edited_at)}, {self.edited_at:%H:%M} UTC"

    @property
    def color(self) -> str | None:
        """The snapshot colour, only if it is a plain #RRGGBB (it lands in a style attribute)."""
        return self.sender_color if self.sender_color and HEX_COLOR.match(self.sender_color) else None

    @property
    def stats_label(self) -> str:
        """"confidence 87% · 2.4 s" for agent replies, with whichever parts are known."""
        parts = []
        if self.agent_confidence is not None:
            parts.append(f"confidence {round(float(self.agent_confidence) * 100)}%")
        if self.processing_time is not None:
            parts.append(f"{float(self.processing_time):.1f} s")
        return " · ".join(parts)


QUOTE_LENGTH = 140


_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"[*_~`#>]+")


def quote_of(text: str | None) -> str:
    """The start of a message as a reply's quote shows it: one line of its words (links as
    their text, no emphasis marks), at most QUOTE_LENGTH."""
    line = " ".join(_EMPHASIS.sub("", _LINK.sub(r"\1", text or "")).split())
    return line if len(line) <= QUOTE_LENGTH else line[: QUOTE_LENGTH - 1].rstrip() + "…"


def day_of(timestamp: datetime | None) -> str:
    """The UTC day a message belongs to, "2026-11-25"."""
    return timestamp.date().isoformat() if timestamp else ""


def day_label_of(timestamp: datetime | None) -> str:
    """The day as separators and tooltips print it, "Wednesday 25 November 2026"."""
    return f"{timestamp:%A} {timestamp.day} {timestamp:%B %Y}" if timestamp else ""
