"""First run and unread counts: the sample room a new user starts with, and the dashboard's
rooms by last activity with their unread counts and last message."""

from __future__ import annotations

import re
import threading

import pytest
import requests
import sqlalchemy as sa
from playwright.sync_api import expect

from discux.auth.sessions import COOKIE_NAME
from discux.extensions import db
from discux.models import Agent, Message, Room, RoomAgent
from tests.support import chat_factories as cf
from tests.support import factories


def counts(app, user_id: str) -> tuple[int, int, int]:
    """(rooms, agents, room_agents) the user owns."""
    with app.app_context():
        rooms = db.session.scalar(sa.select(sa.func.count()).select_from(Room)
                                  .where(Room.created_by == user_id))
        agents = db.session.scalar(sa.select(sa.func.count()).select_from(Agent)
                                   .where(Agent.created_by == user_id))
        placed = db.session.scalar(sa.select(sa.func.count()).select_from(RoomAgent)
                                   .where(RoomAgent.added_by == user_id))
        return rooms, agents, placed


def start_sample(client, csrf_token):
    return client.post("/start/sample-room", data={"csrf_token": csrf_token()})


def test_a_new_user_is_offered_a_sample_room(client, login, make_user):
    login(make_user())
    page = client.get("/").get_data(as_text=True)
    assert "Start with a sample room" in page
    assert 'action="/start/sample-room"' in page


def test_the_sample_room_has_three_agents_of_different_styles_and_a_welcome(
        app, client, csrf_token, login, make_user):
    user = make_user(name="Ana")
    login(user)
    response = start_sample(client, csrf_token)
    assert response.status_code == 303
    assert counts(app, user.id) == (1, 3, 3)
    page = client.get(response.location).get_data(as_text=True)
    assert "<h1>Sample room</h1>" in page
    for name in ("Scout", "Critic", "Analyst"):
        assert name in page
    assert "@Scout" in page and "@all" in page and "hand over" in page and "Summarize" in page
    with app.app_context():
        styles = set(db.session.scalars(sa.select(Agent.style).where(Agent.created_by == user.id)))
        assert len(styles) == 3
        [welcome] = db.session.scalars(sa.select(Message)).all()
        assert welcome.type == "system"
    # It is an ordinary room: its owner may rename and delete it.
    room_id = response.location.rsplit("/", 1)[1]
    renamed = client.post(f"/rooms/{room_id}/edit", data={
        "name": "Our launch", "description": "", "csrf_token": csrf_token()})
    assert renamed.status_code == 303
    assert client.post(f"/rooms/{room_id}/delete",
                       data={"csrf_token": csrf_token()}).status_code == 303
    assert counts(app, user.id) == (0, 3, 0)


def test_a_double_click_makes_one_sample_room(app, client, csrf_token, login, make_user):
    user = make_user()
    login(user)
    first = start_sample(client, csrf_token)
    second = start_sample(client, csrf_token)
    assert first.location == second.location
    assert counts(app, user.id) == (1, 3, 3)


def test_two_clicks_at_once_make_one_sample_room(app, live_server, make_user):
    user = make_user()
    with app.app_context():
        token = factories.create_session_token(user.id)
    session = requests.Session()
    session.cookies.set(COOKIE_NAME, token)
    page = session.get(live_server.url + "/").text
    csrf = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
    answers = []

    def click():
        answers.append(session.post(live_server.url + "/start/sample-room",
                                    data={"csrf_token": csrf}, allow_redirects=False))

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert [a.status_code for a in answers] == [303, 303]
    assert answers[0].headers["Location"] == answers[1].headers["Location"]
    assert counts(app, user.id) == (1, 3, 3)


def test_a_plan_without_three_free_agent_slots_is_told_why_and_gets_nothing(
        app, client, csrf_token, login, make_user):
    user = make_user()
    with app.app_context():
        cf.create_agent(user.id, name="Mine")
    login(user)
    page = client.get("/").get_data(as_text=True)
    assert "brings 3 agents" in page and "allows 3 agents; you have 1" in page
    response = start_sample(client, csrf_token)
    assert response.status_code == 303
    page = client.get(response.location).get_data(as_text=True)
    assert "The sample room brings 3 agents, and your free plan allows 3 agents; you have 1." \
        in page
    assert counts(app, user.id) == (0, 1, 0)


def test_the_sample_room_needs_csrf(app, client, login, make_user):
    user = make_user()
    login(user)
    assert client.post("/start/sample-room").status_code == 400
    assert counts(app, user.id) == (0, 0, 0)


# ---- the dashboard: rooms by last activity, unread counts, last message ----

def say(room_id: str, person, text: str, **fields) -> str:
    """A message from `person` (a detached user) in the room; its id."""
    return cf.create_message(room_id, person.id, text, sender_name=person.display_name,
                             **fields).id


def two_people_in(app, make_user, *room_names: str):
    """Ana owns the rooms, Ben is in them too; (ana, ben, room ids)."""
    ana, ben = make_user(name="Ana", plan="pro"), make_user(name="Ben", plan="pro")
    with app.app_context():
        rooms = [cf.create_room(ana.id, name=name) for name in room_names]
        for room in rooms:
            cf.add_member(room, ben.id)
        return ana, ben, [room.id for room in rooms]


