"""Search finds the right messages on the real database (SQLite FTS5 or MariaDB FULLTEXT):
words, phrases, prefixes, short words and stopwords, ranking, order, pages, and only ever in
the rooms the searcher is in now."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from discux.errors import DiscuxError
from discux.extensions import db
from discux.models import Message
from discux.search import mysql as mysql_search
from discux.search import sqlite as sqlite_search
from discux.search.service import RoomNotFound, search_messages
from tests.conftest import IS_MYSQL
from tests.support import search_factories as sf

FILLER = [
    "Lunch is at noon on Friday.", "Who has the keys to the storage room?",
    "Remember to water the flowers.", "Standup moves to 9:30 tomorrow.",
    "The printer on floor two is jammed again.", "Coffee machine descaled.",
    "Parking permits renew in March.", "Please review the holiday calendar.",
]


@dataclass
class Scene:
    ada: object
    bob: object
    product: str
    research: str
    secret: str
    former: str


@pytest.fixture
def scene(app, make_user) -> Scene:
    ada, bob = make_user(name="Ada"), make_user(name="Bob")
    with app.app_context():
        product = sf.room(ada.id, "Product")
        research = sf.room(bob.id, "Research")
        sf.join(research, ada.id)
        secret = sf.room(bob.id, "Secret")  # Ada never joined
        former = sf.room(bob.id, "Former team")
        sf.join(former, ada.id)
        for room_id in (product, research, secret, former):
            sf.messages(room_id, FILLER)
        sf.leave(former, ada.id)
    return Scene(ada, bob, product, research, secret, former)


def found(user, query: str, **options) -> list[str]:
    return [hit.content for hit in search_messages(user, query, **options).hits]


def test_a_word_is_found_in_every_room_of_mine_and_nowhere_else(scene, ctx):
    sf.messages(scene.product, ["The roadmap slipped a week.", "Nothing to see."])
    sf.messages(scene.research, ["Research roadmap draft attached."])
    sf.messages(scene.secret, ["Secret roadmap: acquire the competitor."])
    sf.messages(scene.former, ["Old roadmap from before Ada left."])
    assert sorted(found(scene.ada, "roadmap")) == [
        "Research roadmap draft attached.", "The roadmap slipped a week."]


def test_case_and_accents_do_not_matter(scene, ctx):
    sf.messages(scene.product, ["Meet at the Café Crème at ten.", "The cafeteria is closed."])
    assert found(scene.ada, "CAFE") == ["Meet at the Café Crème at ten."]
    assert found(scene.ada, "café", order="newest") == ["Meet at the Café Crème at ten."]


def test_a_quoted_phrase_needs_its_words_together_and_in_order(scene, ctx):
    sf.messages(scene.product, [
        "The launch plan is ready for review.", "We should plan the launch carefully.",
        "Launch, plan, and ship.",
    ])
    assert sorted(found(scene.ada, '"launch plan"')) == [
        "Launch, plan, and ship.", "The launch plan is ready for review."]


def test_a_phrase_with_short_words_and_stopwords_in_it(scene, ctx):
    sf.messages(scene.product, [
        "This is the state of the art in search.", "The art of the state is different.",
        "Our AI strategy needs work.", "Strategy for AI is missing.",
    ])
    assert found(scene.ada, '"state of the art"') == ["This is the state of the art in search."]
    assert found(scene.ada, '"AI strategy"') == ["Our AI strategy needs work."]


def test_a_prefix_matches_the_beginning_of_words(scene, ctx):
    sf.messages(scene.product, [
        "Planning starts Monday.", "It went as planned.", "The plan is simple.",
        "An airplane flew over.", "Explanation pending.",
    ])
    assert sorted(found(scene.ada, "plan*")) == [
        "It went as planned.", "Planning starts Monday.", "The plan is simple."]


@pytest.mark.parametrize("term", ["AI", "UX", "QA", "ai", "42"])
def test_two_letter_terms_are_found_as_whole_words(scene, ctx, term):
    sf.messages(scene.product, [
        f"We need {term.upper()} review before Friday.", "She said the email was sent.",
        "Quality work, quarterly.", "The UXO squad left.", "Aim high.", "Room 421 is free.",
    ])
    assert found(scene.ada, term) == [f"We need {term.upper()} review before Friday."]
    assert found(scene.ada, term, order="newest") == [
        f"We need {term.upper()} review before Friday."]


def test_short_words_combine_with_long_ones(scene, ctx):
    sf.messages(scene.product, [
        "AI roadmap for Q3.", "Roadmap without the buzzwords.", "AI everywhere.",
        "The UX roadmap is late.",
    ])
    assert found(scene.ada, "AI roadmap") == ["AI roadmap for Q3."]
    assert found(scene.ada, "roadmap UX", order="newest") == ["The UX roadmap is late."]


def test_a_short_prefix_finds_the_short_word_itself(scene, ctx):
    sf.messages(scene.product, ["UX first.", "UXR interviews done.", "Lux lighting."])
    assert sorted(found(scene.ada, "ux*")) == ["UX first.", "UXR interviews done."]


def test_a_stopword_alone_is_still_searched(scene, ctx):
    sf.messages(scene.research, ["What is the plan?", "Theme park trip.", "Other things."])
    results = found(scene.ada, "the", room_id=scene.research)
    assert "What is the plan?" in results
    assert "Theme park trip." not in results and "Other things." not in results


@pytest.mark.parametrize("term", ["budget", "AI"])
def test_a_message_with_the_term_three_times_ranks_above_one_with_it_once(scene, ctx, term):
    sf.messages(scene.product, [
        f"{term} {term} {term}: the {term} is the story of this quarter.",
        f"One mention of {term} in a sentence of similar length to the other one here.",
        f"The {term} came up twice; {term} again in this message of similar size.",
    ])
    assert found(scene.ada, term) == [
        f"{term} {term} {term}: the {term} is the story of this quarter.",
        f"The {term} came up twice; {term} again in this message of similar size.",
        f"One mention of {term} in a sentence of similar length to the other one here.",
    ]


@pytest.mark.parametrize("term", ["deploy", "QA"])
def test_newest_first_lists_matches_newest_first(scene, ctx, term):
    sf.messages(scene.product, [f"{term} number {i}" for i in range(5)])
    sf.messages(scene.research, [f"research {term} number {i}" for i in range(3)])
    sf.messages(scene.product, [f"latest {term}"])
    assert found(scene.ada, term, order="newest") == [
        f"latest {term}", "research " + f"{term} number 2", f"research {term} number 1",
        f"research {term} number 0", f"{term} number 4", f"{term} number 3",
        f"{term} number 2", f"{term} number 1", f"{term} number 0",
    ]


def walk_newest(user, query, per_page=7, **options) -> list[str]:
    seen, before = [], None
    for _ in range(100):
        results = search_messages(user, query, order="newest", before=before,
                                  per_page=per_page, **options)
        seen.extend(hit.message_id for hit in results.hits)
        if not results.next_before:
            return seen
        before = results.next_before
    raise AssertionError("pagination did not end")


def walk_ranked(user, query, per_page=7) -> list[str]:
    seen, page = [], 1
    while page:
        results = search_messages(user, query, page=page, per_page=per_page)
        seen.extend(hit.message_id for hit in results.hits)
        page = results.next_page
    return seen


@pytest.fixture(params=[1000, 30, 4], ids=["all-matches", "some", "few"])
def ranked_candidates(request, monkeypatch):
    """SQLite ranks the table's best matches first: with few, most pages need the full query."""
    monkeypatch.setattr(sqlite_search, "RANKED_CANDIDATES", request.param)


