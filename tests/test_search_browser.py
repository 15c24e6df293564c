"""In a real browser: a signed-in user searches from /search, sees the term marked in the
snippet, and the "jump to" link leads into the room at that message."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.support import search_factories as sf

pytestmark = pytest.mark.browser


def test_search_marks_the_term_and_jumps_to_the_message(app, make_user, signed_in_page,
                                                        live_server):
    ada = make_user(name="Ada")
    with app.app_context():
        room = sf.room(ada.id, "Launch")
        sf.messages(room, ["Lunch is at noon."])
        [message_id] = sf.messages(room, ["The AI budget <em>is</em> approved."])
    page = signed_in_page(ada)
    page.goto(f"{live_server.url}/search")
    page.get_by_label("Search for").fill("AI budget")
    page.get_by_role("button", name="Search", exact=True).click()

    hits = page.locator(".search-hit")
    expect(hits).to_have_count(1)
    expect(hits.locator("mark")).to_have_text(["AI", "budget"])
    expect(hits.locator(".search-snippet")).to_have_text("The AI budget <em>is</em> approved.")
    jump = hits.get_by_role("link", name=re.compile("^Jump to message"))
    target = f"/rooms/{room}?around={message_id}#message-{message_id}"
    assert jump.get_attribute("href") == target
    jump.click()
    expect(page).to_have_url(live_server.url + target)
