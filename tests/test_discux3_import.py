"""`flask discux3 import SOURCE_URL`: a team moves from Discux3 (a MySQL database built from the
Prisma schema in tests/fixtures) into this install, SQLite or MariaDB, and finds its people,
sign-ins, rooms, agents, messages and invitation links as they were."""

from __future__ import annotations

import re
import uuid
from datetime import UTC

import pytest
import sqlalchemy as sa

from discux.discux3_import import strip_agent_line
from discux.extensions import db
from discux.ids import sha256_hex
from discux.invitations.service import OPEN, USED, status_of
from discux.models import (
    Account,
    Agent,
    ImportedRow,
    Message,
    MessageMention,
    Room,
    RoomAgent,
    RoomInvitation,
    RoomParticipant,
    RoomSettings,
    Session,
    User,
)
from tests.conftest import IS_MYSQL, TEST_DATABASE_URL
from tests.support import factories
from tests.support.closed_port import CLOSED_PORT
from tests.support.discux3_source import Discux3Source, at
from tests.support.mariadb_server import INSTALL_DB, SERVER, ThrowawayMariaDB
from tests.support.oauth_provider import OAuthTestProvider
from tests.support.scratch_databases import drop_mysql_database, scratch_database_url
from tests.test_oauth import run_flow

COPIED_MODELS = (User, Account, Agent, Room, RoomSettings, RoomParticipant, RoomAgent, Message,
                 MessageMention, RoomInvitation, ImportedRow)


@pytest.fixture(scope="module")
def mysql_for_sources():
    """Where Discux3 databases are made: the suite's MariaDB, or a throwaway one of this
    module's own when the suite runs on SQLite."""
    if IS_MYSQL:
        yield TEST_DATABASE_URL
        return
    if not (INSTALL_DB and SERVER):
        pytest.skip("a Discux3 source needs MySQL: mariadb-install-db and mariadbd are missing")
    server = ThrowawayMariaDB().start()
    yield server.url("discux3")
    server.remove()


@pytest.fixture
def discux3(mysql_for_sources, tmp_path):
    """An empty Discux3 database (its full Prisma schema, no rows)."""
    url = scratch_database_url(mysql_for_sources, tmp_path, "discux3")
    yield Discux3Source(url).create_schema()
    drop_mysql_database(url)


@pytest.fixture
def launch_team(discux3):
    """Ana's Discux3: Ana (GitHub), Bo (Google) and Cy in "Launch plan" with agents Nova and
    Sage, a conversation, one open and one used invitation, and what is left behind."""
    ana = discux3.user("Ana@Example.COM", "Ana", created="2024-11-05 08:09:10.123",
                       subscription="PRO", max_rooms=10)
    bo = discux3.user("bo@example.com", "Bo", created="2024-12-01 10:00:00.000",
                      emailVerified=at("2024-12-01 10:00:00.000"))
    cy = discux3.user("cy@example.com", None)
    discux3.account(ana, "github", "4242")
    discux3.account(bo, "google", "g-77")
    discux3.add("sessions", sessionToken="ana-session", userId=ana, expires=at("2030-01-01"))
    nova = discux3.agent(ana, "Nova", style="TRUTH_TELLER", emoji="🦉", color="#112233")
    sage = discux3.agent(ana, "Sage", style="ANALYTICAL")
    room = discux3.room(ana, "Launch plan", description="Shipping the rocketship")
    discux3.execute("INSERT INTO room_settings (room_id, max_agents, allow_agent_creation, "
                    "auto_summarize) VALUES (%s, 4, false, true)", room)
    discux3.member(room, ana, "OWNER")
    discux3.member(room, bo, "ADMIN")
    discux3.member(room, cy, "MEMBER")
    discux3.room_agent(room, nova, ana)
    discux3.room_agent(room, sage, bo)
    # Written out of order; two share a millisecond, where the id decides.
    messages = {}
    messages["reply"] = discux3.message(
        room, "AGENT", nova, f"[AGENT:{nova}:Nova:🦉:#112233:TRUTH_TELLER]\n"
        "Friday is **risky**: the rocketship tests are not done.", "2025-02-01 09:00:03.250")
    messages["question"] = discux3.message(
        room, "USER", ana, "@Nova is a Friday rocketship launch realistic?",
        "2025-02-01 09:00:01.500", message_id="c-question")
    messages["hello"] = discux3.message(room, "USER", bo, "Morning all", "2025-02-01 09:00:00.007")
    messages["same_ms_2"] = discux3.message(room, "USER", cy, "Agreed", "2025-02-01 09:00:05.111",
                                            message_id="c-same-ms-b")
    messages["same_ms_1"] = discux3.message(room, "SYSTEM", "system", "Cy joined the room",
                                            "2025-02-01 09:00:05.111", message_id="c-same-ms-a")
    discux3.mention(messages["question"], nova)
    discux3.add("discussions", room_id=room, topic="Launch date")
    discux3.add("vector_mappings", message_id=messages["question"], collection="messages",
                vector_id="v-1")
    discux3.invitation(room, ana, "open-link-token")
    discux3.invitation(room, bo, "used-link-token", used=True)
    order = ["hello", "question", "reply", "same_ms_1", "same_ms_2"]
    return {"url": discux3.url, "ana": ana, "bo": bo, "cy": cy, "nova": nova, "sage": sage,
            "room": room, "messages": messages, "order": order, "source": discux3}


