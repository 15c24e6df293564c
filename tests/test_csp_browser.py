"""Every page of the app under its real Content-Security-Policy, in Chromium: nothing it needs is
refused (no inline style, remote image or foreign connection), and what moved out of inline
style attributes (agent colours) still shows."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.support import agent_factories, chat_factories, room_factories

pytestmark = pytest.mark.browser

# Runs in every document before the page's own scripts (Playwright adds it outside the policy).
LISTEN_FOR_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolations.push(
    `${event.violatedDirective} refused ${event.blockedURI || "inline"} `
    + `(${event.sourceFile || document.location.pathname}:${event.lineNumber})`);
});
"""


@pytest.fixture
def site(app, make_user):
    """A room with two coloured agents and messages, an open invitation, and its owner."""
    owner = make_user(name="Olga Owner", email="olga@example.com", plan="pro")
    with app.app_context():
        room = chat_factories.create_room(owner.id, name="Launch plan")
        critic = chat_factories.create_agent(owner.id, name="Critic", emoji="🎯", color="#EF4444")
        chat_factories.add_agent(room, critic, owner.id)
        chat_factories.add_agent(room, chat_factories.create_agent(
            owner.id, name="Coach", emoji="💡", color="#10B981"), owner.id)
        chat_factories.create_message(room, owner, "Shall we ship on **Friday**?")
        chat_factories.create_message(room, critic, "Friday is risky: the review is Thursday.")
        own_agent = agent_factories.create_agent(owner, "Planner", public=True, color="#8B5CF6")
        _, invite_token = room_factories.create_invitation(room, owner)
        return {"owner": owner, "room": room.id, "agent": own_agent.id, "critic": critic.id,
                "invite": invite_token}


class Browsing:
    """One browser profile whose pages record every CSP violation and console complaint."""

    def __init__(self, page, base_url: str):
        self.page, self.base_url, self.console = page, base_url, []
        page.add_init_script(LISTEN_FOR_VIOLATIONS)
        page.on("console", lambda message: (
            "Content Security Policy" in message.text or "Refused to" in message.text)
            and self.console.append(message.text))

    def visit(self, path: str, expected_status: int = 200) -> None:
        response = self.page.goto(self.base_url + path)
        assert response.status == expected_status, path
        self.page.wait_for_load_state("load")
        # Closed <details> (room settings, forms) open too, so their contents are laid out.
        self.page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        self.assert_clean(path)

    def assert_clean(self, where: str) -> None:
        violations = self.page.evaluate("window.cspViolations || []")
        assert not violations and not self.console, f"{where}: {violations or self.console}"


def agent_color(locator) -> str:
    return locator.evaluate("e => getComputedStyle(e).getPropertyValue('--agent-color')").strip()


def test_every_page_loads_under_the_policy(app, live_server, new_context, signed_in_page, site,
                                           make_user):
    signed_out = Browsing(new_context().new_page(), live_server.url)
    signed_out.visit("/")
    signed_out.visit("/login")
    signed_out.visit("/no/such/page", expected_status=404)

    owner = Browsing(signed_in_page(site["owner"]), live_server.url)
    room = f"/rooms/{site['room']}"
    for path in ("/", "/rooms", "/rooms/new", room, f"{room}/edit", f"{room}/brief",
                 f"{room}/delete", "/agents", "/agents/new", "/agents/gallery",
                 f"/agents/{site['agent']}", f"/agents/{site['agent']}/use",
                 f"/agents/{site['agent']}/delete", "/settings", "/search?q=Friday"):
        owner.visit(path)
    owner.visit("/no/such/page", expected_status=404)

    # The room's live parts: its WebSocket (connect-src), a message swapped in by htmx, and
    # agent colours set from data-agent-color rather than style attributes.
    page = owner.page
    page.goto(live_server.url + room)
    expect(page.locator(f'.presence[data-user-id="{site["owner"].id}"]').first).to_have_attribute(
        "data-presence", "online")
    composer = page.get_by_role("textbox", name="Message")
    composer.fill("Then Monday it is.")
    composer.press("Enter")
    expect(page.locator("#messages .message").last).to_contain_text("Then Monday it is.")
    assert agent_color(page.locator(f'#messages [data-sender-id="{site["critic"]}"]')) == "#EF4444"
    page.locator(".message-agent").first.hover()
    owner.assert_clean(f"{room} (live)")

    page.goto(live_server.url + "/agents")
    card = page.locator(".agent-card", has_text="Planner")
    assert agent_color(card) == "#8B5CF6"
    page.goto(f"{live_server.url}/agents/{site['agent']}")
    page.locator(".agent-color-preset").first.click()  # the preview takes the preset's colour
    owner.assert_clean("agent colour presets")

    # Someone else following the invitation link sees the invitation page.
    guest = make_user(name="Gus Guest", email="gus@example.com")
    Browsing(signed_in_page(guest), live_server.url).visit(f"/invite/{site['invite']}")
