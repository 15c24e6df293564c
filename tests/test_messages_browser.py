"""Two people in one room, in Chromium: messages, typing, presence and deletions show up live,
and the @ picker puts an agent's name in the composer."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from discux.auth.sessions import COOKIE_NAME
from tests.support import chat_factories, factories
from tests.support.room_pages import open_room_page

pytestmark = pytest.mark.browser


@pytest.fixture
def server(live_server):
    return live_server


@pytest.fixture
def room(app):
    with app.app_context():
        ana = factories.create_user(name="Ana", plan="pro")
        bo = factories.create_user(name="Bo", plan="pro")
        room = chat_factories.create_room(ana, name="Roadmap")
        chat_factories.add_member(room, bo)
        for name, emoji, style in (("Critic", "🎯", "direct"), ("Code Reviewer", "🔧", "analytical"),
                                   ("Coach", "💡", "friendly")):
            agent = chat_factories.create_agent(ana, name=name, emoji=emoji, style=style)
            chat_factories.add_agent(room, agent, ana)
        return {"ana": ana.id, "bo": bo.id, "room": room.id}


def open_room(new_context, server, room, who):
    return open_room_page(new_context, server, room[who], room["room"])


def test_two_people_see_each_others_messages_live(server, room, new_context):
    ana = open_room(new_context, server, room, "ana")
    bo = open_room(new_context, server, room, "bo")

    composer = ana.get_by_role("textbox", name="Message")
    composer.fill("Shall we ship on **Friday**?")
    composer.press("Enter")
    on_bo = bo.locator("#messages .message").last
    expect(on_bo).to_contain_text("Shall we ship on Friday?")
    expect(on_bo.locator(".sender-name")).to_have_text("Ana")
    expect(on_bo.locator("strong", has_text="Friday")).to_be_visible()
    expect(ana.locator("#messages .message").last.locator(".sender-name")).to_have_text("You")
    # The composer is empty again and still has the focus.
    expect(composer).to_have_value("")
    expect(composer).to_be_focused()

    reply = bo.get_by_role("textbox", name="Message")
    reply.fill("Yes")
    reply.press("Shift+Enter")
    reply.type("after the review")
    expect(reply).to_have_value("Yes\nafter the review")
    reply.press("Enter")
    on_ana = ana.locator("#messages .message").last
    expect(on_ana.locator(".sender-name")).to_have_text("Bo")
    expect(on_ana.locator(".message-body br")).to_have_count(1)
    expect(on_ana).to_contain_text("after the review")
    assert ana.csp_errors == [] and bo.csp_errors == []


def test_typing_shows_for_the_other_person_and_clears_itself(server, room, new_context):
    ana = open_room(new_context, server, room, "ana")
    bo = open_room(new_context, server, room, "bo")
    bo.get_by_role("textbox", name="Message").type("thinking")
    indicator = ana.locator("#typing-indicator")
    expect(indicator).to_have_text("Bo is typing…")
    expect(bo.locator("#typing-indicator")).to_have_text("")
    expect(indicator).to_have_text("", timeout=8_000)  # 5 s after the last keystroke


def test_presence_follows_the_other_persons_tab(server, room, new_context):
    ana = open_room(new_context, server, room, "ana")
    bo = open_room(new_context, server, room, "bo")
    bos_dot = ana.locator(f'.presence[data-user-id="{room["bo"]}"]').first
    expect(bos_dot).to_have_attribute("data-presence", "online")
    bo.context.close()
    expect(bos_dot).to_have_attribute("data-presence", "offline")


def test_deleted_message_disappears_for_everyone(server, room, new_context):
    ana = open_room(new_context, server, room, "ana")
    bo = open_room(new_context, server, room, "bo")
    composer = bo.get_by_role("textbox", name="Message")
    composer.fill("typo in here")
    composer.press("Enter")
    expect(ana.locator("#messages")).to_contain_text("typo in here")
    bo.on("dialog", lambda dialog: dialog.accept())
    bo.locator("#messages .message", has_text="typo in here").get_by_role(
        "button", name="Delete your message").click()
    expect(bo.locator("#messages")).not_to_contain_text("typo in here")
    expect(ana.locator("#messages")).not_to_contain_text("typo in here")


def test_keyboard_reaches_delete_and_it_asks_first(server, room, new_context):
    bo = open_room(new_context, server, room, "bo")
    composer = bo.get_by_role("textbox", name="Message")
    composer.fill("keyboard only")
    composer.press("Enter")
    message = bo.locator("#messages .message", has_text="keyboard only")
    expect(message).to_be_visible()
    dialogs, answers = [], iter([False, True])  # first "Cancel", then "OK"

    def answer(dialog):
        dialogs.append(dialog.message)
        dialog.accept() if next(answers) else dialog.dismiss()

    bo.on("dialog", answer)
    # Back from the composer, the newest message's Delete button is the previous stop.
    composer.focus()
    composer.press("Shift+Tab")
    delete = message.get_by_role("button", name="Delete your message")
    expect(delete).to_be_focused()
    bo.keyboard.press("Space")
    bo.evaluate("0")  # a round trip: the confirm dialog has come and gone
    expect(message).to_be_visible()  # cancelled: nothing deleted
    assert dialogs == ["Delete this message for everyone?"]
    expect(delete).to_be_focused()
    bo.keyboard.press("Enter")
    expect(message).to_have_count(0)


def test_without_javascript_delete_confirms_on_its_own_page(server, room, new_context):
    context = new_context(java_script_enabled=False)
    with server.app.app_context():
        token = factories.create_session_token(room["bo"])
        chat_factories.create_message(room["room"], room["bo"], "said without scripts")
    context.add_cookies([{"name": COOKIE_NAME, "value": token, "url": server.url}])
    page = context.new_page()
    page.goto(f"{server.url}/rooms/{room['room']}")
    page.locator("#messages .message", has_text="said without scripts").get_by_role(
        "button", name="Delete your message").click()
    expect(page.get_by_role("heading", name="Delete this message?")).to_be_visible()
    expect(page.locator("main")).to_contain_text("said without scripts")
    page.get_by_role("button", name="Delete the message").click()
    expect(page.get_by_role("heading", name="Roadmap")).to_be_visible()
    expect(page.locator("#messages")).not_to_contain_text("said without scripts")


def test_mention_picker_inserts_an_agent_name(server, room, new_context):
    ana = open_room(new_context, server, room, "ana")
    composer = ana.get_by_role("textbox", name="Message")
    composer.type("Thoughts @co")
    picker = ana.get_by_role("listbox", name="Agents you can mention")
    expect(picker.get_by_role("option")).to_have_count(2)
    expect(picker.get_by_role("option").first).to_contain_text("🔧Code Reviewer analytical")
    expect(picker.get_by_role("option").nth(1)).to_contain_text("Coach")
    composer.press("ArrowDown")
    expect(picker.get_by_role("option").nth(1)).to_have_attribute("aria-selected", "true")
    composer.press("Enter")  # picks, does not send
    expect(composer).to_have_value("Thoughts @Coach ")
    expect(picker).to_be_hidden()

    composer.type("and @")
    expect(picker.get_by_role("option")).to_have_count(4)  # every agent, then @all
    expect(picker.get_by_role("option").last).to_contain_text("all")
    composer.press("ArrowUp")
    composer.press("Enter")
    expect(composer).to_have_value("Thoughts @Coach and @all ")
    composer.press("Enter")  # now it sends
    # Ana's own message, not simply the last one: the agents' demo replies can land first.
    expect(ana.locator("#messages .message-own").last).to_contain_text("Thoughts @Coach and @all")
    expect(composer).to_have_value("")


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
    # By its text: Nova Prime's demo reply may still be arriving around it.
    expect(ana_page.locator(".message", has_text="Agreed, ship it.").locator(".sender-name")
           ).to_have_text("Bo")


def test_dropped_socket_reconnects_and_replays_what_was_missed(app, server, room, new_context):
    from tests.support.ws_client import Member

    ana = open_room(new_context, server, room, "ana")
    with app.app_context():
        bo_token = factories.create_session_token(room["bo"])
    bo = Member(server.url, bo_token)
    bo.post(room["room"], "before the drop")
    expect(ana.locator("#messages")).to_contain_text("before the drop")
    newest = ana.locator("#messages .message").last.get_attribute("id").removeprefix("message-")
    reconnects = []
    ana.on("websocket", lambda ws: reconnects.append(ws.url))

    app.extensions["discux.realtime"].close_all(1012, "Restarting")
    bo.post(room["room"], "while you were away")
    expect(ana.locator("#messages .message", has_text="while you were away")).to_have_count(1)
    expect(ana.locator("#chat-connection")).to_be_hidden()
    # The extension reconnected from the newest message on screen.
    assert reconnects and f"after={newest}" in reconnects[-1]
    expect(ana.locator("#messages .message", has_text="before the drop")).to_have_count(1)