def run_import(runner, url: str, *extra: str):
    result = runner.invoke(args=["discux3", "import", url, *extra])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def imported(app, table: str, source_id: str):
    with app.app_context():
        return db.session.scalar(sa.select(ImportedRow.target_id).where(
            ImportedRow.source_table == table, ImportedRow.source_id == source_id))


def row_counts(app) -> dict[str, int]:
    with app.app_context():
        return {model.__tablename__: db.session.scalar(sa.select(sa.func.count()).select_from(model))
                for model in COPIED_MODELS}


def test_people_keep_their_emails_plans_creation_times_and_oauth_links(app, runner, launch_team):
    result = run_import(runner, launch_team["url"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        ana = db.session.get(User, imported(app, "users", launch_team["ana"]))
        assert ana.email == "ana@example.com"  # lower-cased
        assert (ana.subscription, ana.max_rooms) == ("pro", 10)
        created = at("2024-11-05 08:09:10.123").replace(tzinfo=UTC)
        assert ana.created_at == int(created.timestamp() * 1000)
        links = db.session.execute(sa.select(Account.provider, Account.provider_account_id,
                                             Account.user_id, Account.access_token)).all()
        bo_id = imported(app, "users", launch_team["bo"])
        assert sorted(links) == [("github", "4242", ana.id, None), ("google", "g-77", bo_id, None)]
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Session)) == 0
        assert db.session.get(User, bo_id).email_verified is not None


@pytest.fixture
def github_app(make_app):
    provider = OAuthTestProvider().start()
    app = make_app(DISCUX_GITHUB_CLIENT_ID=provider.client_id,
                   DISCUX_GITHUB_CLIENT_SECRET=provider.client_secret,
                   DISCUX_GITHUB_OAUTH_BASE=provider.issuer,
                   DISCUX_GITHUB_API_BASE=provider.issuer + "/api/")
    yield app, provider
    provider.stop()


def test_an_imported_user_signs_in_with_github_and_finds_their_room(
        app, runner, launch_team, github_app):
    assert run_import(runner, launch_team["url"]).exit_code == 0
    github, provider = github_app
    # GitHub now reports an address Ana never verified: only the imported link can find her.
    provider.next_user = {"sub": "4242", "email": "ana.new@example.org", "email_verified": False,
                          "name": "Ana G.", "picture": None, "login": "ana"}
    client = github.test_client()
    assert run_flow(client, "github").status_code == 303
    assert "Launch plan" in client.get("/rooms").get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 3


