"""MariaDB ranks best-first searches from the table's best FULLTEXT matches when they settle the
page: the pages must be exactly those of ranking every match in the user's rooms (same
messages, same order, same "more" link), whoever searches, whatever the page, the ties in
score, the short words and stopwords checked with REGEXP, and the phrases."""

from __future__ import annotations

import random

import pytest

from discux.extensions import db
from discux.models import Message
from discux.search import mysql as mysql_search
from discux.search.query import parse_query
from tests.conftest import IS_MYSQL
from tests.support import search_factories as sf

pytestmark = pytest.mark.skipif(not IS_MYSQL, reason="MySQL/MariaDB search strategy")

ROOMS = 6
FILLER = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
          "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo"]
EXTRAS = ["zeppelin", "zeppelin", "zeppelin zeppelin", "zeppelin zeppelin zeppelin",
          "release notes", "notes on the release", "release the notes", "AI", "the", "UX"]
QUERIES = ["zeppelin", "zeppelin AI", "zeppelin the", '"release notes"', '"notes on the release"',
           "zeppelin release", "zeppel*", "release UX"]


def message_text(rng: random.Random) -> str:
    """A few filler words and some of the searched ones: scores tie in groups (InnoDB ranks
    by how often a word occurs), with the odd message above them."""
    words = rng.choices(FILLER, k=rng.randint(3, 9))
    for extra in rng.sample(EXTRAS, rng.randint(0, 3)):
        words.insert(rng.randint(0, len(words)), extra)
    return " ".join(words)


@pytest.fixture
def rooms(app, make_user):
    """Six rooms of ~100 messages each; "solo" is in one of them, "trio" in three, "all" in
    every one. Some messages are still streaming."""
    owner, solo, trio, everyone = (make_user(name=n) for n in ("Owen", "Sol", "Tri", "Al"))
    rng = random.Random(4)
    with app.app_context():
        room_ids = [sf.room(owner.id, f"Room {k}") for k in range(ROOMS)]
        for k, room_id in enumerate(room_ids):
            sf.join(room_id, everyone.id)
            if k < 3:
                sf.join(room_id, trio.id)
            if k == 2:
                sf.join(room_id, solo.id)
        for _ in range(3):  # interleaved, so each room's messages spread over the id range
            for room_id in room_ids:
                sf.messages(room_id, [message_text(rng) for _ in range(30)])
                sf.messages(room_id, [message_text(rng) for _ in range(3)], status="streaming",
                            type="agent")
    return {"solo": room_ids[2:3], "trio": room_ids[:3], "all": room_ids}


def exact_page(query: str, room_ids: list[str], offset: int, limit: int):
    plan = mysql_search.plan_for(parse_query(query), mysql_search.fulltext_settings())
    ids = mysql_search._ranked_in_rooms(plan, room_ids, offset, limit)
    return ids[:limit], len(ids) > limit


@pytest.fixture
def settled(monkeypatch):
    """Counts the pages the best matches settled and those they left to the full ranking."""
    counts = {"settled": 0, "full": 0}
    page_from_best = mysql_search._page_from_best

    def counting(best, offset, limit):
        page = page_from_best(best, offset, limit)
        counts["settled" if page is not None else "full"] += 1
        return page

    monkeypatch.setattr(mysql_search, "_page_from_best", counting)
    return counts


@pytest.mark.parametrize("candidates", [3, 25, 80, 1000])
@pytest.mark.parametrize("who", ["solo", "trio", "all"])
def test_every_page_is_the_page_of_the_full_ranking(rooms, ctx, monkeypatch, settled, who,
                                                    candidates):
    monkeypatch.setattr(mysql_search, "RANKED_CANDIDATES", candidates)
    room_ids = rooms[who]
    for query in QUERIES:
        for limit in (1, 7, 20):
            for offset in range(0, 70, limit if limit > 1 else 5):
                found = mysql_search.find(parse_query(query), room_ids, order="relevance",
                                          before=None, offset=offset, limit=limit)
                assert (found.ids, found.has_more) == exact_page(query, room_ids, offset,
                                                                 limit), (query, offset, limit)
                assert found.notice is None
    if candidates == 1000:  # every match fits among the candidates: nothing left to rank
        assert settled["full"] == 0
    else:  # both ways were taken
        assert settled["full"] and (settled["settled"] or candidates < 25)


def test_the_full_ranking_is_the_one_the_pages_are_checked_against(rooms, ctx):
    # The reference itself: best score first, the newest first among equal scores, only
    # finished messages of the searcher's rooms with the phrase in them.
    ids, _ = exact_page('"release notes"', rooms["trio"], 0, 1000)
    messages = {m.id: m for m in db.session.query(Message).filter(Message.id.in_(ids))}
    assert ids and all(messages[i].room_id in rooms["trio"] for i in ids)
    assert all(messages[i].status != "streaming" and "release notes" in messages[i].content
               for i in ids)
    plan = mysql_search.plan_for(parse_query('"release notes"'), mysql_search.fulltext_settings())
    scores = {row.id: row.score for row in mysql_search._best_matches(plan, rooms["trio"])}
    ranked = [(scores[i], i) for i in ids]
    assert ranked == sorted(ranked, reverse=True)
    assert len({score for score, _ in ranked}) < len(ranked)  # ties are there to be broken
