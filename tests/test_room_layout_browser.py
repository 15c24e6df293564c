"""The room page as a chat, in Chromium, at 1280×800 and on a 390 px phone, light and dark: the
conversation fills the window with the composer at hand, "N new messages ↓" while you read
further up, a divider where you left off, Invite in a dialog, the panel's tabs and drawer, the
keys (↑, Esc, /), polite announcements, and the focus staying where someone types."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.conftest import LiveServer
from tests.support import chat_factories, factories
from tests.support.fake_llm import FakeReply
from tests.support.room_pages import open_room_page

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
LOOKS = [
    pytest.param(DESKTOP, "light", id="desktop-light"),
    pytest.param(DESKTOP, "dark", id="desktop-dark"),
    pytest.param(PHONE, "light", id="phone-light"),
    pytest.param(PHONE, "dark", id="phone-dark"),
]


@pytest.fixture
def room(app):
    """Ana's room "Roadmap" with Bo in it, an agent, and 40 earlier messages."""
    with app.app_context():
        ana = factories.create_user(name="Ana", plan="pro")
        bo = factories.create_user(name="Bo", plan="pro")
        room = chat_factories.create_room(ana, name="Roadmap")
        chat_factories.add_member(room, bo)
        agent = chat_factories.create_agent(ana, name="Critic", emoji="🎯", style="direct")
        chat_factories.add_agent(room, agent, ana)
        for n in range(40):
            chat_factories.create_message(room, ana if n % 2 else bo, f"Earlier point {n}",
                                          humans_only=True)
        return {"ana": ana.id, "bo": bo.id, "room": room.id}


def open_room(new_context, live_server, room, who, viewport=DESKTOP, scheme="light", **options):
    return open_room_page(new_context, live_server, room[who], room["room"],
                          wait_for_socket=options.get("java_script_enabled", True),
                          viewport=viewport, color_scheme=scheme, **options)


def send(page, text):
    """Post `text` for people only (no agent answers it), as the composer's switch offers."""
    page.get_by_label("Humans only").check()
    composer = page.get_by_role("textbox", name="Message")
    composer.fill(text)
    composer.press("Enter")
    expect(page.locator("#messages .message-own").last).to_contain_text(text)


def is_dark(page) -> bool:
    """Whether the page a person sees is dark: its background's brightness."""
    r, g, b = page.evaluate("""() => getComputedStyle(document.documentElement).backgroundColor
        .match(/\\d+/g).slice(0, 3).map(Number)""")
    return (r * 299 + g * 587 + b * 114) / 1000 < 128


def scroll_history_up(page):
    page.locator("#chat-scroll").hover()
    page.mouse.wheel(0, -20_000)
    expect(page.locator("#messages .message", has_text="Earlier point 0")).to_be_in_viewport()


@pytest.mark.parametrize(("viewport", "scheme"), LOOKS)
def test_conversation_fills_the_window_with_the_composer_at_hand(live_server, room, new_context,
                                                                  viewport, scheme):
    ana = open_room(new_context, live_server, room, "ana", viewport, scheme)
    assert is_dark(ana) == (scheme == "dark")
    # The page itself does not scroll: the history does, newest at the bottom, composer below it.
    assert ana.evaluate("document.scrollingElement.scrollHeight <= window.innerHeight + 1")
    expect(ana.get_by_role("textbox", name="Message")).to_be_in_viewport()
    expect(ana.get_by_role("button", name="Send")).to_be_in_viewport()
    expect(ana.locator("#messages .message", has_text="Earlier point 39")).to_be_in_viewport()
    expect(ana.locator("#messages .message", has_text="Earlier point 0")).not_to_be_in_viewport()
    header = ana.locator(".room-header")
    expect(header.get_by_role("heading", name="Roadmap")).to_be_visible()
    expect(header.get_by_role("button", name="Invite")).to_be_visible()
    expect(header.get_by_role("searchbox", name="Search this room")).to_be_visible()
    # Beside the chat on a desktop, behind "Room info" on a phone.
    people = ana.locator("#people")
    if viewport is PHONE:
        expect(people).not_to_be_in_viewport()
        ana.get_by_role("button", name="Room info").click()
    else:
        expect(ana.get_by_role("button", name="Room info")).to_be_hidden()
    expect(people).to_be_in_viewport()
    expect(people.get_by_text("Bo", exact=True)).to_be_visible()
    expect(ana.locator("#agents")).to_contain_text("Critic")
    expect(ana.get_by_role("heading", name="Room brief")).to_be_visible()
    expect(ana.get_by_role("button", name="Save settings")).to_be_hidden()


