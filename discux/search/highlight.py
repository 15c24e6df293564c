"""Snippets of a message with the searched terms marked, built from its plain text.

The text is escaped piece by piece and only our own `<mark>` tags are added, so whatever HTML
a message contains shows as text. Matching folds case and diacritics like the engines do.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from markupsafe import Markup, escape

from discux.search.query import ParsedQuery, Term, fold

SNIPPET_CHARS = 240
_SPACES = re.compile(r"\s+")
_LETTER = r"[^\W_]"


def term_pattern(term: Term) -> str:
    """A Python regex for `term` over folded text, bounded by non-letters like a tokenizer."""
    words = [re.escape(fold(word)) for word in term.words]
    body = r"[\W_]+".join(words)
    end = "" if term.kind == "prefix" else rf"(?!{_LETTER})"
    return rf"(?<!{_LETTER}){body}{end}"


def matcher(query: ParsedQuery) -> re.Pattern[str]:
    patterns = sorted((term_pattern(t) for t in query.terms), key=len, reverse=True)
    return re.compile("|".join(patterns))


def _folded_with_offsets(text: str) -> tuple[str, Sequence[int]]:
    """`text` folded, and for each folded character the index of the character it came from."""
    if text.isascii():  # most messages: folding is lower-casing, one character for one
        return text.lower(), range(len(text))
    folded: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        decomposed = unicodedata.normalize("NFKD", char)
        piece = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
        folded.append(piece)
        origin.extend([index] * len(piece))
    return "".join(folded), origin


def match_spans(text: str, pattern: re.Pattern[str]) -> list[tuple[int, int]]:
    """Where `pattern` matches in `text`, as (start, end) offsets into the original text."""
    folded, origin = _folded_with_offsets(text)
    spans = []
    for found in pattern.finditer(folded):
        if found.end() > found.start():
            spans.append((origin[found.start()], origin[found.end() - 1] + 1))
    return spans


def snippet(content: str, query: ParsedQuery, width: int = SNIPPET_CHARS) -> Markup:
    """Up to `width` characters of `content` around its first match, terms in <mark>."""
    spans = match_spans(content, matcher(query))
    start = 0
    if spans and spans[0][1] > width:
        # Start a little before the first match, at a word boundary.
        start = max(0, spans[0][0] - width // 4)
        space = content.rfind(" ", 0, start + 1)
        start = space + 1 if space > start - 20 else start
    end = min(len(content), start + width)
    if end < len(content):
        space = content.rfind(" ", start + width // 2, end)
        end = space if space > 0 else end
    parts: list[str] = ["…" if start > 0 else ""]
    cursor = start
    for span_start, span_end in spans:
        if span_end <= start or span_start >= end:
            continue
        span_start, span_end = max(span_start, start), min(span_end, end)
        parts.append(_plain(content[cursor:span_start]))
        parts.append(f"<mark>{_plain(content[span_start:span_end])}</mark>")
        cursor = span_end
    parts.append(_plain(content[cursor:end]))
    parts.append("…" if end < len(content) else "")
    return Markup("".join(parts))


def _plain(text: str) -> str:
    return str(escape(_SPACES.sub(" ", text)))
