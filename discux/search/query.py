"""Turning what a user typed into search terms both engines understand, and nothing more.

The parser is the safety layer: a term is only ever a run of letters and digits, so no quote,
operator, column filter, wildcard or backslash a user types can reach FTS5, MATCH … AGAINST,
REGEXP or LIKE as syntax. Everything the engines see is rebuilt from these terms.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from discux.errors import DiscuxError

MAX_QUERY_CHARS = 200
MAX_TERMS = 10
MIN_WORD_CHARS = 2

# A word is a run of letters and digits (underscore and marks separate words, as in FTS5's
# unicode61 tokenizer); a phrase is text between double quotes; `*` right after a word makes
# it a prefix. Anything else is a separator.
_PHRASE_OR_WORD = re.compile(r'"([^"]*)"?|([^\W_]+)(\*?)')
WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class Term:
    """One thing every result must contain: a word, a prefix (`plan*`) or a phrase."""

    kind: str  # "word" | "prefix" | "phrase"
    words: tuple[str, ...]

    @property
    def text(self) -> str:
        joined = " ".join(self.words)
        return {"word": joined, "prefix": f"{joined}*", "phrase": f'"{joined}"'}[self.kind]


@dataclass(frozen=True)
class ParsedQuery:
    text: str
    terms: tuple[Term, ...]

    def __str__(self) -> str:
        return " ".join(term.text for term in self.terms)


def fold(text: str) -> str:
    """Lower case without diacritics ("Café" → "cafe"), as the FTS5 tokenizer and the
    MySQL collation compare."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def parse_query(text: str | None) -> ParsedQuery:
    """The terms in `text`; raises DiscuxError (field "q") when nothing searchable is left."""
    text = unicodedata.normalize("NFKC", (text or "").strip())
    if not text:
        raise DiscuxError("Type a word or phrase to search for.", field="q")
    if len(text) > MAX_QUERY_CHARS:
        raise DiscuxError(
            f"Keep searches under {MAX_QUERY_CHARS} characters.", field="q"
        )
    terms: list[Term] = []
    saw_word = False
    for match in _PHRASE_OR_WORD.finditer(text):
        phrase, word, star = match.groups()
        if word is not None:
            saw_word = True
            if len(word) < MIN_WORD_CHARS:
                continue  # "a", "I": in nearly every message, and below FULLTEXT's reach
            terms.append(Term("prefix" if star else "word", (word.lower(),)))
        else:
            words = tuple(w.lower() for w in WORD.findall(phrase))
            saw_word = saw_word or bool(words)
            if len(words) > 1:
                terms.append(Term("phrase", words))
            elif words and len(words[0]) >= MIN_WORD_CHARS:
                terms.append(Term("word", words))
    terms = list(dict.fromkeys(terms))  # the same term twice adds nothing
    if not terms:
        if saw_word:
            raise DiscuxError(
                "Search for words of at least two letters or digits, like “AI” or “budget”.",
                field="q",
            )
        raise DiscuxError(
            "Search for words: letters or digits. Punctuation, symbols and emoji on their own "
            "can't be searched.",
            field="q",
        )
    if len(terms) > MAX_TERMS:
        raise DiscuxError(
            f"Use at most {MAX_TERMS} words or phrases in one search.", field="q"
        )
    return ParsedQuery(text, tuple(terms))
