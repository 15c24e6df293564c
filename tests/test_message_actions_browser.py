"""Message actions in Chromium, two people in one room, at desktop (1280×800, light) and phone
(390 px, dark) sizes: one edits, replies, copies, regenerates or clears; the other sees it live."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from discux.discussion.engine import engine_for
from tests.conftest import LiveServer
from tests.support import chat_factories, factories
from tests.support.fake_llm import FakeReply
from tests.support.room_pages import open_room_page

pytestmark = pytest.mark.browser

SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


@pytest.fixture
def server(llm_app):
    server = LiveServer(llm_app).start()
    yield server
    chat_factories.wait_until_sockets_closed(llm_app)
    server.stop()


@pytest.fixture
def room(llm_app):
    with llm_app.app_context():
        ana = factories.create_user(name="Ana", plan="pro")
        bo = factories.create_user(name="Bo", plan="pro")
        room = chat_factories.create_room(ana, name="Roadmap")
        chat_factories.add_member(room, bo)
        nova = chat_factories.create_agent(ana, name="Nova", emoji="💡", style="friendly")
        chat_factories.add_agent(room, nova, ana)
        return {"ana": ana.id, "bo": bo.id, "room": room.id}


def open_room(new_context, server, room, who, size, **options):
    if size == "phone":
        options.setdefault("color_scheme", "dark")  # the phone runs in dark mode
    return open_room_page(new_context, server, room[who], room["room"], viewport=SIZES[size],
                          **options)


def send(page, text):
    composer = page.get_by_role("textbox", name="Message")
    composer.fill(text)
    composer.press("Enter")
    expect(composer).to_have_value("")


def fits_the_width(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.parametrize("size", SIZES)
def test_an_edit_and_a_reply_show_up_live_for_the_other_person(server, room, new_context, size):
    ana = open_room(new_context, server, room, "ana", size)
    bo = open_room(new_context, server, room, "bo", size)
    send(ana, "We ship on Friday")
    mine = ana.locator("#messages .message-own").last
    mine.locator('[data-action="edit"]').click()
    editor = ana.get_by_role("textbox", name="Edit your message")
    expect(editor).to_be_focused()
    expect(editor).to_have_value("We ship on Friday")
    editor.fill("We ship on **Monday**")
    editor.press("Enter")
    expect(mine.locator(".message-body strong")).to_have_text("Monday")
    expect(mine.locator(".message-edited")).to_have_text("edited")
    on_bo = bo.locator("#messages .message", has_text="We ship on").last
    expect(on_bo.locator(".message-body")).to_have_text("We ship on Monday")
    expect(on_bo.locator(".message-edited")).to_be_visible()

    on_bo.get_by_role("button", name="Reply to Ana’s message").click()
    quote = bo.locator("#composer-reply")
    expect(quote).to_be_visible()
    expect(quote).to_contain_text("Replying to Ana We ship on Monday")
    send(bo, "Monday works for me")
    expect(quote).to_be_hidden()
    reply_on_ana = ana.locator("#messages .message", has_text="Monday works for me")
    expect(reply_on_ana.locator(".message-quote")).to_contain_text("Ana We ship on Monday")
    reply_on_ana.locator(".message-quote").click()
    expect(mine).to_have_class(re.compile(r"message-highlight"))
    assert fits_the_width(ana) and fits_the_width(bo)
    assert ana.csp_errors == [] and bo.csp_errors == []


def test_escape_cancels_an_edit_and_a_too_long_edit_keeps_the_text(server, room, new_context):
    ana = open_room(new_context, server, room, "ana", "desktop")
    send(ana, "Short note")
    mine = ana.locator("#messages .message-own").last
    mine.locator('[data-action="edit"]').click()
    editor = ana.get_by_role("textbox", name="Edit your message")
    editor.fill("x" * 4001)
    editor.press("Enter")
    expect(ana.get_by_role("alert")).to_contain_text("at most 4,000 characters")
    expect(editor).to_have_value("x" * 4001)
    editor.press("Escape")
    expect(mine.locator(".message-body")).to_have_text("Short note")
    expect(mine.locator('[data-action="edit"]')).to_be_focused()


def test_copy_puts_the_source_text_on_the_clipboard(server, room, new_context):
    ana = open_room(new_context, server, room, "ana", "desktop",
                    permissions=["clipboard-read", "clipboard-write"])
    send(ana, "Use **bold** here")
    copy = ana.locator("#messages .message").last.get_by_role("button", name="Copy")
    copy.click()
    expect(copy).to_have_text("Copied")
    assert ana.evaluate("navigator.clipboard.readText()") == "Use **bold** here"


@pytest.mark.parametrize("size", SIZES)
def test_regenerate_replaces_the_reply_for_everyone_and_keeps_the_old(server, room, new_context,
                                                                     fake, size):
    ana = open_room(new_context, server, room, "ana", size)
    bo = open_room(new_context, server, room, "bo", size)
    fake.queue(FakeReply(text="First idea: a blog post."),
               FakeReply(text="Better idea: a launch video."))
    send(ana, "@Nova any launch ideas?")
    first = bo.locator("#messages .message-agent", has_text="First idea")
    expect(first).to_be_visible()
    assert engine_for(server.app).wait_idle(room["room"], timeout=10)
    first.get_by_role("button", name="Regenerate").click()
    for page in (ana, bo):
        newest = page.locator("#messages .message-agent").last
        expect(newest).to_contain_text("Better idea: a launch video.")
        expect(page.locator("#messages .message-agent", has_text="First idea")).to_be_hidden()
        expect(newest.locator(".message-regenerated")).to_be_visible()
    versions = ana.locator("#messages .message-agent").last.locator(".message-versions")
    versions.locator("summary").click()
    expect(versions).to_contain_text("First idea: a blog post.")
    assert fits_the_width(ana) and fits_the_width(bo)
    assert ana.csp_errors == [] and bo.csp_errors == []


def test_owner_clears_the_history_and_the_other_person_sees_it_go(server, room, new_context):
    ana = open_room(new_context, server, room, "ana", "desktop")
    bo = open_room(new_context, server, room, "bo", "phone")
    send(ana, "Old plan one")
    send(ana, "Old plan two")
    expect(bo.locator("#messages .message", has_text="Old plan two")).to_be_visible()
    ana.get_by_role("tab", name="Settings").click()  # the room's admin actions live there
    ana.get_by_role("button", name="Clear history…").click()
    expect(ana.get_by_role("heading", name="Clear the history of “Roadmap”?")).to_be_visible()
    ana.get_by_role("button", name="Clear the history").click()
    expect(ana.locator("#messages .message-system")).to_contain_text("Ana cleared the history")
    expect(bo.locator("#messages .message", has_text="Old plan")).to_have_count(0)
    expect(bo.locator("#messages .message-system")).to_contain_text("Ana cleared the history")
    assert ana.csp_errors == [] and bo.csp_errors == []
