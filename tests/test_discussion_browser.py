"""Two people in one room watch the same agent reply stream in, in Chromium."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from discux.auth.sessions import COOKIE_NAME
from discux.discussion.engine import engine_for
from discux.extensions import db
from tests.conftest import LiveServer, empty_tables
from tests.support import chat_factories, factories
from tests.support.fake_llm import FakeLLM, FakeReply

pytestmark = pytest.mark.browser


@pytest.fixture
def fake():
    server = FakeLLM().start()
    yield server
    server.stop()


@pytest.fixture
def server(make_app, fake):
    app = make_app(DISCUX_LLM_BASE_URL=fake.base_url, DISCUX_LLM_MODEL="fake-small")
    live = LiveServer(app).start()
    yield live
    engine_for(app).wait_idle(timeout=10)
    live.stop()
    with app.app_context():
        db.session.remove()
        empty_tables(db.engine)


def page_for(new_context, server, user_id):
    context = new_context()
    with server.app.app_context():
        token = factories.create_session_token(user_id)
    context.add_cookies([{"name": COOKIE_NAME, "value": token, "url": server.url}])
    return context.new_page()


def test_both_people_see_the_agent_reply_stream_in(server, fake, new_context):
    with server.app.app_context():
        ana = factories.create_user(name="Ana")
        bo = factories.create_user(name="Bo")
        room = chat_factories.create_room(ana, name="Pricing")
        chat_factories.add_member(room, bo)
        nova = chat_factories.create_agent(ana, name="Nova", emoji="🔬", style="analytical")
        chat_factories.add_agent(room, nova, ana)
        ids = (ana.id, bo.id, room.id)
    words = [f"point{n}" for n in range(40)]
    fake.queue(FakeReply(text=" ".join(words), delay_per_token=0.05, logprobs=True))
    ana_page = page_for(new_context, server, ids[0])
    bo_page = page_for(new_context, server, ids[1])
    for page in (ana_page, bo_page):
        page.goto(f"{server.url}/rooms/{ids[2]}")
        expect(page.locator("#chat-connection")).to_be_hidden()
    composer = ana_page.get_by_role("textbox", name="Message")
    composer.fill("@Nova how should we price it?")
    composer.press("Enter")
    for page in (ana_page, bo_page):
        # The indicator names who is answering while the reply streams.
        expect(page.locator("#agent-status")).to_contain_text("1 of 1 answering: 🔬 Nova")
        reply = page.locator(".message-agent").last
        expect(reply).to_contain_text("point3")
    # Part-way through, the reply is still growing for both…
    assert "point39" not in bo_page.locator(".message-agent").last.inner_text()
    for page in (ana_page, bo_page):
        reply = page.locator(".message-agent").last
        expect(reply).to_contain_text("point39", timeout=15_000)
        expect(reply).to_contain_text("confidence 90%")
        expect(page.locator("#agent-status")).not_to_contain_text("answering")
    # …and what the agent was sent can be opened under its reply.
    bo_page.get_by_text("What Nova was sent").click()
    expect(bo_page.locator(".context-receipt")).to_contain_text("1 message sent")
