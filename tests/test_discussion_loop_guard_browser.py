"""Two people in a room see why the agents' hand-over chain stopped, and one of them continues it,
in Chromium."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from discux.extensions import db
from tests.conftest import LiveServer
from tests.support import chat_factories, factories
from tests.test_discussion_browser import page_for
from tests.test_discussion_loop_guard import REPEATING, scripted

pytestmark = pytest.mark.browser


@pytest.fixture
def server(llm_app):
    live = LiveServer(llm_app).start()
    yield live
    live.stop()


def test_members_see_why_the_chain_stopped_and_continue_it(server, fake, new_context):
    with server.app.app_context():
        ana = factories.create_user(name="Ana")
        bo = factories.create_user(name="Bo")
        room = chat_factories.create_room(ana, name="Release")
        chat_factories.add_member(room, bo)
        for name in ("Nova", "Scout"):
            agent = chat_factories.create_agent(ana, name=name)
            agent.prompt = f"You are {name}, on the release team."
            db.session.commit()
            chat_factories.add_agent(room, agent, ana)
        ids = (ana.id, bo.id, room.id)
    fake.respond_with(scripted(REPEATING))
    ana_page = page_for(new_context, server, ids[0])
    bo_page = page_for(new_context, server, ids[1])
    for page in (ana_page, bo_page):
        page.goto(f"{server.url}/rooms/{ids[2]}")
        expect(page.locator("#chat-connection")).to_be_hidden()
    composer = ana_page.get_by_role("textbox", name="Message")
    composer.fill("@Nova when do we ship?")
    composer.press("Enter")
    for page in (ana_page, bo_page):
        status = page.locator("#agent-status")
        expect(status).to_contain_text(
            "Stopped: Nova repeated what was already said; Scout was asked to answer next.",
            timeout=15_000)
        expect(status.get_by_role("button", name="Continue (3 more)")).to_be_visible()
        expect(page.locator(".message-agent")).to_have_count(3)

    fake.respond_with(scripted({"Scout": ["Monday works for QA, @Nova."],
                                "Nova": ["Monday it is. Thanks!"]}))
    bo_page.locator("#agent-status").get_by_role("button", name="Continue (3 more)").click()
    for page in (ana_page, bo_page):
        expect(page.locator(".message-agent").last).to_contain_text("Monday it is.",
                                                                    timeout=15_000)
        expect(page.locator(".message-agent")).to_have_count(5)
        expect(page.locator("#agent-status")).not_to_contain_text("Stopped")