def test_rooms_keep_members_roles_settings_and_agents(app, runner, launch_team):
    assert run_import(runner, launch_team["url"]).exit_code == 0
    room_id = imported(app, "rooms", launch_team["room"])
    with app.app_context():
        room = db.session.get(Room, room_id)
        assert (room.name, room.description) == ("Launch plan", "Shipping the rocketship")
        assert room.created_by == imported(app, "users", launch_team["ana"])
        assert (room.settings.max_agents, room.settings.allow_agent_creation,
                room.settings.auto_summarize) == (4, False, True)
        roles = dict(db.session.execute(sa.select(RoomParticipant.user_id, RoomParticipant.role)
                                        .where(RoomParticipant.room_id == room_id)).all())
        assert roles == {imported(app, "users", launch_team["ana"]): "owner",
                         imported(app, "users", launch_team["bo"]): "admin",
                         imported(app, "users", launch_team["cy"]): "member"}
        agents = db.session.execute(
            sa.select(Agent.name, Agent.style, Agent.emoji, Agent.color)
            .join(RoomAgent, RoomAgent.agent_id == Agent.id).where(RoomAgent.room_id == room_id)
            .order_by(Agent.name)).all()
        assert agents == [("Nova", "direct", "🦉", "#112233"),
                          ("Sage", "analytical", "🤖", "#3B82F6")]


def test_messages_keep_order_timestamps_senders_and_mentions(app, runner, launch_team):
    assert run_import(runner, launch_team["url"]).exit_code == 0
    room_id = imported(app, "rooms", launch_team["room"])
    source = launch_team["messages"]
    with app.app_context():
        rows = db.session.scalars(sa.select(Message).where(Message.room_id == room_id)
                                  .order_by(Message.id)).all()
        assert [row.id for row in rows] == [
            imported(app, "messages", source[name]) for name in launch_team["order"]]
        assert all(uuid.UUID(row.id).version == 7 for row in rows)
        assert [row.timestamp for row in rows] == [
            at("2025-02-01 09:00:00.007"), at("2025-02-01 09:00:01.500"),
            at("2025-02-01 09:00:03.250"), at("2025-02-01 09:00:05.111"),
            at("2025-02-01 09:00:05.111")]
        hello, question, reply, joined, agreed = rows
        assert (hello.type, hello.sender_name) == ("user", "Bo")
        assert (agreed.sender_name, joined.type, joined.sender_name) == ("cy", "system", "Discux")
        nova_id = imported(app, "agents", launch_team["nova"])
        assert [mention.mentioned_agent_id for mention in question.mentions] == [nova_id]
        assert reply.content == "Friday is **risky**: the rocketship tests are not done."
        assert "<strong>risky</strong>" in reply.content_html and "[AGENT" not in reply.content_html
        assert (reply.type, reply.sender_id, reply.sender_name, reply.sender_emoji,
                reply.sender_color) == ("agent", nova_id, "Nova", "🦉", "#112233")


def test_search_finds_the_imported_messages(app, client, runner, launch_team):
    launch_team["source"].message(launch_team["room"], "USER", launch_team["cy"],
                                  "QA signs off on Thursday", "2025-02-01 10:00:00.000")
    assert run_import(runner, launch_team["url"]).exit_code == 0
    with app.app_context():
        token = factories.create_session_token(imported(app, "users", launch_team["ana"]))
    client.set_cookie("discux_session", token, domain="localhost")
    found = client.get("/search?q=rocketship").get_data(as_text=True)
    assert "launch realistic?" in found
    assert "tests are not done" in found
    # Two-letter words, which MariaDB's FULLTEXT leaves to an index of Discux's own.
    assert "signs off on Thursday" in client.get("/search?q=QA").get_data(as_text=True)


