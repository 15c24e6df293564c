"""Two people in two browsers: A creates a room and an invite link, B (signed out) follows it,
signs in with demo sign-in, joins, and both see each other in the room's participant list."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_invite_link_brings_a_signed_out_person_into_the_room(live_server, signed_in_page,
                                                              new_context, make_user):
    ana = make_user(name="Ana Alvarez", email="ana@example.com")
    page_a = signed_in_page(ana)
    page_a.goto(f"{live_server.url}/rooms/new")
    page_a.get_by_label("Name").fill("Launch plan")
    page_a.get_by_label("Description").fill("Ship it in May")
    page_a.get_by_role("button", name="Create room").click()
    expect(page_a).to_have_url(re.compile(r"/rooms/[0-9a-f-]{36}$"))
    room_url = page_a.url
    expect(page_a.get_by_role("heading", name="Launch plan")).to_be_visible()

    page_a.get_by_role("button", name="Invite", exact=True).click()
    invite = page_a.get_by_role("dialog", name="Invite people to Launch plan")
    invite.get_by_label("Link expires after").select_option(label="7 days")
    invite.get_by_role("button", name="Create link").click()
    link_box = invite.get_by_label("Invitation link")
    expect(link_box).to_have_value(re.compile(r"/invite/[A-Za-z0-9_-]{43}$"))
    link = link_box.input_value()
    expect(invite.locator(".invitation-list")).to_contain_text("open")

    page_b = new_context().new_page()
    page_b.goto(link)
    expect(page_b).to_have_url(re.compile(r"/login\?next=/invite/"))
    demo = page_b.locator(".demo-login")
    demo.get_by_label("Email").fill("ben@example.com")
    demo.get_by_label("Name").fill("Ben Baker")
    demo.get_by_role("button", name="Sign in (demo)").click()
    expect(page_b).to_have_url(link)
    expect(page_b.get_by_role("heading", name="Launch plan")).to_be_visible()
    expect(page_b.get_by_text("1 member · 0 agents")).to_be_visible()
    page_b.get_by_role("button", name="Join room").click()

    expect(page_b).to_have_url(room_url)
    people_b = page_b.locator("#people")
    expect(people_b).to_contain_text("Ana Alvarez")
    expect(people_b).to_contain_text("Ben Baker")

    page_a.reload()
    people_a = page_a.locator("#people")
    expect(people_a).to_contain_text("Ben Baker")
    expect(people_a).to_contain_text("Ana Alvarez")
    page_a.get_by_role("button", name="Invite", exact=True).click()
    expect(page_a.get_by_role("dialog").locator(".invitation-list")).to_contain_text("used")
