"""A role change reaches the member's open sockets at once, on every worker: a demoted admin's
socket stops offering to delete other people's messages, a promoted member's starts, and the
server's answer to a delete agrees. Removal still closes the socket on every worker."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from discux.extensions import db
from discux.models import Message
from tests.conftest import LiveServer
from tests.support.chat_factories import World, wait_until_sockets_closed
from tests.support.ws_client import (
    Member,
    close_code,
    connect,
    wait_for_event,
    wait_for_text,
)

DELETE_CONTROL = 'class="message-delete"'


def open_html_socket(base_url: str, room_id: str, person):
    """The room's HTML socket (what the page's htmx uses), once the server has registered it."""
    ws = connect(base_url, room_id, person.token, fmt="html")
    wait_for_text(ws, f'data-user-id="{person.id}" data-presence="online"')
    return ws


def open_json_socket(base_url: str, room_id: str, person):
    ws = connect(base_url, room_id, person.token)
    wait_for_event(ws, lambda e: e["type"] == "presence" and e["data"]["user_id"] == person.id)
    return ws


def set_role(base_url: str, owner: Member, room_id: str, user_id: str, role: str) -> None:
    response = owner.http.post(f"{base_url}/rooms/{room_id}/members/{user_id}/role",
                               data={"role": role, "csrf_token": owner.csrf},
                               allow_redirects=False, timeout=10)
    assert response.status_code == 303


def message_id(app, content: str) -> str:
    with app.app_context():
        return db.session.scalar(sa.select(Message.id).where(Message.content == content))


def delete_status(base_url: str, person: Member, room_id: str, message: str) -> int:
    return person.http.delete(f"{base_url}/rooms/{room_id}/messages/{message}",
                              headers={"X-CSRFToken": person.csrf, "HX-Request": "true"},
                              timeout=10).status_code


@pytest.fixture
def world(app) -> World:
    yield World(app)
    wait_until_sockets_closed(app)


def test_a_demoted_admin_s_open_socket_loses_the_delete_controls_at_once(app, live_server,
                                                                        world):
    url, room_id = live_server.url, world.room_id
    admin_page = open_html_socket(url, room_id, world.admin)
    admin_client = open_json_socket(url, room_id, world.admin)
    owner, member = Member(url, world.owner.token), Member(url, world.member.token)

    assert member.post(room_id, "first note from Ana").status_code == 200
    assert DELETE_CONTROL in wait_for_text(admin_page, "first note from Ana")

    set_role(url, owner, room_id, world.admin.id, "member")
    rights = wait_for_event(admin_client, lambda e: e["type"] == "rights.changed")
    assert rights["data"] == {"may_delete_own": True, "may_delete_any": False}
    # The page's Delete buttons on other people's messages go (htmx deletes what the selector
    # matches); those on their own stay.
    assert 'hx-swap-oob="delete:#messages .message:not(.message-own) .message-delete"' in (
        wait_for_text(admin_page, "hx-swap-oob=\"delete:"))
    assert member.post(room_id, "second note from Ana").status_code == 200
    assert DELETE_CONTROL not in wait_for_text(admin_page, "second note from Ana")
    adam = Member(url, world.admin.token)
    assert delete_status(url, adam, room_id, message_id(app, "second note from Ana")) == 403
    # Their own messages they may still delete, and the socket still says so.
    assert adam.post(room_id, "Adam's own note").status_code == 200
    assert DELETE_CONTROL in wait_for_text(admin_page, "own note")
    for ws in (admin_page, admin_client):
        ws.close()


def test_a_promoted_member_s_open_socket_gains_them_at_once(app, live_server, world):
    url, room_id = live_server.url, world.room_id
    member_page = open_html_socket(url, room_id, world.member)
    owner, admin = Member(url, world.owner.token), Member(url, world.admin.token)

    assert admin.post(room_id, "first word from Adam").status_code == 200
    assert DELETE_CONTROL not in wait_for_text(member_page, "first word from Adam")

    set_role(url, owner, room_id, world.member.id, "admin")
    assert admin.post(room_id, "second word from Adam").status_code == 200
    assert DELETE_CONTROL in wait_for_text(member_page, "second word from Adam")
    ana = Member(url, world.member.token)
    assert delete_status(url, ana, room_id, message_id(app, "second word from Adam")) == 200
    member_page.close()


def test_role_changes_and_removal_reach_sockets_on_another_worker(app, make_app, redis_server):
    """Two app instances sharing one Redis, as two gunicorn workers would: the change is made
    on the first, the socket is open on the second."""
    first = make_app(DISCUX_REDIS_URL=redis_server.url)
    second = make_app(DISCUX_REDIS_URL=redis_server.url)
    world = World(first)
    servers = [LiveServer(first).start(), LiveServer(second).start()]
    here, there = (server.url for server in servers)
    room_id = world.room_id
    try:
        admin_page = open_html_socket(there, room_id, world.admin)
        owner, member = Member(here, world.owner.token), Member(here, world.member.token)

        set_role(here, owner, room_id, world.admin.id, "member")
        assert member.post(room_id, "after the demotion").status_code == 200
        assert DELETE_CONTROL not in wait_for_text(admin_page, "after the demotion", timeout=10)

        set_role(here, owner, room_id, world.admin.id, "admin")
        assert member.post(room_id, "after the promotion").status_code == 200
        assert DELETE_CONTROL in wait_for_text(admin_page, "after the promotion", timeout=10)

        removed = owner.http.post(f"{here}/rooms/{room_id}/members/{world.admin.id}/remove",
                                  data={"csrf_token": owner.csrf}, allow_redirects=False,
                                  timeout=10)
        assert removed.status_code == 303
        assert close_code(admin_page, timeout=10) == 1008
    finally:
        for instance in (first, second):
            wait_until_sockets_closed(instance)
        for server in servers:
            server.stop()
        for instance in (first, second):
            if "discux.realtime" in instance.extensions:
                instance.extensions["discux.realtime"].close()


@pytest.mark.browser
def test_in_the_browser_a_demoted_admin_s_delete_buttons_go_without_a_reload(app, live_server,
                                                                           world, new_context):
    from playwright.sync_api import expect

    from discux.auth.sessions import COOKIE_NAME

    url, room_id = live_server.url, world.room_id
    member = Member(url, world.member.token)
    assert member.post(room_id, "a note from Ana").status_code == 200
    context = new_context()
    context.add_cookies([{"name": COOKIE_NAME, "value": world.admin.token, "url": url}])
    page = context.new_page()
    page.goto(f"{url}/rooms/{room_id}")
    expect(page.locator(f'.presence[data-user-id="{world.admin.id}"]').first).to_have_attribute(
        "data-presence", "online")
    adam = Member(url, world.admin.token)
    assert adam.post(room_id, "a note from Adam").status_code == 200
    anas = page.locator("#messages .message", has_text="a note from Ana")
    adams = page.locator("#messages .message", has_text="a note from Adam")
    expect(anas.locator(".message-delete")).to_have_count(1)
    expect(adams.locator(".message-delete")).to_have_count(1)

    set_role(url, Member(url, world.owner.token), room_id, world.admin.id, "member")
    expect(anas.locator(".message-delete")).to_have_count(0)
    expect(adams.locator(".message-delete")).to_have_count(1)  # their own stays
    assert member.post(room_id, "a later note from Ana").status_code == 200
    later = page.locator("#messages .message", has_text="a later note from Ana")
    expect(later).to_have_count(1)
    expect(later.locator(".message-delete")).to_have_count(0)
