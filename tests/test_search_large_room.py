"""A 50,000-message room searched on the real engine: every kind of query finishes and returns
exactly the right messages (timings belong to bench/, not here). The room is built once for
the module with bulk Core inserts and removed afterwards."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from discux import create_app
from discux.auth.sessions import COOKIE_NAME
from discux.extensions import db
from discux.models import User
from discux.search.service import search_messages
from tests.conftest import base_config, empty_tables
from tests.support import factories
from tests.support import search_factories as sf

SIZE = 50_000
RARE = {17, 25_000, 49_990}


def content_for(i: int) -> str:
    words = [f"message {i} on topic{i % 50}"]
    if i % 2 == 0:
        words.append("status update")
    if i % 3 == 0:
        words.append("and the rest")
    if i % 100 == 0:
        words.append("AI review")
    if i % 1000 == 0:
        words.append("see the launch plan")
    if i in RARE:
        words.append("zeppelin spotted")
    return ", ".join(words) + "."


@dataclass
class BigRoom:
    app: object
    user_id: str
    room_id: str
    ids: list[str]
    cookie: str

    def matching(self, predicate) -> list[str]:
        """Ids of the messages whose index satisfies `predicate`, newest first."""
        return [self.ids[i] for i in range(SIZE - 1, -1, -1) if predicate(i)]


@pytest.fixture(scope="module")
def big(migrated_database):
    app = create_app(base_config(migrated_database))
    with app.app_context():
        user = factories.create_user(name="Bea Big")
        outsider = factories.create_user(name="Otto")
        room_id = sf.room(user.id, "Big room")
        secret = sf.room(outsider.id, "Secret")
        sf.bulk_messages(secret, 1_000, lambda i: f"secret zeppelin update {i}, AI")
        ids = sf.bulk_messages(room_id, SIZE, content_for)
        cookie = factories.create_session_token(user.id)
        user_id = user.id
    yield BigRoom(app, user_id, room_id, ids, cookie)
    with app.app_context():
        db.session.remove()
        if db.engine.dialect.name == "sqlite":
            # messages.reply_to_id has no index on SQLite, so with foreign keys on every deleted
            # message scans the table (minutes for 50k rows); the other tests' teardown assumes
            # a small table. Deleting with the checks off is a test-only shortcut.
            with db.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                connection.exec_driver_sql("DELETE FROM messages")
                connection.commit()
        empty_tables(db.engine)
        db.engine.dispose()


@pytest.fixture
def bea(big):
    with big.app.app_context():
        yield db.session.get(User, big.user_id)


def hit_ids(results) -> list[str]:
    return [hit.message_id for hit in results.hits]


def test_newest_first_pages_of_a_common_word(big, bea):
    expected = big.matching(lambda i: i % 2 == 0)
    seen, before = [], None
    for _ in range(3):
        results = search_messages(bea, "update", order="newest", before=before)
        seen += hit_ids(results)
        before = results.next_before
    assert seen == expected[:60]


def test_a_rare_word_is_found_however_far_back(big, bea):
    expected = big.matching(lambda i: i in RARE)
    assert hit_ids(search_messages(bea, "zeppelin", order="newest")) == expected
    assert sorted(hit_ids(search_messages(bea, "zeppelin"))) == sorted(expected)


def test_a_two_letter_word_in_a_large_room(big, bea):
    expected = big.matching(lambda i: i % 100 == 0)
    assert hit_ids(search_messages(bea, "AI", order="newest")) == expected[:20]
    ranked = search_messages(bea, "AI", per_page=50)
    assert len(ranked.hits) == 50 and set(hit_ids(ranked)) <= set(expected)


def test_a_phrase_in_a_large_room(big, bea):
    expected = big.matching(lambda i: i % 1000 == 0)
    assert sorted(hit_ids(search_messages(bea, '"launch plan"', per_page=50))) == sorted(expected)
    assert hit_ids(search_messages(bea, '"launch plan"', order="newest", per_page=50)) == expected


def test_a_stopword_in_a_large_room(big, bea):
    expected = big.matching(lambda i: i % 3 == 0)
    assert hit_ids(search_messages(bea, "the", order="newest")) == expected[:20]


def test_a_prefix_in_a_large_room(big, bea):
    expected = big.matching(lambda i: i % 50 == 4 or 40 <= i % 50 <= 49)
    assert hit_ids(search_messages(bea, "topic4*", order="newest", per_page=50)) == expected[:50]


def test_a_short_word_and_a_rare_one_together(big, bea):
    assert hit_ids(search_messages(bea, "AI zeppelin", order="newest")) == [big.ids[25_000]]
    assert hit_ids(search_messages(bea, "zeppelin AI")) == [big.ids[25_000]]


def test_the_search_page_answers_over_http(big):
    client = big.app.test_client()
    client.set_cookie(COOKIE_NAME, big.cookie, domain="localhost")
    response = client.get("/search?q=zeppelin&order=newest")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert html.count('class="search-hit"') == 3 and "secret zeppelin" not in html
