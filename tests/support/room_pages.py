"""A room open in a real browser, as one person sees it (Playwright pages for browser tests)."""

from __future__ import annotations

from playwright.sync_api import expect

from discux.auth.sessions import COOKIE_NAME
from tests.support import factories


def open_room_page(new_context, server, user_id: str, room_id: str, *init_scripts: str,
                   wait_for_socket: bool = True, **context_options):
    """A new browser profile signed in as `user_id`, on the room's page, once its socket is open
    (the person's own presence dot turns online); `page.csp_errors` collects what the Content
    Security Policy refused."""
    context = new_context(**context_options)
    for script in init_scripts:
        context.add_init_script(script)
    with server.app.app_context():
        token = factories.create_session_token(user_id)
    context.add_cookies([{"name": COOKIE_NAME, "value": token, "url": server.url}])
    page = context.new_page()
    page.csp_errors = []
    page.on("console", lambda message: "Content Security Policy" in message.text
            and page.csp_errors.append(message.text))
    page.goto(f"{server.url}/rooms/{room_id}")
    if wait_for_socket:
        expect(page.locator(f'.presence[data-user-id="{user_id}"]').first).to_have_attribute(
            "data-presence", "online")
    return page
