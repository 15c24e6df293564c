"""In Chromium, two people, at desktop and phone widths: feedback while typing ("Critic isn't in
this room — Add", @all without agents, too long), the tab title counting what arrived while the
tab was in the background, and opt-in browser notifications."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from discux.extensions import db
from tests.support import chat_factories, factories
from tests.support.room_pages import open_room_page

pytestmark = pytest.mark.browser

VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}

# Headless Chromium's tabs are always "visible" (minimizing or another tab in front changes
# nothing), so the test plays the browser's part: it says when the tab goes to the background,
# through the page's standard visibility API, and fires visibilitychange as a browser does.
BACKGROUND_TAB = """
(() => {
  let hidden = false;
  Object.defineProperty(Document.prototype, "visibilityState",
    { configurable: true, get() { return hidden ? "hidden" : "visible"; } });
  Object.defineProperty(Document.prototype, "hidden",
    { configurable: true, get() { return hidden; } });
  window.testSetTabHidden = (value) => {
    hidden = value;
    document.dispatchEvent(new Event("visibilitychange"));
  };
})();
"""
# Headless Chromium draws no notifications: keep what the page asked to show, for the test.
SHOWN_NOTIFICATIONS = """
(() => {
  const Real = window.Notification;
  window.testShownNotifications = [];
  class Recorded extends Real {
    constructor(title, options) {
      super(title, options);
      window.testShownNotifications.push({ title, body: (options || {}).body || "" });
    }
  }
  window.Notification = Recorded;
})();
"""


@pytest.fixture(params=list(VIEWPORTS))
def viewport(request):
    return VIEWPORTS[request.param]


@pytest.fixture
def room(app):
    """Roadmap: Ana (owner) and Bo (member; members may not add agents), with Coach in it.
    Critic is Ana's public agent, not in the room."""
    with app.app_context():
        ana = factories.create_user(name="Ana", plan="pro")
        bo = factories.create_user(name="Bo", plan="pro")
        room = chat_factories.create_room(ana, name="Roadmap")
        room.settings.allow_agent_creation = False
        db.session.commit()
        chat_factories.add_member(room, bo)
        coach = chat_factories.create_agent(ana, name="Coach", emoji="💡", style="friendly")
        chat_factories.add_agent(room, coach, ana)
        critic = chat_factories.create_agent(ana, name="Critic", emoji="🎯", style="direct")
        critic.is_public = True
        db.session.commit()
        empty = chat_factories.create_room(ana, name="Empty room")
        chat_factories.add_member(empty, bo)
        return {"ana": ana.id, "bo": bo.id, "room": room.id, "empty": empty.id}


def open_room(new_context, live_server, who_id, room_id, viewport, *scripts, **options):
    return open_room_page(new_context, live_server, who_id, room_id, *scripts, viewport=viewport,
                          **options)


def test_an_agent_not_in_the_room_is_named_as_you_type_and_can_be_added(
        live_server, room, new_context, viewport):
    ana = open_room(new_context, live_server, room["ana"], room["room"], viewport)
    bo = open_room(new_context, live_server, room["bo"], room["room"], viewport)
    feedback = ana.locator("#composer-feedback")

    composer = ana.get_by_role("textbox", name="Message")
    composer.fill("@Coach and @Critic, thoughts?")
    expect(feedback).to_contain_text("Critic isn't in this room")
    expect(feedback).not_to_contain_text("Coach")
    # Bo may not add agents here: he is told, with no Add button.
    bo_composer = bo.get_by_role("textbox", name="Message")
    bo_composer.fill("@critic what do you think?")
    expect(bo.locator("#composer-feedback")).to_contain_text(
        "Critic isn't in this room: only the owner and admins can add it")
    expect(bo.locator("#composer-feedback").get_by_role("button")).to_have_count(0)

    ana.get_by_role("button", name="Add Critic to this room").click()
    expect(feedback).to_contain_text("Critic joined the room")
    expect(feedback).not_to_contain_text("isn't in this room")
    expect(composer).to_have_value("@Coach and @Critic, thoughts?")  # the text is kept
    composer.fill("@Cri")  # and the mention picker offers it at once
    expect(ana.get_by_role("listbox", name="Agents you can mention")).to_contain_text("Critic")
    # The room has Critic now: a reload shows it among the room's agents.
    ana.reload()
    expect(ana.locator("#agents")).to_contain_text("Critic")
    assert ana.csp_errors == [] and bo.csp_errors == []


def test_at_all_in_a_room_without_agents_says_so(live_server, room, new_context, viewport):
    bo = open_room(new_context, live_server, room["bo"], room["empty"], viewport)
    bo.get_by_role("textbox", name="Message").fill("@all any ideas?")
    expect(bo.locator("#composer-feedback")).to_contain_text(
        "@all asks every agent in the room, and this room has no agents yet")


