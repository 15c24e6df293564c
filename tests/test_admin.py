"""The instance admin page: only the admins DISCUX_ADMIN_EMAILS names see it; they change plans,
disable and enable users (a disabled user is refused at once, everywhere), and read the
instance's figures; DISCUX_DEFAULT_PLAN picks the plan new users start on."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import requests
import sqlalchemy as sa

from discux import create_app, plans
from discux.auth import mail
from discux.auth.sessions import COOKIE_NAME, signed_in_cache
from discux.config import ConfigError
from discux.discussion.engine import engine_for
from discux.extensions import db
from discux.ids import utcnow
from discux.models import Message, Room, User
from tests.conftest import CSRF_IN_PAGE, LiveServer, base_config, empty_tables
from tests.support import chat_factories, factories, ws_client
from tests.support.api_helpers import Api, issue_token
from tests.support.email_links import open_sign_in_link
from tests.support.fake_llm import FakeReply
from tests.support.oauth_provider import OAuthTestProvider

ADMIN_EMAIL = "root@example.com"


@pytest.fixture
def admin_app(make_app):
    app = make_app(DISCUX_ADMIN_EMAILS=" Root@Example.com , other-admin@example.com")
    yield app
    engine = app.extensions.get("discux.discussion")
    if engine is not None:
        engine.wait_idle(timeout=15)
    with app.app_context():
        db.session.remove()
        empty_tables(db.engine)


class Person:
    """A user of `app` with their own signed-in test client."""

    def __init__(self, app, **fields):
        self.app = app
        with app.app_context():
            user = factories.create_user(**fields)
            self.id, self.email = user.id, user.email
            token = factories.create_session_token(user.id)
        self.client = app.test_client()
        self.client.set_cookie(COOKIE_NAME, token, domain="localhost")

    def csrf(self) -> str:
        return CSRF_IN_PAGE.search(self.client.get("/").get_data(as_text=True)).group(1)

    def post(self, path: str, **data):
        return self.client.post(path, data={"csrf_token": self.csrf(), **data})

    def user(self) -> User:
        with self.app.app_context():
            user = db.session.get(User, self.id)
            db.session.expunge(user)
            return user


@pytest.fixture
def admin(admin_app) -> Person:
    return Person(admin_app, email=ADMIN_EMAIL, name="Root")


@pytest.fixture
def member(admin_app) -> Person:
    return Person(admin_app, email="mia@example.com", name="Mia Member")


def row_of(page: str, email: str) -> str:
    """The users-table row (its HTML) of `email`."""
    match = re.search(r'<tr id="user-[^"]+">\s*<td data-label="Email">' + re.escape(email)
                      + r"</td>.*?</tr>", page, re.S)
    assert match, f"no row for {email}"
    return match.group(0)


def cell(row: str, label: str) -> str:
    match = re.search(rf'<td data-label="{label}">(.*?)</td>', row, re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(1))).strip()


def create_room(person: Person, name: str):
    return person.post("/rooms/new", name=name, description="")


# ---- who may see it ----

@pytest.mark.parametrize(("method", "path"), [
    ("get", "/admin"),
    ("get", "/admin/users/{id}/disable"),
    ("post", "/admin/users/{id}/disable"),
    ("post", "/admin/users/{id}/enable"),
    ("post", "/admin/users/{id}/plan"),
])
def test_admin_pages_do_not_exist_for_anyone_else(admin, member, method, path):
    path = path.format(id=admin.id)
    data = {"csrf_token": member.csrf(), "plan": "team"} if method == "post" else None
    response = getattr(member.client, method)(path, data=data)
    assert response.status_code == 404
    assert admin.user().subscription == "free" and admin.user().disabled_at is None


def test_signed_out_visitor_is_sent_to_sign_in(admin_app):
    response = admin_app.test_client().get("/admin")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_admin_link_shows_in_the_nav_for_admins_only(admin, member):
    assert 'href="/admin"' in admin.client.get("/").get_data(as_text=True)
    assert 'href="/admin"' not in member.client.get("/").get_data(as_text=True)


def test_without_admin_emails_nobody_is_admin(make_app):
    app = make_app()
    person = Person(app, email=ADMIN_EMAIL)
    assert person.client.get("/admin").status_code == 404


# ---- the users list ----

def test_admin_sees_each_user_with_plan_activity_rooms_and_messages_this_month(admin_app, admin,
                                                                               member):
    with admin_app.app_context():
        user = db.session.get(User, member.id)
        room = chat_factories.create_room(user)
        chat_factories.create_room(user, active=False)  # archived: not counted
        for text in ("one", "two", "three"):
            chat_factories.create_message(room, user, text)
        last_month = plans.month_start() - timedelta(days=2)
        chat_factories.create_message(room, user, "old", days_ago=(utcnow() - last_month).days)
    page = admin.client.get("/admin")
    assert page.status_code == 200
    row = row_of(page.get_data(as_text=True), "mia@example.com")
    assert cell(row, "Name") == "Mia Member"
    assert 'value="free" selected' in row
    assert cell(row, "Rooms") == "1"
    assert cell(row, "Messages this month") == "3"
    assert cell(row, "Last active").endswith(" UTC")
    assert "Disable…" in row


def test_search_finds_users_by_email_or_name(admin_app, admin, member):
    Person(admin_app, email="zed@example.com", name="Zed Zebra")
    page = admin.client.get("/admin?q=zebra").get_data(as_text=True)
    assert "zed@example.com" in page and "mia@example.com" not in page
    assert "1 user matching “zebra”" in page
    page = admin.client.get("/admin?q=MIA@").get_data(as_text=True)
    assert "mia@example.com" in page and "zed@example.com" not in page
    # LIKE's wildcards are searched for as themselves.
    assert "mia@example.com" not in admin.client.get("/admin?q=%25").get_data(as_text=True)


def test_a_large_instance_is_shown_a_page_at_a_time(admin_app, admin):
    with admin_app.app_context():
        for number in range(55):
            factories.create_user(email=f"bulk{number:02d}@example.com")
    first = admin.client.get("/admin").get_data(as_text=True)
    assert first.count('<tr id="user-') == 50
    assert "56 users, page 1 of 2" in first and 'rel="next"' in first
    second = admin.client.get("/admin?page=2").get_data(as_text=True)
    assert second.count('<tr id="user-') == 6 and 'rel="prev"' in second
    # A page past the end shows the last one rather than an error.
    assert admin.client.get("/admin?page=99").get_data(as_text=True).count('<tr id="user-') == 6


# ---- plans ----

def test_a_plan_change_takes_effect_on_the_users_next_request(admin, member):
    assert create_room(member, "First").status_code == 303
    refused = create_room(member, "Second")
    assert refused.status_code == 403 and "free plan allows 1 active rooms" in refused.get_data(
        as_text=True)
    response = admin.post(f"/admin/users/{member.id}/plan?q=mia", plan="pro")
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin?q=mia"
    assert "mia@example.com is now on the pro plan." in admin.client.get(
        response.headers["Location"]).get_data(as_text=True)
    assert create_room(member, "Second").status_code == 303
    assert member.user().subscription == "pro"


@pytest.mark.parametrize("plan", ["enterprise", "", "FREE"])
def test_an_unknown_plan_is_refused_on_the_page_with_the_reason(admin, member, plan):
    response = admin.post(f"/admin/users/{member.id}/plan", plan=plan)
    assert response.status_code == 422
    row = row_of(response.get_data(as_text=True), "mia@example.com")
    assert "Choose one of free, pro, team." in row and 'aria-invalid="true"' in row
    assert member.user().subscription == "free"


def test_every_admin_change_needs_the_csrf_token(admin, member):
    for path, data in ((f"/admin/users/{member.id}/plan", {"plan": "pro"}),
                       (f"/admin/users/{member.id}/disable", {}),
                       (f"/admin/users/{member.id}/enable", {})):
        response = admin.client.post(path, data=data)
        assert response.status_code == 400
        assert "Your form expired" in response.get_data(as_text=True)
    assert member.user().subscription == "free" and member.user().disabled_at is None


def test_an_unknown_user_is_not_found(admin):
    assert admin.client.get("/admin/users/nobody/disable").status_code == 404
    assert admin.post("/admin/users/nobody/plan", plan="pro").status_code == 404
    assert admin.post("/admin/users/nobody/plan", plan="bogus").status_code == 404
    assert admin.post("/admin/users/nobody/enable").status_code == 404


# ---- disabling and enabling ----

def test_disabling_asks_first(admin, member):
    page = admin.client.get(f"/admin/users/{member.id}/disable").get_data(as_text=True)
    assert "Disable mia@example.com?" in page
    assert f'action="/admin/users/{member.id}/disable"' in page
    assert member.user().disabled_at is None  # opening the question changes nothing


def test_disabling_stops_a_session_and_an_api_token_at_once(admin_app, admin, member):
    token = issue_token(admin_app, member)
    api = Api(admin_app.test_client(), token)
    assert member.client.get("/settings").status_code == 200
    assert api.get("/me").status_code == 200

    response = admin.post(f"/admin/users/{member.id}/disable")
    assert response.status_code == 303
    assert "mia@example.com is disabled" in admin.client.get("/admin").get_data(as_text=True)

    signed_out = member.client.get("/settings")
    assert signed_out.status_code == 302 and signed_out.headers["Location"].startswith("/login")
    login_page = member.client.get(signed_out.headers["Location"]).get_data(as_text=True)
    assert "This account has been disabled by an administrator" in login_page
    assert member.client.get_cookie(COOKIE_NAME) is None
    refused = api.get("/me")
    assert refused.status_code == 401
    assert refused.get_json()["error"]["code"] == "account_disabled"
    assert "disabled by an administrator" in refused.get_json()["error"]["message"]
    row = row_of(admin.client.get("/admin").get_data(as_text=True), "mia@example.com")
    assert "disabled" in cell(row, "Account") and "Enable" in row


def test_a_disabled_user_cannot_sign_in_again(admin_app, admin, member, caplog):
    admin.post(f"/admin/users/{member.id}/disable")
    browser = admin_app.test_client()
    csrf = CSRF_IN_PAGE.search(browser.get("/login").get_data(as_text=True)).group(1)
    demo = browser.post("/login/demo", data={"email": member.email, "name": "Mia",
                                             "csrf_token": csrf})
    assert demo.status_code == 403
    assert "disabled by an administrator" in demo.get_data(as_text=True)

    with caplog.at_level("WARNING"):
        browser.post("/login/email", data={"email": member.email, "csrf_token": csrf})
        assert mail.outbox(admin_app).wait_idle()
    link = re.search(r"(http://\S+/login/email/verify\S+)", caplog.text).group(1)
    by_link = open_sign_in_link(browser, link.replace("http://localhost", ""))
    assert by_link.status_code == 403
    assert "disabled by an administrator" in by_link.get_data(as_text=True)
    assert browser.get("/settings").status_code == 302


def test_enabling_lets_the_user_back_in(admin_app, admin, member, caplog):
    token = issue_token(admin_app, member)
    api = Api(admin_app.test_client(), token)
    with caplog.at_level("INFO", logger="discux.admin"):
        admin.post(f"/admin/users/{member.id}/disable")
        admin.post(f"/admin/users/{member.id}/enable")
    assert f"admin {admin.id} disabled user {member.id}" in caplog.text
    assert f"admin {admin.id} enabled user {member.id}" in caplog.text
    admin.post(f"/admin/users/{member.id}/disable")
    assert api.get("/me").status_code == 401
    response = admin.post(f"/admin/users/{member.id}/enable")
    assert response.status_code == 303
    assert "mia@example.com is enabled again" in admin.client.get("/admin").get_data(as_text=True)
    assert member.user().disabled_at is None
    assert api.get("/me").status_code == 200  # tokens were kept, not revoked
    browser = admin_app.test_client()
    csrf = CSRF_IN_PAGE.search(browser.get("/login").get_data(as_text=True)).group(1)
    demo = browser.post("/login/demo", data={"email": member.email, "name": "Mia",
                                             "csrf_token": csrf})
    assert demo.status_code == 303
    assert browser.get("/settings").status_code == 200


def test_sessions_left_from_before_the_disabling_do_not_come_back(admin_app, admin, member):
    admin.post(f"/admin/users/{member.id}/disable")
    admin.post(f"/admin/users/{member.id}/enable")
    # The session was never used while disabled: enabling ended it, so it signs in afresh.
    assert member.client.get("/settings").status_code == 302


def test_an_admin_cannot_disable_themselves(admin):
    page = admin.client.get(f"/admin/users/{admin.id}/disable").get_data(as_text=True)
    assert "You cannot disable your own account" in page
    assert "Disable account</button>" not in page
    response = admin.post(f"/admin/users/{admin.id}/disable")
    assert response.status_code == 403
    assert "You cannot disable your own account" in response.get_data(as_text=True)
    assert admin.user().disabled_at is None
    assert admin.client.get("/admin").status_code == 200
    assert cell(row_of(admin.client.get("/admin").get_data(as_text=True), ADMIN_EMAIL),
                "Account") == "you"


def test_an_admin_can_disable_another_admin(admin_app, admin):
    other = Person(admin_app, email="other-admin@example.com")
    assert other.client.get("/admin").status_code == 200
    assert admin.post(f"/admin/users/{other.id}/disable").status_code == 303
    assert other.client.get("/admin").status_code == 302


def test_disabling_closes_the_users_open_rooms(admin_app, admin, member):
    server = LiveServer(admin_app).start()
    try:
        with admin_app.app_context():
            room = chat_factories.create_room(db.session.get(User, admin.id))
            chat_factories.add_member(room, member.id)
            room_id = room.id
            token = factories.create_session_token(member.id)
        socket = ws_client.connect(server.url, room_id, token)
        ws_client.wait_for_event(socket, lambda event: isinstance(event, dict)
                                 and event.get("type") == "presence"
                                 and event["data"].get("user_id") == member.id)
        admin.post(f"/admin/users/{member.id}/disable")
        assert ws_client.close_code(socket) == 1008  # closed for good: no reconnecting
        assert ws_client.refusal_status(server.url, room_id, token) is not None
    finally:
        server.stop()


def test_the_command_line_lists_and_enables_a_disabled_user(admin_app, admin, member):
    admin.post(f"/admin/users/{member.id}/disable")
    runner = admin_app.test_cli_runner()
    assert "mia@example.com\tMia Member\tfree\t" in runner.invoke(args=["users", "list"]).output
    assert runner.invoke(args=["users", "list"]).output.count("\tdisabled") == 1
    result = runner.invoke(args=["users", "enable", "MIA@example.com"])
    assert result.exit_code == 0 and "mia@example.com is enabled" in result.output
    assert member.user().disabled_at is None
    assert runner.invoke(args=["users", "enable", "nobody@example.com"]).exit_code == 1


@pytest.fixture(scope="module")
def provider():
    provider = OAuthTestProvider().start()
    yield provider
    provider.stop()


def test_a_disabled_user_cannot_sign_in_with_a_provider(make_app, provider):
    provider.deny_next = False
    provider.next_user = {"sub": "u-9", "email": "mia@example.com", "email_verified": True,
                          "name": "Mia", "picture": None, "login": "mia"}
    app = make_app(DISCUX_ADMIN_EMAILS=ADMIN_EMAIL, DISCUX_OIDC_CLIENT_ID=provider.client_id,
                   DISCUX_OIDC_CLIENT_SECRET=provider.client_secret,
                   DISCUX_OIDC_ISSUER=provider.issuer)
    try:
        admin = Person(app, email=ADMIN_EMAIL)
        member = Person(app, email="mia@example.com")
        admin.post(f"/admin/users/{member.id}/disable")
        browser = app.test_client()
        start = browser.get("/login/oidc")
        at_provider = requests.get(start.headers["Location"], allow_redirects=False, timeout=5)
        back = urlsplit(at_provider.headers["Location"])
        response = browser.get(f"{back.path}?{back.query}")
        assert response.status_code == 302 and response.headers["Location"] == "/login"
        page = browser.get("/login").get_data(as_text=True)
        assert "disabled by an administrator" in page
        assert browser.get("/settings").status_code == 302
    finally:
        with app.app_context():
            empty_tables(db.engine)


# ---- in a browser ----

LISTEN_FOR_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation",
  (event) => window.cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`));
"""