def test_dashboard_lists_rooms_by_last_activity_with_the_last_message(app, client, login,
                                                                      make_user):
    ana, ben, (quiet, busy) = two_people_in(app, make_user, "Quiet room", "Busy room")
    with app.app_context():
        say(busy, ben, "Old news", days_ago=2)
        say(quiet, ben, "Fresh **idea** for the launch")
    login(ana)
    page = client.get("/").get_data(as_text=True)
    assert page.index("Quiet room") < page.index("Busy room")
    assert "Fresh **idea** for the launch" in page and "Ben:" in page


def unread_on_dashboard(client, room_name: str) -> str | None:
    page = client.get("/").get_data(as_text=True)
    for match in re.finditer(r'<li class="room-overview-item[^"]*"[^>]*>(.*?)</li>', page, re.S):
        if room_name in match.group(1):
            badge = re.search(r'class="unread-badge"[^>]*>([^<]+)<', match.group(1))
            return badge.group(1) if badge else None
    raise AssertionError(f"{room_name} is not on the dashboard")


def test_unread_counts_others_messages_and_reading_resets_them(app, client, login, make_user):
    ana, ben, (room_id,) = two_people_in(app, make_user, "Launch plan")
    login(ana)
    client.get(f"/rooms/{room_id}")  # Ana has read everything so far
    assert unread_on_dashboard(client, "Launch plan") is None
    with app.app_context():
        for text in ("One", "Two", "Three"):
            say(room_id, ben, text)
        say(room_id, ana, "My own reply")
    assert unread_on_dashboard(client, "Launch plan") == "3"
    client.get(f"/rooms/{room_id}")
    assert unread_on_dashboard(client, "Launch plan") is None


def test_the_open_tab_marks_what_arrived_as_read(app, client, csrf_token, login, make_user):
    ana, ben, (room_id,) = two_people_in(app, make_user, "Launch plan")
    login(ana)
    client.get(f"/rooms/{room_id}")
    with app.app_context():
        ids = [say(room_id, ben, text) for text in ("One", "Two")]
    assert unread_on_dashboard(client, "Launch plan") == "2"

    def read(message_id, **extra):
        return client.post(f"/rooms/{room_id}/read",
                           data={"message_id": message_id, "csrf_token": csrf_token(), **extra})

    assert read(ids[0]).status_code == 204
    assert unread_on_dashboard(client, "Launch plan") == "1"
    read(ids[1])
    read(ids[0])  # never backwards
    assert unread_on_dashboard(client, "Launch plan") is None
    bad = read("not-an-id")
    assert bad.status_code == 422 and bad.get_json()["error"]["field"] == "message_id"
    assert client.post(f"/rooms/{room_id}/read", data={"message_id": ids[0]}).status_code == 400


def test_only_members_may_mark_a_room_read(app, client, csrf_token, login, make_user):
    ana, _, (room_id,) = two_people_in(app, make_user, "Private")
    with app.app_context():
        message_id = say(room_id, ana, "Secret")
    login(make_user())
    answer = client.post(f"/rooms/{room_id}/read",
                         data={"message_id": message_id, "csrf_token": csrf_token()})
    assert answer.status_code == 404


def test_a_message_of_another_room_is_not_a_read_marker(app, client, csrf_token, login,
                                                        make_user):
    ana, ben, (room_id, other_id) = two_people_in(app, make_user, "Launch plan", "Other")
    with app.app_context():
        elsewhere = say(other_id, ben, "Elsewhere")
    login(ana)
    answer = client.post(f"/rooms/{room_id}/read",
                         data={"message_id": elsewhere, "csrf_token": csrf_token()})
    assert answer.status_code == 404


def test_signed_out_visitors_are_sent_to_sign_in_and_nothing_changes(app, client, csrf_token,
                                                                      make_user):
    ana, _, (room_id,) = two_people_in(app, make_user, "Launch plan")
    with app.app_context():
        message_id = say(room_id, ana, "Hello")
    for path, data in (("/start/sample-room", {}), (f"/rooms/{room_id}/read",
                                                    {"message_id": message_id})):
        answer = client.post(path, data={**data, "csrf_token": csrf_token()})
        assert answer.status_code == 302 and answer.location.startswith("/login")
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Room)) == 1


@pytest.mark.browser
@pytest.mark.parametrize("viewport, scheme", [({"width": 1280, "height": 800}, "light"),
                                              ({"width": 390, "height": 844}, "dark")])
def test_a_new_user_starts_in_the_sample_room_in_a_browser(app, make_user, live_server,
                                                           signed_in_page, viewport, scheme):
    page = signed_in_page(make_user(name="Ana"), viewport=viewport, color_scheme=scheme)
    page.goto(live_server.url)
    page.get_by_role("button", name="Start with a sample room").click()
    expect(page.get_by_role("heading", name="Sample room", level=1)).to_be_visible()
    welcome = page.locator("#messages .message-system").first
    expect(welcome).to_contain_text("@Scout")
    expect(welcome).to_contain_text("Summarize")
    for name in ("Scout", "Critic", "Analyst"):
        expect(page.locator("#agents")).to_contain_text(name)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.goto(live_server.url)  # the dashboard now lists the room, not the offer
    expect(page.get_by_role("button", name="Start with a sample room")).to_have_count(0)
    expect(page.locator(".room-overview-item", has_text="Sample room")).to_be_visible()
