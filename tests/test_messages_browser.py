"""Two people in one room, in Chromium: messages appear live for both, the @ picker inserts an
agent, and "is typing…" shows for the other person."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.support import chat_factories

pytestmark = pytest.mark.browser


def test_two_people_see_each_others_messages_and_pick_an_agent(app, make_user, signed_in_page,
                                                               live_server):
    ana, bo = make_user(name="Ana"), make_user(name="Bo")
    with app.app_context():
        room = chat_factories.create_room(ana.id, name="Roadmap")
        chat_factories.add_member(room, bo.id)
        for name, emoji in (("Nova Prime", "🔬"), ("Scout", "🚀")):
            chat_factories.add_agent(room, chat_factories.create_agent(ana.id, name=name,
                                                                       emoji=emoji), ana.id)
        room_id = room.id
    ana_page, bo_page = signed_in_page(ana), signed_in_page(bo)
    for page in (ana_page, bo_page):
        page.goto(f"{live_server.url}/rooms/{room_id}")
        expect(page.locator(f'.presence[data-user-id="{ana.id}"]').first).to_have_attribute(
            "data-presence", "online")

    composer = ana_page.get_by_role("textbox", name="Message")
    composer.click()
    composer.press_sequentially("Plan for Q3, @no")
    picker = ana_page.get_by_role("listbox", name="Agents you can mention")
    expect(picker).to_be_visible()
    expect(picker.get_by_role("option")).to_have_count(1)
    expect(picker.get_by_role("option").first).to_contain_text("Nova Prime")
    expect(bo_page.locator("#typing-indicator")).to_contain_text("Ana is typing")
    composer.press("Enter")  # picks the highlighted agent, does not send
    expect(composer).to_have_value("Plan for Q3, @Nova Prime ")
    composer.press_sequentially("what do you think?")
    composer.press("Enter")  # sends
    expect(composer).to_have_value("")
    for page in (ana_page, bo_page):
        expect(page.locator("#messages")).to_contain_text("Plan for Q3, @Nova Prime what do you think?")
    expect(ana_page.locator(".message-own").last).to_contain_text("You")

    reply = bo_page.get_by_role("textbox", name="Message")
    reply.fill("Agreed, ship it.")
    reply.press("Enter")
    expect(ana_page.locator("#messages")).to_contain_text("Agreed, ship it.")
    expect(ana_page.locator(".message").last.locator(".sender-name")).to_have_text("Bo")