@pytest.mark.browser
def test_on_a_phone_the_admin_page_fits_and_disabling_works_under_the_policy(
        admin_app, admin, member, new_context):
    server = LiveServer(admin_app).start()
    try:
        context = new_context(viewport={"width": 390, "height": 844})
        with admin_app.app_context():
            token = factories.create_session_token(admin.id)
        context.add_cookies([{"name": COOKIE_NAME, "value": token, "url": server.url}])
        page = context.new_page()
        page.add_init_script(LISTEN_FOR_VIOLATIONS)
        page.goto(server.url + "/admin")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        row = page.locator("tr", has_text="mia@example.com")
        assert row.locator("td").first.evaluate("e => getComputedStyle(e).display") == "flex"
        row.get_by_role("button", name="Disable…").click()
        page.get_by_role("button", name="Disable account").click()
        assert page.url == server.url + "/admin"
        assert page.get_by_text("mia@example.com is disabled").is_visible()
        row.get_by_label("Plan of mia@example.com").select_option("team")
        row.get_by_role("button", name="Change").click()
        assert page.get_by_text("mia@example.com is now on the team plan.").is_visible()
        assert page.evaluate("window.cspViolations") == []
    finally:
        server.stop()
    assert member.user().disabled_at is not None and member.user().subscription == "team"