def test_a_message_over_the_limit_shows_its_count_before_send(live_server, room, new_context,
                                                              viewport):
    ana = open_room(new_context, live_server, room["ana"], room["room"], viewport)
    composer = ana.get_by_role("textbox", name="Message")
    composer.fill("x" * 4100)
    feedback = ana.locator("#composer-feedback")
    expect(feedback).to_contain_text("This message has 4,100 characters; the limit is 4,000.")
    ana.get_by_role("button", name="Send").click()
    expect(ana.locator("#composer-error")).to_contain_text(
        "Messages can be at most 4,000 characters; this one has 4,100")
    composer = ana.get_by_role("textbox", name="Message")
    expect(composer).to_have_value("x" * 4100)
    composer.fill("x" * 3999)
    expect(feedback).to_be_hidden()


def test_a_background_tab_counts_new_messages_in_its_title(live_server, room, new_context,
                                                           viewport):
    ana = open_room(new_context, live_server, room["ana"], room["room"], viewport)
    bo = open_room(new_context, live_server, room["bo"], room["room"], viewport, BACKGROUND_TAB)
    expect(bo).to_have_title("Roadmap · Discux")
    bo.evaluate("window.testSetTabHidden(true)")
    composer = ana.get_by_role("textbox", name="Message")
    for text in ("First news", "Second news", "Third news"):
        composer.fill(text)
        composer.press("Enter")
        expect(composer).to_have_value("")
    expect(bo).to_have_title("(3) Roadmap · Discux")
    with bo.expect_response(lambda answer: answer.url.endswith("/read")) as report:
        bo.evaluate("window.testSetTabHidden(false)")
    assert report.value.status == 204
    expect(bo).to_have_title("Roadmap · Discux")
    # Seen in the open tab, so the dashboard has nothing unread for Bo.
    bo.goto(live_server.url + "/")
    item = bo.locator(".room-overview-item", has_text="Roadmap")
    expect(item).to_contain_text("Third news")
    expect(item.locator(".unread-badge")).to_have_count(0)


def test_opted_in_browser_notifications_for_a_mention_in_a_background_tab(
        live_server, room, new_context, viewport):
    bo = open_room(new_context, live_server, room["bo"], room["room"], viewport, BACKGROUND_TAB,
                   SHOWN_NOTIFICATIONS)
    bo.context.grant_permissions(["notifications"], origin=live_server.url)
    bo.goto(live_server.url + "/settings")
    expect(bo.locator("#browser-notifications-state")).to_have_text("Off in this browser.")
    bo.get_by_role("button", name="Turn on browser notifications").click()
    expect(bo.locator("#browser-notifications-state")).to_have_text("On in this browser.")
    bo.goto(f"{live_server.url}/rooms/{room['room']}")
    expect(bo.locator(f'.presence[data-user-id="{room["bo"]}"]').first).to_have_attribute(
        "data-presence", "online")
    bo.evaluate("window.testSetTabHidden(true)")

    ana = open_room(new_context, live_server, room["ana"], room["room"], viewport)
    composer = ana.get_by_role("textbox", name="Message")
    composer.fill("Nothing for Bo here")
    composer.press("Enter")
    expect(composer).to_have_value("")
    composer.fill("@Bo can you take this one?")
    composer.press("Enter")
    expect(bo).to_have_title("(2) Roadmap · Discux")
    shown = bo.evaluate("window.testShownNotifications")
    assert shown == [{"title": "Ana mentioned you in Roadmap", "body": "@Bo can you take this one?"}]


def test_an_agent_answering_you_in_a_background_tab_is_notified(live_server, room, new_context,
                                                                 viewport):
    bo = open_room(new_context, live_server, room["bo"], room["room"], viewport, BACKGROUND_TAB,
                   SHOWN_NOTIFICATIONS)
    bo.context.grant_permissions(["notifications"], origin=live_server.url)
    bo.goto(live_server.url + "/settings")
    bo.get_by_role("button", name="Turn on browser notifications").click()
    expect(bo.locator("#browser-notifications-state")).to_have_text("On in this browser.")
    bo.goto(f"{live_server.url}/rooms/{room['room']}")
    expect(bo.locator(f'.presence[data-user-id="{room["bo"]}"]').first).to_have_attribute(
        "data-presence", "online")
    composer = bo.get_by_role("textbox", name="Message")
    composer.fill("@Coach how do we start?")
    bo.evaluate("window.testSetTabHidden(true)")  # Bo sends, then switches to another tab
    composer.press("Enter")
    reply = bo.locator("#messages .message-agent.message-complete")
    expect(reply).to_have_count(1, timeout=20_000)
    expect(bo).to_have_title("(1) Roadmap · Discux")
    shown = bo.evaluate("window.testShownNotifications")
    assert [note["title"] for note in shown] == ["Coach answered you in Roadmap"]
