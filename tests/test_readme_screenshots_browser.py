"""README's room screenshots, retaken from the current pages (docs/screenshots/room*.png).

Skipped unless asked for, as it writes into the repository:

    README_SCREENSHOTS=1 .venv/bin/pytest -q tests/test_readme_screenshots_browser.py
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from discux.auth.sessions import COOKIE_NAME
from discux.extensions import db
from tests.conftest import LiveServer
from tests.support import chat_factories, factories
from tests.support.fake_llm import FakeReply

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.environ.get("README_SCREENSHOTS"),
                       reason="writes docs/screenshots: set README_SCREENSHOTS=1"),
]

SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
NOVA = ("**Per seat** is simpler to explain, but rooms track value better: a 5-person team with "
        "12 busy rooms pays the same as one with 1.\n\n- Per seat: $8, predictable\n"
        "- Per room: $15, fairer to small teams\n\n@Scout, any bolder option?")
SCOUT = ("What about **free rooms, paid agents**? Teams pay for the agents they keep busy, so a "
         "quiet room costs nothing and a busy one pays its way.")


@pytest.fixture
def server(llm_app):
    live = LiveServer(llm_app).start()
    yield live
    live.stop()


def page_of(new_context, server, user_id, **options):
    context = new_context(**options)
    with server.app.app_context():
        token = factories.create_session_token(user_id)
    context.add_cookies([{"name": COOKIE_NAME, "value": token, "url": server.url}])
    return context.new_page()


def test_retake_the_room_screenshots(server, fake, new_context):
    with server.app.app_context():
        ana = factories.create_user(name="Ana", plan="pro")
        bo = factories.create_user(name="Bo", plan="pro")
        room = chat_factories.create_room(ana, name="Pricing for the beta")
        room.description = "Decide launch pricing and who writes the announcement."
        db.session.commit()
        chat_factories.add_member(room, bo)
        for name, emoji, color in (("Nova", "🔬", "#8B5CF6"), ("Scout", "🚀", "#10B981")):
            agent = chat_factories.create_agent(ana, name=name, emoji=emoji, color=color)
            chat_factories.add_agent(room, agent, ana)
        chat_factories.create_message(room, bo, "We have 40 beta teams. Should pricing be per "
                                      "seat or per room?")
        ids = {"ana": ana.id, "bo": bo.id, "room": room.id}
    url = f"{server.url}/rooms/{ids['room']}"
    fake.queue(FakeReply(text=NOVA, logprobs=True, delay_per_token=0.01),
               FakeReply(text=SCOUT, logprobs=True, delay_per_token=0.25))
    ana_page = page_of(new_context, server, ids["ana"], viewport={"width": 1280, "height": 860})
    bo_page = page_of(new_context, server, ids["bo"], viewport={"width": 1280, "height": 860})
    bo_page.goto(url)
    ana_page.goto(url)
    composer = ana_page.get_by_role("textbox", name="Message")
    composer.fill("@Nova how should we price the beta?")
    composer.press("Enter")
    scout = ana_page.locator(".message-agent").last
    expect(scout).to_contain_text("paid agents")
    ana_page.locator("#chat-scroll").hover()
    ana_page.screenshot(path=str(SHOTS / "room-streaming.png"))
    expect(scout).to_contain_text("pays its way", timeout=30_000)
    expect(ana_page.locator("#agent-status")).not_to_contain_text("answering")
    # Bo, scrolled up to Nova's answer when Ana writes again: the count of what is new below.
    bo_page.locator("#chat-scroll").hover()
    bo_page.mouse.wheel(0, -20_000)
    composer.fill("Scout's idea fits our numbers. Bo, can you draft the announcement?")
    composer.press("Enter")
    expect(bo_page.get_by_role("button", name="1 new message ↓")).to_be_visible()
    ana_page.screenshot(path=str(SHOTS / "room.png"))
    bo_page.screenshot(path=str(SHOTS / "room-new-messages.png"))
    phone = page_of(new_context, server, ids["ana"], viewport={"width": 390, "height": 844},
                    color_scheme="dark")
    phone.goto(url)
    expect(phone.locator("#messages .message").last).to_be_in_viewport()
    phone.screenshot(path=str(SHOTS / "room-phone-dark.png"))
    phone.get_by_role("button", name="Room info").click()
    expect(phone.locator("#people")).to_be_in_viewport()
    phone.wait_for_timeout(300)  # the drawer's slide (0.2 s) has ended
    phone.screenshot(path=str(SHOTS / "room-phone-drawer-dark.png"))
    phone.get_by_role("button", name="Room info").press("Escape")
    ana_page.locator(".room-header").get_by_role("button", name="Invite").click()
    dialog = ana_page.get_by_role("dialog", name="Invite people to Pricing for the beta")
    dialog.get_by_role("button", name="Create link").click()
    expect(dialog.get_by_label("Invitation link")).to_have_value(
        re.compile("/invite/"))
    ana_page.screenshot(path=str(SHOTS / "room-invite.png"))