def test_open_invitations_still_work_and_used_ones_stay_used(app, client, runner, launch_team,
                                                            csrf_token):
    assert run_import(runner, launch_team["url"]).exit_code == 0
    with app.app_context():
        by_token = {invitation.invite_token: status_of(invitation)
                    for invitation in db.session.scalars(sa.select(RoomInvitation))}
        assert by_token == {sha256_hex("open-link-token"): OPEN,
                            sha256_hex("used-link-token"): USED}
        dee = factories.create_user(email="dee@example.com", name="Dee")
        client.set_cookie("discux_session", factories.create_session_token(dee.id),
                          domain="localhost")
    assert "already been used" in client.get("/invite/used-link-token").get_data(as_text=True)
    joined = client.post("/invite/open-link-token", data={"csrf_token": csrf_token()})
    assert joined.status_code == 303
    assert "Launch plan" in client.get("/rooms").get_data(as_text=True)


def test_a_dry_run_reports_and_writes_nothing(app, runner, launch_team):
    result = run_import(runner, launch_team["url"], "--dry-run")
    assert result.exit_code == 0, result.output
    assert "Dry run: nothing was written." in result.output
    assert re.search(r"messages\s+copied 5, already there 0", result.output)
    assert all(count == 0 for count in row_counts(app).values()), row_counts(app)


def test_running_again_adds_nothing_and_keeps_the_ids(app, runner, launch_team):
    assert run_import(runner, launch_team["url"]).exit_code == 0
    first = row_counts(app)
    question = imported(app, "messages", launch_team["messages"]["question"])
    again = run_import(runner, launch_team["url"])
    assert again.exit_code == 0, again.output
    assert re.search(r"messages\s+copied 0, already there 5", again.output)
    assert row_counts(app) == first
    assert imported(app, "messages", launch_team["messages"]["question"]) == question

    launch_team["source"].message(launch_team["room"], "USER", launch_team["bo"],
                                  "Back from lunch", "2025-02-01 13:00:00.000")
    later = run_import(runner, launch_team["url"])
    assert re.search(r"messages\s+copied 1, already there 5", later.output)
    with app.app_context():
        newest = db.session.scalars(sa.select(Message).order_by(Message.id.desc())).first()
        assert newest.content == "Back from lunch"


def test_a_room_deleted_in_discux_is_not_brought_back(app, runner, launch_team):
    assert run_import(runner, launch_team["url"]).exit_code == 0
    with app.app_context():
        db.session.delete(db.session.get(Room, imported(app, "rooms", launch_team["room"])))
        db.session.commit()
    launch_team["source"].message(launch_team["room"], "USER", launch_team["bo"],
                                  "Anyone still here?", "2025-02-02 08:00:00.000")
    again = run_import(runner, launch_team["url"])
    assert again.exit_code == 0, again.output
    assert re.search(r"rooms\s+copied 0, already there 0, skipped 1\n"
                     r"\s+skipped, deleted in Discux since it was imported: 1", again.output)
    assert re.search(r"messages\s+copied 0, already there 0, skipped 6", again.output)
    assert row_counts(app)["rooms"] == 0 and row_counts(app)["messages"] == 0


def test_the_report_says_what_was_left_behind_and_why(app, runner, launch_team):
    source = launch_team["source"]
    source.user("   ", "Nobody")  # no usable email
    source.user("  Bo@example.com", "Bo again")  # Bo twice, once with a stray space
    output = run_import(runner, launch_team["url"]).output
    assert re.search(r"users\s+copied 3, already there 0, skipped 1", output)
    assert "no email address" in output
    assert "joined to another Discux3 user with the same email: 1" in output
    assert re.search(r"sessions\s+not copied \(1\): people sign in again", output)
    assert re.search(r"discussions\s+not copied \(1\)", output)
    assert re.search(r"vector_mappings\s+not copied \(1\)", output)
    assert "agent replies whose [AGENT:…] first line was taken off: 1" in output


