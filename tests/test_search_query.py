"""What a typed search becomes: terms only, never engine syntax; and snippets that mark the
terms in escaped text. Pure functions, no database."""

from __future__ import annotations

import re

import pytest

from discux.errors import DiscuxError
from discux.search.highlight import snippet
from discux.search.mysql import FulltextSettings, pcre_pattern, plan_for
from discux.search.query import Term, parse_query
from discux.search.sqlite import fts_expression


def terms(text: str) -> list[tuple[str, tuple[str, ...]]]:
    return [(term.kind, term.words) for term in parse_query(text).terms]


def test_words_phrases_and_prefixes_are_told_apart():
    assert terms('Budget "launch plan" plan* AI') == [
        ("word", ("budget",)), ("phrase", ("launch", "plan")), ("prefix", ("plan",)),
        ("word", ("ai",)),
    ]


def test_one_letter_words_are_dropped_but_two_letter_words_stay():
    assert terms("a UX review") == [("word", ("ux",)), ("word", ("review",))]


@pytest.mark.parametrize(("typed", "message"), [
    ("", "Type a word or phrase"),
    ("   ", "Type a word or phrase"),
    ("a", "at least two letters"),
    ("a b c", "at least two letters"),
    ("!?.,;:", "Punctuation, symbols and emoji"),
    ('"', "Punctuation, symbols and emoji"),
    ("*", "Punctuation, symbols and emoji"),
    ("🚀🤖", "Punctuation, symbols and emoji"),
    ("x" * 201, "under 200 characters"),
    (" ".join(f"word{i}" for i in range(11)), "at most 10"),
])
def test_nothing_searchable_gets_a_helpful_message(typed, message):
    with pytest.raises(DiscuxError) as raised:
        parse_query(typed)
    assert message in raised.value.message
    assert raised.value.field == "q"


@pytest.mark.parametrize("hostile", [
    '"', "AI OR", "NEAR(a b)", "content:x", "-", "+a -b", "a'); DROP TABLE messages;--",
    "\\", "%_", "((", "plan* OR NOT budget", 'x" OR "y', "col:umn^2", "ai AND", "😀 emoji",
    "naïve café", "日本語 テスト", "\x00nul",
])
def test_hostile_input_becomes_plain_words(hostile):
    try:
        parsed = parse_query(hostile)
    except DiscuxError:
        return  # nothing searchable: a message, which the page shows
    for term in parsed.terms:
        for word in term.words:
            assert re.fullmatch(r"[^\W_]+", word), word
    expression = fts_expression(parsed)
    # Each term is one quoted FTS5 string: no bare operator, column filter or paren survives.
    assert re.fullmatch(r'("[^"\\()*:^]+"\*? ?)+', expression + " "), expression


def test_fulltext_plan_sends_only_indexed_words_to_the_index():
    settings = FulltextSettings()
    plan = plan_for(parse_query('AI strategy the "launch plan" plan*'), settings)
    # A phrase's words narrow; the REGEXP checks their order (InnoDB's own check is slower).
    assert plan.boolean == "+strategy +launch +plan +plan*"
    assert plan.residual == (pcre_pattern(Term("word", ("ai",))),
                             pcre_pattern(Term("word", ("the",))),
                             pcre_pattern(Term("phrase", ("launch", "plan"))))
    assert plan.unindexed == ("ai", "the")
    assert len(plan.every_term) == 5


def test_two_letter_words_go_to_their_own_index_and_prefixes_do_not():
    plan = plan_for(parse_query('AI "UX of QA" ux* the'), FulltextSettings())
    assert plan.boolean is None
    assert plan.short == ("ai", "ux", "of", "qa")
    # "AI" is answered by the index alone; the phrase, the prefix and the stopword are checked.
    assert plan.short_residual == tuple(pcre_pattern(term) for term in (
        Term("phrase", ("ux", "of", "qa")), Term("prefix", ("ux",)), Term("word", ("the",))))


def test_a_query_of_short_words_has_no_fulltext_part():
    plan = plan_for(parse_query("AI UX QA"), FulltextSettings())
    assert plan.boolean is None
    assert plan.unindexed == ("ai", "ux", "qa")


def test_a_phrase_with_a_short_word_is_narrowed_by_its_long_words_and_checked_by_regexp():
    plan = plan_for(parse_query('"AI strategy" "state of the art"'), FulltextSettings())
    assert plan.boolean == "+strategy +state +art"
    assert plan.residual == (pcre_pattern(Term("phrase", ("ai", "strategy"))),
                             pcre_pattern(Term("phrase", ("state", "of", "the", "art"))))


def test_regexp_patterns_ignore_accents_and_need_word_boundaries():
    pattern = pcre_pattern(Term("word", ("café",)))
    assert pattern.startswith("(?i)(?<![\\p{L}\\p{N}])[cç")
    assert "[aàá" in pattern and "[eèé" in pattern
    assert pattern.endswith("(?![\\p{L}\\p{N}])")
    assert "\\p" in pcre_pattern(Term("prefix", ("ux",)))


def test_snippet_escapes_html_and_marks_only_the_term():
    html = str(snippet("<script>alert('AI')</script> and more about AI", parse_query("AI")))
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert html.count("<mark>") == 2
    assert "<mark>AI</mark>" in html


def test_snippet_marks_words_not_parts_of_words_and_folds_accents():
    html = str(snippet("Said the AI to the Café owner: paid", parse_query("ai cafe")))
    assert html.count("<mark>") == 2
    assert "<mark>AI</mark>" in html and "<mark>Café</mark>" in html


def test_snippet_marks_prefixes_and_phrases():
    html = str(snippet("Planning the launch plan, planned.", parse_query('plan* "launch plan"')))
    assert "<mark>Plan</mark>ning" in html
    assert "<mark>launch plan</mark>" in html


def test_snippet_of_a_long_message_starts_near_the_match():
    content = "filler " * 200 + "the needle is here " + "tail " * 100
    html = str(snippet(content, parse_query("needle")))
    assert html.startswith("…") and html.endswith("…")
    assert "<mark>needle</mark>" in html
    assert len(html) < 400