@pytest.mark.parametrize("term", ["release", "QA"])
def test_pages_hold_every_match_once_in_both_orders(scene, ctx, term, ranked_candidates):
    ids = sf.messages(scene.product, [
        f"{term} note {i}" if i % 3 else f"unrelated note {i}" for i in range(60)])
    ids += sf.messages(scene.research, [f"{term} update {i}" for i in range(12)])
    matching = [i for n, i in enumerate(ids) if n >= 60 or n % 3]
    assert walk_newest(scene.ada, term) == sorted(matching, reverse=True)
    assert sorted(walk_ranked(scene.ada, term)) == sorted(matching)


def test_the_room_filter_keeps_to_one_room(scene, ctx):
    sf.messages(scene.product, ["metrics for product"])
    sf.messages(scene.research, ["metrics for research"])
    assert found(scene.ada, "metrics", room_id=scene.research) == ["metrics for research"]
    assert found(scene.ada, "metrics", room_id=scene.product, order="newest") == [
        "metrics for product"]


@pytest.mark.parametrize("room", ["secret", "former", "unknown"])
def test_a_room_filter_outside_my_rooms_is_not_found(scene, ctx, room):
    room_id = getattr(scene, room, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
    sf.messages(scene.secret, ["metrics nobody else may read"])
    with pytest.raises(RoomNotFound):
        search_messages(scene.ada, "metrics", room_id=room_id)


def test_leaving_a_room_takes_its_messages_out_of_my_results(scene, ctx):
    sf.messages(scene.research, ["quarterly forecast"])
    assert found(scene.ada, "forecast") == ["quarterly forecast"]
    sf.leave(scene.research, scene.ada.id)
    assert found(scene.ada, "forecast") == []
    assert found(scene.ada, "forecast", order="newest") == []


def test_someone_in_no_room_finds_nothing(app, make_user, ctx):
    loner = make_user()
    results = search_messages(loner, "anything")
    assert results.hits == [] and not results.has_more and results.rooms_searched == 0


def test_messages_still_streaming_are_not_searched(scene, ctx):
    sf.messages(scene.product, ["half written answer"], status="streaming", type="agent")
    sf.messages(scene.product, ["finished answer"], type="agent")
    assert found(scene.ada, "answer") == ["finished answer"]
    assert found(scene.ada, "answer", order="newest") == ["finished answer"]


def test_hits_carry_sender_room_and_a_marked_snippet(scene, ctx):
    sf.messages(scene.research, ["The <b>AI</b> budget <script>x()</script>"],
                sender_name="Critic", sender_emoji="🎯", type="agent")
    hit = search_messages(scene.ada, "budget").hits[0]
    assert (hit.room_id, hit.room_name, hit.sender_name, hit.sender_emoji) == (
        scene.research, "Research", "Critic", "🎯")
    assert str(hit.snippet) == (
        "The &lt;b&gt;AI&lt;/b&gt; <mark>budget</mark> &lt;script&gt;x()&lt;/script&gt;")


def test_a_broken_cursor_is_refused_plainly(scene, ctx):
    with pytest.raises(DiscuxError) as raised:
        search_messages(scene.ada, "plan", order="newest", before="'; DROP TABLE x")
    assert raised.value.field == "before"


def test_relevance_pages_stop_at_the_cap(scene, ctx):
    results = search_messages(scene.ada, "flowers", page=10_000)
    assert results.page == 10  # 200 results / 20 a page


# ---- MariaDB's bounded walks, made small so a few dozen rows exercise them ----

mysql_only = pytest.mark.skipif(not IS_MYSQL, reason="MySQL/MariaDB search strategy")


@pytest.fixture
def tiny_windows(monkeypatch):
    monkeypatch.setattr(mysql_search, "FIRST_WINDOW_ROWS", 2)
    monkeypatch.setattr(mysql_search, "WINDOW_ROWS", 5)
    monkeypatch.setattr(mysql_search, "ROWS_BEFORE_FULLTEXT", 12)
    monkeypatch.setattr(mysql_search, "FALLBACK_ROWS_PER_ROOM", 20)


@mysql_only
def test_newest_first_finishes_rare_terms_from_the_fulltext_index(scene, ctx, tiny_windows):
    ids = sf.messages(scene.product, [
        "zeppelin sighting" if i in (3, 40, 77) else f"ordinary chatter {i}" for i in range(90)])
    assert walk_newest(scene.ada, "zeppelin", per_page=2) == [ids[77], ids[40], ids[3]]


@mysql_only
def test_a_common_word_fills_newest_first_pages_from_growing_windows(scene, ctx, tiny_windows):
    ids = sf.messages(scene.product, [
        "deploy done" if i % 4 == 0 else f"ordinary chatter {i}" for i in range(60)])
    ids += sf.messages(scene.research, [f"deploy in research {i}" for i in range(5)])
    ids += sf.messages(scene.secret, [f"deploy in secret {i}" for i in range(5)])
    expected = [i for n, i in enumerate(ids[:65]) if n >= 60 or n % 4 == 0]
    assert walk_newest(scene.ada, "deploy", per_page=3) == sorted(expected, reverse=True)


@mysql_only
def test_stopwords_are_walked_back_page_by_page(scene, ctx, tiny_windows):
    ids = sf.messages(scene.product, [
        "what a sketch" if i in (2, 50, 51, 88) else f"ordinary chatter {i}" for i in range(90)])
    newest = sf.messages(scene.research, ["what in research"] + [f"more {i}" for i in range(30)])
    results = search_messages(scene.ada, "what", order="newest", per_page=10)
    assert results.notice and "“what”" in results.notice
    assert results.next_before  # bounded: the rest is a click away
    assert walk_newest(scene.ada, "what", per_page=3) == [
        newest[0], ids[88], ids[51], ids[50], ids[2]]


@mysql_only
def test_ranked_stopwords_look_at_the_newest_messages_of_each_room(scene, ctx, tiny_windows):
    sf.messages(scene.product, ["with old"] + [f"filler {i}" for i in range(30)] + ["with new"])
    results = search_messages(scene.ada, "with", room_id=scene.product)
    assert [hit.content for hit in results.hits] == ["with new"]
    assert "newest 20 messages of each room" in results.notice


def test_better_matches_in_other_rooms_never_show_and_never_hide_mine(scene, ctx,
                                                                     ranked_candidates):
    # The table's best matches are all in a room Ada is not in: she still gets hers, ranked.
    sf.messages(scene.secret, [f"roadmap roadmap roadmap secret {i}" for i in range(6)])
    mine = sf.messages(scene.product, ["roadmap once, among many other words here",
                                       "roadmap and roadmap again"])
    assert walk_ranked(scene.ada, "roadmap", per_page=1) == [mine[1], mine[0]]


# ---- Two-letter words: exact over the whole history on both engines ----

def test_two_letter_words_are_found_however_far_back(scene, ctx, tiny_windows):
    ids = sf.messages(scene.product, [
        "UX sketch" if i in (2, 50, 51, 88) else f"ordinary chatter {i}" for i in range(90)])
    newest = sf.messages(scene.research, ["UX in research"] + [f"more {i}" for i in range(30)])
    sf.messages(scene.secret, ["UX secret"])
    results = search_messages(scene.ada, "UX", order="newest", per_page=10)
    assert results.notice is None and results.next_before is None
    assert walk_newest(scene.ada, "UX", per_page=3) == [
        newest[0], ids[88], ids[51], ids[50], ids[2]]
    assert sorted(walk_ranked(scene.ada, "UX", per_page=2)) == sorted(
        [newest[0], ids[88], ids[51], ids[50], ids[2]])


def test_ranked_two_letter_words_reach_old_messages(scene, ctx, tiny_windows):
    sf.messages(scene.product, ["QA old, QA again"] + [f"filler {i}" for i in range(30)]
                + ["QA new"])
    results = search_messages(scene.ada, "QA")
    assert [hit.content for hit in results.hits] == ["QA old, QA again", "QA new"]
    assert results.notice is None


def test_two_letter_words_together_and_in_a_phrase(scene, ctx):
    sf.messages(scene.product, ["AI and UX sync", "UX then AI", "AI alone", "UX alone"])
    assert sorted(found(scene.ada, "UX AI")) == ["AI and UX sync", "UX then AI"]
    assert found(scene.ada, '"ux then ai"', order="newest") == ["UX then AI"]


def test_edited_deleted_and_finished_messages_are_searched_as_they_are_now(scene, ctx):
    edited, deleted = sf.messages(scene.product, ["AI draft", "AI to delete"])
    streaming, = sf.messages(scene.product, ["half an ans"], status="streaming", type="agent")
    db.session.execute(sa.update(Message).where(Message.id == edited).values(content="UX draft"))
    db.session.execute(sa.delete(Message).where(Message.id == deleted))
    db.session.execute(sa.update(Message).where(Message.id == streaming).values(
        content="QA answer, finished", status="complete"))
    db.session.commit()
    assert found(scene.ada, "AI") == [] and found(scene.ada, "AI", order="newest") == []
    assert found(scene.ada, "UX", order="newest") == ["UX draft"]
    assert found(scene.ada, "QA") == ["QA answer, finished"]


@mysql_only
def test_a_statement_past_the_time_limit_is_stopped_and_the_limit_restored(ctx, monkeypatch):
    monkeypatch.setattr(mysql_search, "TIME_LIMIT_SECONDS", 0.05)
    slow = sa.select(sa.func.count()).select_from(sa.text(  # thousands of rows, cubed
        "information_schema.COLUMNS a, information_schema.COLUMNS b, information_schema.COLUMNS c"))
    assert mysql_search._run_time_limited(slow) is None
    assert db.session.scalar(sa.text("SELECT @@SESSION.max_statement_time")) == 0
    assert db.session.scalar(sa.text("SELECT 1")) == 1


@mysql_only
def test_a_search_stopped_by_the_time_limit_gives_a_partial_page(scene, ctx, monkeypatch,
                                                                tiny_windows):
    sf.messages(scene.product, ["zeppelin once"] + [f"ordinary chatter {i}" for i in range(40)])
    monkeypatch.setattr(mysql_search, "_run_time_limited_rows", lambda statement: None)
    results = search_messages(scene.ada, "zeppelin", order="newest")
    assert results.hits == [] and results.next_before and "too long" in results.notice
    ranked = search_messages(scene.ada, "zeppelin")
    assert ranked.hits == [] and "too long" in ranked.notice


@mysql_only
def test_a_ranking_past_the_time_limit_ranks_the_newest_messages_instead(scene, ctx,
                                                                         monkeypatch):
    monkeypatch.setattr(mysql_search, "RECENT_ROWS_PER_ROOM", 5)
    sf.messages(scene.product, ["zeppelin old"] + [f"chatter {i}" for i in range(10)]
                + ["zeppelin new, zeppelin again", "zeppelin newest"])
    run = mysql_search._run_time_limited_rows
    calls = []

    def first_statement_times_out(statement):
        calls.append(statement)
        return None if len(calls) == 1 else run(statement)

    monkeypatch.setattr(mysql_search, "_run_time_limited_rows", first_statement_times_out)
    results = search_messages(scene.ada, "zeppelin")
    assert [hit.content for hit in results.hits] == [
        "zeppelin new, zeppelin again", "zeppelin newest"]
    assert "too long" in results.notice and "newest 5 messages of each room" in results.notice
