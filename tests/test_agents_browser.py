"""In a real browser: create an agent through the form with the pickers, and watch "Try it"
stream a reply from the model server."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.support.agent_factories import agent_reply, create_agent
from tests.support.fake_llm import FakeLLM, FakeReply
from tests.support.room_factories import create_room

pytestmark = pytest.mark.browser

PERSONA = "A grumpy old sea captain who answers in nautical metaphors."


@pytest.fixture
def fake(app):
    """A model server the live app talks to."""
    with FakeLLM() as server:
        app.config.update(DISCUX_LLM_BASE_URL=server.base_url, DISCUX_LLM_MODEL="fake-small")
        yield server


def test_create_an_agent_with_the_pickers_and_try_it(fake, make_user, live_server, signed_in_page):
    page = signed_in_page(make_user(name="Mara"))
    page.goto(f"{live_server.url}/agents")
    expect(page.get_by_role("heading", name="No agents yet")).to_be_visible()
    page.get_by_role("button", name="New agent").click()

    page.get_by_label("Name", exact=True).fill("Captain")
    page.get_by_label("Persona prompt").fill(PERSONA)
    page.get_by_role("button", name="Emoji 🚀").click()
    expect(page.locator("#emoji")).to_have_value("🚀")
    expect(page.locator("[data-agent-preview]")).to_have_text("🚀")
    expect(page.get_by_role("button", name="Emoji 🚀")).to_have_attribute("aria-pressed", "true")
    page.get_by_role("button", name="Colour #EF4444").click()
    expect(page.locator("#color")).to_have_value("#EF4444")
    expect(page.locator("#color-picker")).to_have_value("#ef4444")
    page.get_by_label("Style").select_option("creative")

    # Try it, before saving: the reply streams in word by word.
    fake.queue(FakeReply(text="Steer for calmer waters, matey.", logprobs=True,
                         delay_per_token=0.4))
    page.get_by_label("Test message").fill("Where should we go next?")
    page.get_by_role("button", name="Try it").click()
    reply = page.locator("#try-output .try-reply-text")
    expect(reply).to_contain_text("Steer")
    expect(reply).to_have_attribute("data-streaming", "true")  # still arriving
    expect(reply).to_have_text("Steer for calmer waters, matey.")
    expect(page.locator("#try-output .try-meta")).to_contain_text("confidence 90%")
    sent = fake.requests[-1]
    assert PERSONA in sent["messages"][0]["content"]
    assert (sent["temperature"], sent["max_tokens"]) == (0.9, 500)

    page.get_by_role("button", name="Create agent").click()
    expect(page.get_by_text("🚀 Captain is ready")).to_be_visible()
    page.get_by_role("link", name="My agents").first.click()
    card = page.locator(".agent-card", has_text="Captain")
    expect(card).to_contain_text("🚀")
    expect(card).to_contain_text("Creative")
    expect(page.locator(".agents-usage")).to_contain_text("1 of 3 agents used on the free plan")


def test_try_shows_a_model_failure_in_plain_words(fake, make_user, live_server, signed_in_page):
    page = signed_in_page(make_user())
    page.goto(f"{live_server.url}/agents/new")
    fake.queue(FakeReply(mode="garbage"))
    page.get_by_label("Test message").fill("Hello?")
    page.get_by_role("button", name="Try it").click()
    expect(page.get_by_role("alert")).to_have_text(
        "No reply: the model server sent a malformed reply.")
    expect(page.get_by_role("button", name="Try it")).to_be_enabled()


@pytest.mark.parametrize("path", ["/agents", "/agents/new", "/agents/suggest", "/agents/gallery",
                                  "agent", "use"])
def test_agent_pages_fit_a_360_pixel_screen(
    app, make_user, live_server, signed_in_page, path
):
    user = make_user()
    with app.app_context():
        agent = create_agent(user, "A rather long agent name for a small phone screen",
                             public=True)
        agent_reply(create_room(user), agent, processing_time=1.5, confidence=0.8)
        agent_id = agent.id
    url = {"agent": f"/agents/{agent_id}", "use": f"/agents/{agent_id}/use"}.get(path, path)
    page = signed_in_page(user, viewport={"width": 360, "height": 740})
    page.goto(f"{live_server.url}{url}")
    expect(page.locator("h1")).to_be_visible()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{url} scrolls sideways by {overflow}px at 360px"