@pytest.mark.parametrize(("viewport", "scheme"), LOOKS)
def test_reading_further_up_shows_how_many_new_messages_and_jumps_to_them(
        live_server, room, new_context, viewport, scheme):
    ana = open_room(new_context, live_server, room, "ana", viewport, scheme)
    bo = open_room(new_context, live_server, room, "bo")
    # At the bottom, new messages keep the latest in view and need no button.
    send(bo, "first while you watch")
    expect(ana.locator("#messages .message", has_text="first while you watch")).to_be_in_viewport()
    expect(ana.locator("#new-messages")).to_be_hidden()

    scroll_history_up(ana)
    send(bo, "second, while you read")
    send(bo, "third, still reading")
    pill = ana.get_by_role("button", name="2 new messages ↓")
    expect(pill).to_be_visible()
    # What Ana was reading stays where it was.
    expect(ana.locator("#messages .message", has_text="Earlier point 0")).to_be_in_viewport()
    pill.click()
    expect(ana.locator("#messages .message", has_text="third, still reading")).to_be_in_viewport()
    expect(pill).to_be_hidden()
    expect(ana.get_by_role("textbox", name="Message")).to_be_focused()


@pytest.mark.parametrize(("viewport", "scheme"), [LOOKS[0], LOOKS[3]])
def test_a_divider_marks_where_you_left_off(live_server, room, new_context, viewport, scheme):
    ana = open_room(new_context, live_server, room, "ana", viewport, scheme)
    expect(ana.locator("#unread-divider")).to_have_count(0)  # first visit: everything is read
    ana.goto("about:blank")  # Ana leaves; the same browser keeps where she left off
    bo = open_room(new_context, live_server, room, "bo")
    send(bo, "news while Ana was away")
    send(bo, "and a second one")
    ana.goto(f"{live_server.url}/rooms/{room['room']}")
    divider = ana.get_by_role("separator", name="New messages since you were last here")
    expect(divider).to_be_visible()
    after = ana.locator("#unread-divider ~ article.message")
    expect(after).to_have_count(2)
    expect(after.first).to_contain_text("news while Ana was away")
    # Bo left nothing unread for himself.
    bo.reload()
    expect(bo.locator("#unread-divider")).to_have_count(0)


@pytest.mark.parametrize(("viewport", "scheme"), LOOKS)
def test_invite_opens_a_dialog_with_a_link_to_copy(live_server, room, new_context, viewport,
                                                   scheme):
    ana = open_room(new_context, live_server, room, "ana", viewport, scheme,
                    permissions=["clipboard-read", "clipboard-write"])
    invite = ana.locator(".room-header").get_by_role("button", name="Invite")
    invite.click()
    dialog = ana.get_by_role("dialog", name="Invite people to Roadmap")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Link expires after").select_option(label="7 days")
    dialog.get_by_role("button", name="Create link").click()
    link = dialog.get_by_label("Invitation link")
    expect(link).to_have_value(re.compile(r"/invite/[A-Za-z0-9_-]{43}$"))
    dialog.get_by_role("button", name="Copy link").click()
    expect(dialog.get_by_role("button", name="Copied")).to_be_visible()
    assert ana.evaluate("navigator.clipboard.readText()") == link.input_value()
    expect(dialog.locator(".invitation-list")).to_contain_text("open")
    ana.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(invite).to_be_focused()
    expect(ana).to_have_url(re.compile(r"/rooms/[0-9a-f-]{36}$"))  # never left the room