def test_an_existing_user_with_the_same_email_gets_the_imported_rooms(app, runner, launch_team):
    with app.app_context():
        existing = factories.create_user(email="ana@example.com", name="Ana Here").id
    output = run_import(runner, launch_team["url"]).output
    assert "joined to the Discux user who already had that email: 1" in output
    assert imported(app, "users", launch_team["ana"]) == existing
    with app.app_context():
        assert db.session.get(Room, imported(app, "rooms", launch_team["room"])).created_by == \
            existing


def test_nextauth_default_table_names_and_epoch_millisecond_times_are_read_too(
        app, runner, launch_team):
    source = launch_team["source"]
    source.execute("RENAME TABLE users TO User, accounts TO Account, sessions TO Session")
    source.execute("ALTER TABLE User DROP COLUMN created_at, ADD COLUMN created_at BIGINT "
                   "NOT NULL DEFAULT 0")
    created_ms = int(at("2024-11-05 08:09:10.123").replace(tzinfo=UTC).timestamp() * 1000)
    source.execute("UPDATE User SET created_at = %s WHERE id = %s", created_ms,
                   launch_team["ana"])
    result = run_import(runner, launch_team["url"])
    assert result.exit_code == 0, result.output
    assert re.search(r"sessions\s+not copied \(1\)", result.output)
    with app.app_context():
        ana = db.session.get(User, imported(app, "users", launch_team["ana"]))
        assert ana.created_at == created_ms
        assert db.session.scalar(sa.select(Account.user_id).where(Account.provider == "github")) \
            == ana.id


def test_a_discux_database_is_not_taken_for_a_discux3_one(app, runner, discux3):
    discux3.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
    result = run_import(runner, discux3.url)
    assert result.exit_code == 1
    assert "This is a Discux database, not a Discux3 one" in result.output
    assert all(count == 0 for count in row_counts(app).values())


def test_a_database_that_is_not_discux3_is_refused(app, runner, mysql_for_sources, tmp_path):
    url = scratch_database_url(mysql_for_sources, tmp_path, "not_discux3")
    try:
        result = run_import(runner, url)
    finally:
        drop_mysql_database(url)
    assert result.exit_code == 1
    assert "This is not a Discux3 database: it has no users, accounts" in result.output
    assert all(count == 0 for count in row_counts(app).values())


@pytest.mark.parametrize(("source_url", "message"), [
    ("not a url", "SOURCE_URL is not a database URL"),
    ("postgresql://discux3@db/discux3", "SOURCE_URL must name a MySQL or MariaDB database"),
    ("mysql://root@127.0.0.1:13306", "SOURCE_URL must name a MySQL or MariaDB database"),
    (f"mysql://root:secret@127.0.0.1:{CLOSED_PORT}/discux3",
     f"Cannot reach the Discux3 database at mysql://root@127.0.0.1:{CLOSED_PORT}/discux3"),
])
def test_a_bad_source_url_says_why_and_writes_nothing(app, runner, source_url, message):
    result = run_import(runner, source_url)
    assert result.exit_code == 1
    assert message in result.output and "secret" not in result.output
    assert "Traceback" not in result.output
    assert all(count == 0 for count in row_counts(app).values())


@pytest.mark.parametrize(("content", "text", "name"), [
    ("[AGENT:c1:Nova:🦉:#112233:DIRECT]\nHello", "Hello", "Nova"),
    ("[AGENT:c1:Dr: Who:🤖:#3B82F6:CREATIVE]\r\n\r\nTime is relative.", "Time is relative.",
     "Dr: Who"),
    ("[AGENT:c1:Nova:🦉:#112233:DIRECT]", "", "Nova"),
    ("No header here\n[AGENT:c1:Nova:🦉:#112233:DIRECT]", "No header here\n[AGENT:c1:Nova:🦉:"
     "#112233:DIRECT]", None),
])
def test_the_agent_line_is_taken_off_only_when_it_opens_the_reply(content, text, name):
    stripped, line = strip_agent_line(content)
    assert stripped == text
    assert (line or {}).get("name") == name
