"""A person signs in with demo sign-in, sees the dashboard, and signs out, in Chromium."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_demo_sign_in_and_out(live_server, new_context):
    page = new_context().new_page()
    page.goto(live_server.url + "/")
    page.get_by_role("button", name="Sign in to start").click()
    expect(page).to_have_title("Sign in · Discux")
    page.get_by_label("Email").last.fill("ana@example.com")
    page.get_by_label("Name").fill("Ana")
    page.get_by_role("button", name="Sign in (demo)").click()
    expect(page.get_by_role("heading", name="Welcome, Ana")).to_be_visible()
    page.get_by_text("Ana", exact=True).click()  # the user menu
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    page.goto(live_server.url + "/settings")
    expect(page).to_have_title("Sign in · Discux")


def test_bad_email_keeps_what_was_typed(live_server, new_context):
    page = new_context().new_page()
    page.goto(live_server.url + "/login")
    page.get_by_label("Email").last.fill("not-an-email")
    page.get_by_label("Name").fill("Bo")
    page.get_by_role("button", name="Sign in (demo)").click()
    expect(page.get_by_text("Enter a valid email address.")).to_be_visible()
    expect(page.get_by_label("Name")).to_have_value("Bo")


def test_layout_fits_a_360px_phone_in_dark_mode(live_server, new_context, make_user,
                                                signed_in_page, tmp_path):
    page = signed_in_page(make_user(name="Cy"), viewport={"width": 360, "height": 740},
                          color_scheme="dark")
    page.goto(live_server.url + "/")
    expect(page.get_by_role("heading", name="Welcome, Cy")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    red, green, blue = (int(x) for x in background[background.index("(") + 1:-1].split(",")[:3])
    assert red + green + blue < 150, background  # dark, following the system setting
    page.screenshot(path=str(tmp_path / "dashboard-360-dark.png"))