# ---- figures ----

def test_figures_count_rooms_messages_replies_and_model_errors_per_day(make_app, fake):
    fake.reset()
    app = make_app(DISCUX_ADMIN_EMAILS=ADMIN_EMAIL, DISCUX_LLM_BASE_URL=fake.base_url,
                   DISCUX_LLM_MODEL="fake-small", DISCUX_LLM_TIMEOUT=1.0)
    try:
        admin = Person(app, email=ADMIN_EMAIL, plan="pro")
        with app.app_context():
            owner = db.session.get(User, admin.id)
            room = chat_factories.create_room(owner, name="Launch")
            for name in ("Nova", "Scout"):
                chat_factories.add_agent(room, chat_factories.create_agent(owner, name=name),
                                         owner)
            old_room = chat_factories.create_room(owner, name="Old")
            old_room.created_at = utcnow() - timedelta(days=3)
            chat_factories.create_message(old_room, owner, "three days ago", days_ago=3)
            chat_factories.create_message(old_room, owner, "long ago", days_ago=40)
            room_id = room.id
        # Nova fails before writing anything (a notice instead of a reply), Scout answers;
        # then Nova is cut off halfway (a failed reply).
        fake.queue(FakeReply(mode="http_400"), FakeReply(text="Scout is fine."))
        admin.post(f"/rooms/{room_id}/messages", content="@Nova @Scout status?")
        assert engine_for(app).wait_idle(room_id, timeout=15)
        fake.queue(FakeReply(text="one two three four five six", mode="cut"))
        admin.post(f"/rooms/{room_id}/messages", content="@Nova go on")
        assert engine_for(app).wait_idle(room_id, timeout=15)
        with app.app_context():
            kinds = db.session.execute(sa.select(Message.type, Message.status)
                                       .where(Message.room_id == room_id)).all()
            assert sorted(kinds) == sorted([("user", "complete"), ("user", "complete"),
                                            ("agent", "complete"), ("agent", "failed"),
                                            ("system", "complete"), ("system", "complete")])

        page = admin.client.get("/admin").get_data(as_text=True)
        summary = page[page.index('id="summary"'):page.index('id="users"')]
        figures = page[page.index('id="figures"'):]
        today = utcnow().date()
        assert day_row(figures, today) == ["1", "2", "2", "2"]  # rooms, messages, replies, errors
        assert day_row(figures, today - timedelta(days=3)) == ["1", "1", "0", "0"]
        assert day_row(figures, today - timedelta(days=1)) == ["0", "0", "0", "0"]
        assert figures.count("<tr><th scope=\"row\">20") == 30  # 30 days, the 40-day-old left out
        total = re.search(r'<th scope="row">Total</th>(.*?)</tr>', figures, re.S).group(1)
        assert re.findall(r"<td>(\d+)</td>", total) == ["2", "3", "2", "2"]
        assert re.sub(r"\s+", " ", summary).count(
            "1 user, 2 active rooms. In the last 30 days: 2 rooms created, 3 messages, "
            "2 agent replies and 2 model errors") == 1
    finally:
        engine_for(app).wait_idle(timeout=15)
        with app.app_context():
            db.session.remove()
            empty_tables(db.engine)