@pytest.mark.parametrize(("viewport", "scheme"), [LOOKS[1], LOOKS[2]])
def test_without_javascript_invite_tabs_and_the_drawer_are_links(live_server, room, new_context,
                                                                 viewport, scheme):
    ana = open_room(new_context, live_server, room, "ana", viewport, scheme,
                    java_script_enabled=False)
    if viewport is PHONE:
        expect(ana.locator("#people")).not_to_be_in_viewport()
        ana.get_by_role("button", name="Room info").click()
        expect(ana.locator("#people")).to_be_in_viewport()
    expect(ana.get_by_role("button", name="Save settings")).to_be_hidden()
    ana.get_by_role("link", name="Settings", exact=True).last.click()
    expect(ana.get_by_role("button", name="Save settings")).to_be_visible()
    expect(ana.locator("#people")).to_be_hidden()
    ana.get_by_label("Max agents").fill("5")
    ana.get_by_role("button", name="Save settings").click()
    expect(ana.get_by_text("Settings saved.")).to_be_visible()
    expect(ana.get_by_label("Max agents")).to_have_value("5")  # back on its tab
    if viewport is PHONE:  # the drawer is open on the saved settings; × closes it
        ana.get_by_role("link", name="Close the room panel").click()
        expect(ana.locator("#room-panel")).not_to_be_in_viewport()

    ana.locator(".room-header").get_by_role("button", name="Invite").click()
    expect(ana.get_by_role("heading", name="Invite people to Roadmap")).to_be_visible()
    ana.get_by_role("button", name="Create link").click()
    expect(ana.get_by_label("Invitation link")).to_have_value(re.compile(r"/invite/"))


@pytest.mark.parametrize(("viewport", "scheme"), LOOKS)
def test_panel_tabs_and_the_phone_drawer_work_from_the_keyboard(live_server, room, new_context,
                                                                viewport, scheme):
    ana = open_room(new_context, live_server, room, "ana", viewport, scheme)
    if viewport is PHONE:
        toggle = ana.get_by_role("button", name="Room info")
        toggle.click()
        expect(toggle).to_have_attribute("aria-expanded", "true")
    room_tab = ana.get_by_role("tab", name="Room")
    expect(room_tab).to_have_attribute("aria-selected", "true")
    room_tab.focus()
    ana.keyboard.press("ArrowRight")
    settings_tab = ana.get_by_role("tab", name="Settings")
    expect(settings_tab).to_be_focused()
    expect(settings_tab).to_have_attribute("aria-selected", "true")
    panel = ana.get_by_role("tabpanel", name="Settings")
    expect(panel.get_by_role("button", name="Save settings")).to_be_visible()
    expect(panel.get_by_role("button", name="Archive room")).to_be_visible()
    expect(ana.locator("#people")).to_be_hidden()
    if viewport is PHONE:
        ana.keyboard.press("Escape")  # closes the drawer first
        expect(ana.locator("#room-panel")).not_to_be_in_viewport()
        expect(toggle).to_be_focused()
        expect(toggle).to_have_attribute("aria-expanded", "false")


