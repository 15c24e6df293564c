"""The /search page over real HTTP: the form, results with marked snippets and jump links,
hostile input answered with a page (never a 500), and no peeking into other people's rooms."""

from __future__ import annotations

import re
from html import unescape

import pytest
from flask import render_template_string

from tests.support import search_factories as sf


@pytest.fixture
def ada(make_user):
    return make_user(name="Ada")


@pytest.fixture
def rooms(app, ada, make_user):
    bob = make_user(name="Bob")
    with app.app_context():
        mine = sf.room(ada.id, "Launch <b>room</b>")
        theirs = sf.room(bob.id, "Secret plans")
        sf.messages(mine, ["Lunch at noon.", "Budget review on Monday."])
        sf.messages(theirs, ["Secret budget: do not share."])
    return {"mine": mine, "theirs": theirs}


def test_signed_out_visitors_are_sent_to_sign_in(client):
    response = client.get("/search?q=budget")
    assert response.status_code == 302
    assert "/login?next=" in response.headers["Location"]


def test_the_page_shows_the_form_and_the_nav_links_to_it(client, login, ada):
    login(ada)
    html = client.get("/search").get_data(as_text=True)
    assert '<form method="get" action="/search"' in html
    assert 'for="q"' in html and 'for="room"' in html and 'for="order"' in html
    assert 'href="/search" aria-current="page"' in html


def test_results_show_a_marked_snippet_and_a_jump_link(client, login, ada, rooms, app):
    login(ada)
    with app.app_context():
        [message_id] = sf.messages(rooms["mine"], ["The budget <script>alert(1)</script> is set"])
    html = client.get("/search?q=budget").get_data(as_text=True)
    assert "Secret budget" not in html
    assert "The <mark>budget</mark> &lt;script&gt;alert(1)&lt;/script&gt; is set" in html
    assert "<script>alert(1)" not in html
    assert (f'href="/rooms/{rooms["mine"]}?around={message_id}#message-{message_id}"') in html
    assert "Launch &lt;b&gt;room&lt;/b&gt;" in html


@pytest.mark.parametrize("query", [
    '"', "*", "AI OR", "NEAR(a b)", "content:x", "-", "+a -b", "a'); DROP TABLE messages;--",
    "\\", "\\\\", "%_", "((", "😀", "🚀 budget", "budget*)", '"unclosed budget', "a", "",
    "é", "日本語", "x" * 500, "budget " * 20, "ai:ux", "~budget", "<budget>", "@budget",
    "NOT", "budget NEAR/3 review", "^budget", "{budget}", "budget\x00",
])
@pytest.mark.parametrize("order", ["relevance", "newest"])
def test_hostile_queries_get_a_page_never_an_error(client, login, ada, rooms, query, order):
    login(ada)
    response = client.get("/search", query_string={"q": query, "order": order})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Secret budget" not in html
    assert ("Messages matching" in html or "No messages match" in html
            or 'class="field-error"' in html)


def test_a_query_with_nothing_searchable_says_why_next_to_the_field(client, login, ada):
    login(ada)
    html = client.get("/search?q=%21%21%21").get_data(as_text=True)
    assert re.search(r'class="field-error" id="q-error">Search for words', html)


def test_a_bad_order_is_explained(client, login, ada, rooms):
    login(ada)
    html = client.get("/search?q=budget&order=random").get_data(as_text=True)
    assert "Order results by relevance or newest first." in unescape(html)


@pytest.mark.parametrize("room", ["theirs", "unknown"])
def test_searching_a_room_that_is_not_mine_is_not_found(client, login, ada, rooms, room):
    login(ada)
    room_id = rooms.get(room, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
    response = client.get("/search", query_string={"q": "budget", "room": room_id})
    assert response.status_code == 404
    assert "Secret" not in response.get_data(as_text=True)


def test_newest_first_pages_link_to_older_matches(client, login, ada, rooms, app):
    login(ada)
    with app.app_context():
        ids = sf.messages(rooms["mine"], [f"standup notes {i}" for i in range(25)])
    first = client.get("/search?q=standup&order=newest").get_data(as_text=True)
    assert first.count('class="search-hit"') == 20
    older = re.search(r'href="(/search\?[^"]*before=[^"]*)" rel="next"', first)
    assert older and f"before={ids[5]}" in unescape(older.group(1))
    second = client.get(unescape(older.group(1))).get_data(as_text=True)
    assert second.count('class="search-hit"') == 5
    assert 'rel="next"' not in second and "Newest matches" in second


def test_relevance_pages_are_numbered(client, login, ada, rooms, app):
    login(ada)
    with app.app_context():
        sf.messages(rooms["mine"], [f"retro item {i}" for i in range(23)])
    first = client.get("/search?q=retro").get_data(as_text=True)
    assert "Page 1" in first and "page=2" in first
    second = client.get("/search?q=retro&page=2").get_data(as_text=True)
    assert second.count('class="search-hit"') == 3 and 'rel="prev"' in second


def test_the_room_search_box_searches_that_room(client, login, ada, rooms, app, make_user):
    login(ada)
    with app.app_context():
        other = sf.room(ada.id, "Other room")
        sf.messages(other, ["Budget for the other room."])
        with app.test_request_context():
            box = render_template_string(
                '{% include "search/_room_search_box.html" %}', room={"id": rooms["mine"]})
    action = re.search(r'action="([^"]+)"', box).group(1)
    room_field = re.search(r'name="room" value="([^"]+)"', box).group(1)
    assert 'name="q"' in box and "<label" in box
    html = client.get(action, query_string={"room": room_field, "q": "budget"}).get_data(
        as_text=True)
    assert "review on Monday." in html and "for the other room" not in html