def day_row(figures: str, day) -> list[str]:
    match = re.search(rf'<th scope="row">{day.isoformat()}</th>(.*?)</tr>', figures, re.S)
    return re.findall(r"<td>(\d+)</td>", match.group(1))


# ---- the default plan ----

def test_new_users_start_on_the_default_plan(make_app):
    app = make_app(DISCUX_DEFAULT_PLAN="team")
    browser = app.test_client()
    csrf = CSRF_IN_PAGE.search(browser.get("/login").get_data(as_text=True)).group(1)
    browser.post("/login/demo", data={"email": "new@example.com", "name": "New",
                                      "csrf_token": csrf})
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.email == "new@example.com"))
        assert user.subscription == "team" and user.max_rooms >= plans.UNLIMITED
    csrf = CSRF_IN_PAGE.search(browser.get("/").get_data(as_text=True)).group(1)
    for name in ("One", "Two"):
        response = browser.post("/rooms/new", data={"name": name, "csrf_token": csrf})
        assert response.status_code == 303
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Room)) == 2
        empty_tables(db.engine)


def test_without_a_default_plan_new_users_are_free(ctx):
    assert factories.create_user().subscription == "free"


def test_an_unknown_default_plan_refuses_to_start(migrated_database):
    with pytest.raises(ConfigError, match="DISCUX_DEFAULT_PLAN must be one of free, pro, team"):
        create_app(base_config(migrated_database, DISCUX_DEFAULT_PLAN="enterprise"))