@pytest.mark.parametrize(("viewport", "scheme"), LOOKS)
def test_slash_searches_and_up_arrow_edits_your_last_message(live_server, room, new_context,
                                                             viewport, scheme):
    ana = open_room(new_context, live_server, room, "ana", viewport, scheme)
    bo = open_room(new_context, live_server, room, "bo")
    composer = ana.get_by_role("textbox", name="Message")
    composer.fill("a/b")  # "/" while typing is just a character
    expect(composer).to_have_value("a/b")
    expect(composer).to_be_focused()
    send(ana, "my latest words")
    send(bo, "Bo has the last word")  # the last of Ana's own messages, not the last message
    expect(ana.locator("#messages .message").last).to_contain_text("Bo has the last word")
    composer.type("x")
    composer.press("ArrowUp")  # not empty: the caret moves, nothing opens
    expect(composer).to_be_focused()
    expect(ana.locator("textarea[data-edit-of]")).to_have_count(0)
    composer.fill("")
    composer.press("ArrowUp")
    editing = ana.locator("#messages .message-own", has_text="my latest words").locator("textarea")
    expect(editing).to_be_focused()
    expect(editing).to_have_value("my latest words")
    ana.keyboard.press("Escape")  # cancels the edit (and stops no agent)
    expect(ana.locator("textarea[data-edit-of]")).to_have_count(0)

    ana.get_by_role("heading", name="Roadmap").click()
    ana.keyboard.press("/")
    search = ana.get_by_role("searchbox", name="Search this room")
    expect(search).to_be_focused()
    expect(search).to_have_value("")
    ana.keyboard.type("Earlier")
    ana.keyboard.press("Enter")
    expect(ana).to_have_url(re.compile(r"/search\?"))
    expect(ana.locator("main")).to_contain_text("Earlier point")


@pytest.mark.parametrize(("viewport", "scheme"), LOOKS)
def test_new_messages_are_announced_and_the_typist_keeps_the_focus(live_server, room,
                                                                    new_context, viewport,
                                                                    scheme):
    ana = open_room(new_context, live_server, room, "ana", viewport, scheme)
    bo = open_room(new_context, live_server, room, "bo")
    announcer = ana.locator("#chat-announcer")
    expect(announcer).to_have_attribute("aria-live", "polite")
    expect(ana.locator("#messages")).to_have_attribute("aria-live", "off")  # no double reading
    composer = ana.get_by_role("textbox", name="Message")
    composer.click()
    composer.type("half a thou")
    for n in range(3):
        send(bo, f"interruption {n}")
        expect(announcer).to_have_text(f"Bo: interruption {n}")
    expect(ana.locator("#messages .message").last).to_contain_text("interruption 2")
    expect(composer).to_be_focused()
    ana.keyboard.type("ght")
    expect(composer).to_have_value("half a thought")
    composer.press("Enter")
    expect(bo.locator("#messages .message").last).to_contain_text("half a thought")
    expect(announcer).not_to_contain_text("half a thought")  # your own message is not news


@pytest.fixture
def agent_server(llm_app):
    live = LiveServer(llm_app).start()
    yield live
    live.stop()


@pytest.mark.parametrize(("viewport", "scheme"), LOOKS)
def test_escape_stops_the_agents_for_everyone(agent_server, fake, new_context, viewport, scheme):
    with agent_server.app.app_context():
        ana = factories.create_user(name="Ana", plan="pro")
        bo = factories.create_user(name="Bo", plan="pro")
        room = chat_factories.create_room(ana, name="Roadmap")
        chat_factories.add_member(room, bo)
        nova = chat_factories.create_agent(ana, name="Nova", emoji="🔬")
        chat_factories.add_agent(room, nova, ana)
        ids = {"ana": ana.id, "bo": bo.id, "room": room.id}
    fake.queue(FakeReply(text=" ".join(f"point{n}" for n in range(200)), delay_per_token=0.05))
    ana_page = open_room(new_context, agent_server, ids, "ana", viewport, scheme)
    bo_page = open_room(new_context, agent_server, ids, "bo")
    composer = ana_page.get_by_role("textbox", name="Message")
    composer.fill("@Nova a long answer please")
    composer.press("Enter")
    for page in (ana_page, bo_page):
        expect(page.locator("#agent-status")).to_contain_text("answering: 🔬 Nova")
    composer.type("while it talks")
    composer.press("Escape")
    for page in (ana_page, bo_page):
        reply = page.locator(".message-agent").last
        expect(reply.locator(".message-tag", has_text="stopped")).to_be_visible()
        expect(page.locator("#agent-status")).not_to_contain_text("answering")
    expect(composer).to_be_focused()
    expect(composer).to_have_value("while it talks")
    assert "point199" not in bo_page.locator(".message-agent").last.inner_text()