def test_disabling_stops_a_session_kept_by_another_worker_at_once(make_app, redis_server):
    """Each worker keeps recently checked sessions for a few seconds; a disabling made on one
    worker reaches the others through Redis instead of waiting for their copies to age."""
    settings = {"DISCUX_ADMIN_EMAILS": ADMIN_EMAIL, "DISCUX_REDIS_URL": redis_server.url}
    first, second = make_app(**settings), make_app(**settings)
    root = Person(first, email=ADMIN_EMAIL, name="Root")
    mia = Person(first, email="mia@example.com", name="Mia Member")
    on_second = second.test_client()
    on_second.set_cookie(COOKIE_NAME, mia.client.get_cookie(COOKIE_NAME).value, domain="localhost")
    frozen = signed_in_cache(second)
    frozen.clock = lambda: 1000.0  # its copies never age: only the event can drop them
    assert on_second.get("/settings").status_code == 200  # now kept by the second worker
    assert on_second.get("/settings").status_code == 200

    assert root.post(f"/admin/users/{mia.id}/disable").status_code == 303

    deadline = time.monotonic() + 10
    while (status := on_second.get("/settings").status_code) == 200:
        assert time.monotonic() < deadline, "the second worker still serves Mia's session"
        time.sleep(0.05)
    assert status == 302
