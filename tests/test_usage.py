"""What agents use and cost, and the budgets that stop them: replies against the fake model
server (which reports usage on some replies and none on others), read back through the API,
the pages and the room's system messages."""

from __future__ import annotations

import re
import threading

import pytest
import sqlalchemy as sa

from discux import usage
from discux.api import tokens as api_tokens
from discux.discussion.engine import engine_for
from discux.extensions import db
from discux.models import (
    Agent,
    Message,
    ModelPrice,
    RoomSettings,
    UsageEntry,
    User,
)
from tests.conftest import empty_tables
from tests.support import chat_factories, factories
from tests.support.fake_llm import FakeReply
from tests.support.ws_client import Member
from tests.test_turns import Server, served, wait_until


class Room:
    """A room with Nova in it, its owner signed in (test client + CSRF token) and an API
    token."""

    def __init__(self, app, plan: str = "pro", owner_id: str | None = None):
        self.app = app
        with app.app_context():
            owner = (db.session.get(User, owner_id) if owner_id
                     else factories.create_user(name="Olga Owner", plan=plan))
            room = chat_factories.create_room(owner.id, name="Budget room")
            nova = chat_factories.create_agent(owner.id, name=f"Nova {room.id[-6:]}")
            nova.prompt = "You are Nova, in this room."
            db.session.commit()
            chat_factories.add_agent(room, nova, owner.id)
            self.room_id, self.owner_id, self.nova_id = room.id, owner.id, nova.id
            self.nova = nova.name
            self.token = factories.create_session_token(owner.id)
            db.session.remove()
        self.client = app.test_client()
        self.client.set_cookie("discux_session", self.token, domain="localhost")
        page = self.client.get("/").get_data(as_text=True)
        self.csrf = re.search(r'"X-CSRFToken": "([^"]+)"', page)[1]

    def post(self, text: str):
        response = self.client.post(f"/rooms/{self.room_id}/messages",
                                    data={"content": text, "csrf_token": self.csrf})
        assert response.status_code in (200, 303), response.get_data(as_text=True)[:300]
        return response

    def ask_nova(self, text: str = "what now?") -> None:
        self.post(f"@{self.nova} {text}")
        assert engine_for(self.app).wait_idle(self.room_id, timeout=15)

    def messages(self, type_: str | None = None) -> list[Message]:
        with self.app.app_context():
            query = sa.select(Message).where(Message.room_id == self.room_id)
            if type_:
                query = query.where(Message.type == type_)
            rows = list(db.session.scalars(query.order_by(Message.id)))
            for row in rows:
                db.session.expunge(row)
            db.session.remove()
            return rows

    def ledger(self) -> list[UsageEntry]:
        with self.app.app_context():
            rows = list(db.session.scalars(sa.select(UsageEntry).where(
                UsageEntry.room_id == self.room_id).order_by(UsageEntry.id)))
            for row in rows:
                db.session.expunge(row)
            db.session.remove()
            return rows

    def set(self, model, key, **values) -> None:
        with self.app.app_context():
            row = db.session.get(model, key)
            for name, value in values.items():
                setattr(row, name, value)
            db.session.commit()
            db.session.remove()

    def api(self, method: str, path: str, **kwargs):
        with self.app.app_context():
            raw = api_token(self.owner_id)
        return self.client.open(f"/api/v1{path}", method=method,
                                headers={"Authorization": f"Bearer {raw}"}, **kwargs)


def api_token(user_id: str) -> str:
    _, raw = api_tokens.create_token(db.session.get(User, user_id), "usage tests")
    return raw


def spend(app, *, room_id=None, user_id=None, tokens: int) -> None:
    """Earlier model calls, already counted."""
    with app.app_context():
        db.session.add(UsageEntry(kind="reply", room_id=room_id, user_id=user_id,
                                  prompt_tokens=tokens, tokens=tokens))
        db.session.commit()
        db.session.remove()


def test_a_reply_stores_the_servers_token_counts_and_the_api_gives_them(llm_app, fake):
    room = Room(llm_app)
    fake.queue(FakeReply(text="Ship it on Friday.", prompt_tokens=321, completion_tokens=9))
    room.ask_nova()
    [request] = fake.requests
    assert request["stream_options"] == {"include_usage": True}
    [reply] = room.messages("agent")
    assert (reply.prompt_tokens, reply.completion_tokens, reply.usage_estimated) == (321, 9,
                                                                                     False)
    [entry] = room.ledger()
    assert (entry.kind, entry.state, entry.prompt_tokens, entry.completion_tokens,
            entry.estimated, entry.user_id, entry.agent_id, entry.message_id,
            entry.model) == ("reply", "settled", 321, 9, False, room.owner_id, room.nova_id,
                             reply.id, "fake-small")
    assert entry.cost_usd is None  # no price set: tokens only, never an invented price
    messages = room.api("GET", f"/rooms/{room.room_id}/messages").get_json()["messages"]
    [agent_message] = [m for m in messages if m["type"] == "agent"]
    assert agent_message["usage"] == {"prompt_tokens": 321, "completion_tokens": 9,
                                      "estimated": False, "cost_usd": None}
    assert [m["usage"] for m in messages if m["type"] == "user"] == [None]
    shown = room.api("GET", f"/rooms/{room.room_id}").get_json()
    assert shown["usage_this_month"]["tokens"] == 330
    assert shown["monthly_token_budget"] is None


def test_exports_carry_each_replys_usage(llm_app, fake):
    room = Room(llm_app)
    fake.queue(FakeReply(text="Exported.", prompt_tokens=77, completion_tokens=5))
    room.ask_nova()
    exported = room.client.get(f"/rooms/{room.room_id}/export.json").get_json()
    [reply] = [m for m in exported["messages"] if m["type"] == "agent"]
    assert reply["usage"] == {"prompt_tokens": 77, "completion_tokens": 5, "estimated": False,
                              "cost_usd": None}
    markdown = room.client.get(f"/rooms/{room.room_id}/export.md").get_data(as_text=True)
    assert "82 tokens" in markdown


def test_a_reply_the_server_gave_no_usage_for_is_estimated_and_marked(llm_app, fake):
    room = Room(llm_app)
    fake.queue(FakeReply(text="Twelve characters of words here.", usage=False))
    room.ask_nova()
    [reply] = room.messages("agent")
    assert reply.usage_estimated is True
    assert reply.completion_tokens == 8  # ~4 characters a token, as the receipt estimates
    assert reply.prompt_tokens > 0
    receipt = room.client.get(f"/rooms/{room.room_id}/messages/{reply.id}/receipt")
    text = receipt.get_data(as_text=True)
    assert "≈" in text and "estimated: the provider reported none" in text
    [entry] = room.ledger()
    assert entry.estimated is True and entry.completion_tokens == 8


def test_a_priced_model_gives_each_reply_its_cost(llm_app, fake):
    room = Room(llm_app)
    with llm_app.app_context():
        db.session.add(ModelPrice(model="fake-small", input_usd_per_million=2.5,
                                  output_usd_per_million=10))
        db.session.commit()
    fake.queue(FakeReply(text="Priced.", prompt_tokens=1000, completion_tokens=200))
    room.ask_nova()
    [reply] = room.messages("agent")
    assert reply.cost_usd == pytest.approx(0.0045)  # 1000 × 2.5 + 200 × 10, per million
    receipt = room.client.get(f"/rooms/{room.room_id}/messages/{reply.id}/receipt")
    assert "cost $0.0045" in receipt.get_data(as_text=True)
    [message] = [m for m in room.api("GET", f"/rooms/{room.room_id}/messages")
                 .get_json()["messages"] if m["type"] == "agent"]
    assert message["usage"]["cost_usd"] == pytest.approx(0.0045)


def test_a_room_at_its_budget_starts_no_turn_and_says_so(llm_app, fake):
    room = Room(llm_app)
    room.set(RoomSettings, room.room_id, monthly_token_budget=5000)
    spend(llm_app, room_id=room.room_id, tokens=5000)
    room.ask_nova()
    assert fake.requests == []  # the model was never asked
    [notice] = room.messages("system")
    assert "did not start" in notice.content
    assert "monthly token budget (5,000 tokens) has 0 left" in notice.content
    assert "owner or an admin can raise it" in notice.content
    assert room.messages("agent") == []


def test_continue_is_refused_the_same_way(llm_app, fake):
    room = Room(llm_app)
    room.set(RoomSettings, room.room_id, monthly_token_budget=5000)
    with llm_app.app_context():
        nova = db.session.get(Agent, room.nova_id)
        chat_factories.create_message(room.room_id, nova, "Earlier thoughts.", type="agent")
    spend(llm_app, room_id=room.room_id, tokens=5000)
    room.ask_nova()  # refused: Nova is left waiting for Continue
    response = room.client.post(f"/rooms/{room.room_id}/continue",
                                data={"csrf_token": room.csrf},
                                headers={"Accept": "application/json"})
    assert response.status_code == 403
    assert "monthly token budget (5,000 tokens) has 0 left" in response.get_json()[
        "error"]["message"]
    assert engine_for(llm_app).wait_idle(room.room_id, timeout=10)
    assert fake.requests == []
    assert len(room.messages("system")) == 2  # the turn's notice, then Continue's


def test_raising_the_budget_lets_the_room_go_on(llm_app, fake):
    room = Room(llm_app)
    room.set(RoomSettings, room.room_id, monthly_token_budget=5000)
    spend(llm_app, room_id=room.room_id, tokens=5000)
    room.ask_nova()
    response = room.api("PATCH", f"/rooms/{room.room_id}", json={"monthly_token_budget": 50000})
    assert response.status_code == 200
    assert response.get_json()["monthly_token_budget"] == 50000
    fake.queue(FakeReply(text="Back on it.", prompt_tokens=40, completion_tokens=3))
    room.ask_nova("and now?")
    assert [m.content for m in room.messages("agent")] == ["Back on it."]
    assert room.api("GET", f"/rooms/{room.room_id}").get_json()["usage_this_month"][
        "tokens"] == 5043


@pytest.mark.parametrize("value, status, message", [
    (-1, 422, "must be a whole number of tokens"),
    ("lots", 422, "must be a whole number or null"),
    (10**13, 422, "must be a whole number of tokens"),
])
def test_a_bad_budget_is_refused_with_a_reason(llm_app, value, status, message):
    room = Room(llm_app)
    response = room.api("PATCH", f"/rooms/{room.room_id}", json={"monthly_token_budget": value})
    assert response.status_code == status
    assert message in response.get_json()["error"]["message"]


def test_only_the_owner_or_an_admin_sets_the_budget(llm_app):
    room = Room(llm_app)
    with llm_app.app_context():
        member = factories.create_user(name="Mia Member", plan="pro")
        chat_factories.add_member(room.room_id, member.id)
        raw = api_token(member.id)
    response = room.client.patch(f"/api/v1/rooms/{room.room_id}",
                                 json={"monthly_token_budget": 10},
                                 headers={"Authorization": f"Bearer {raw}"})
    assert response.status_code == 403
    shown = room.client.get(f"/api/v1/rooms/{room.room_id}",
                            headers={"Authorization": f"Bearer {raw}"}).get_json()
    assert shown["monthly_token_budget"] is None  # members see it, and the meter
    assert shown["usage_this_month"]["tokens"] == 0


def test_a_user_past_their_plans_allowance_starts_no_turn(llm_app, fake):
    room = Room(llm_app, plan="free")
    spend(llm_app, user_id=room.owner_id, tokens=200_000)
    room.ask_nova()
    assert fake.requests == []
    [notice] = room.messages("system")
    assert "Olga Owner's free plan allows 200,000 tokens a month, and 0 are left" in \
        notice.content


def test_the_instance_daily_cap_stops_agents(llm_app, fake):
    room = Room(llm_app)
    with llm_app.app_context():
        usage.set_daily_cap(100)
    try:
        spend(llm_app, tokens=100)
        room.ask_nova()
        assert fake.requests == []
        [notice] = room.messages("system")
        assert "daily token cap (100 tokens) has 0 left today" in notice.content
        assert "instance admin can raise it" in notice.content
    finally:
        with llm_app.app_context():
            usage.set_daily_cap(None)


def test_two_workers_at_once_cannot_both_spend_what_one_reply_may(make_app, fake):
    """One person's allowance, two rooms, each run by its own worker, both asked at once: the
    first turn reserves its prompt + max_tokens before its request, so the second sees too
    little left and does not start (checking only what was settled, both would)."""
    fake.reset()
    workers = [make_app(DISCUX_LLM_BASE_URL=fake.base_url, DISCUX_LLM_MODEL="fake-small")
               for _ in range(2)]
    first = Room(workers[0], plan="free")
    second = Room(workers[1], owner_id=first.owner_id)
    try:
        # Nova's style allows 500 tokens a reply; her prompt is ~100: one reply fits in 600,
        # two would not.
        first.set(User, first.owner_id, max_tokens_per_month=600)
        fake.respond_with(lambda body: FakeReply(text="Slow and sure.", delay_first=1.0,
                                                 prompt_tokens=20, completion_tokens=4))
        gate = threading.Barrier(2)

        def ask(room):
            gate.wait()
            room.post(f"@{room.nova} go")

        threads = [threading.Thread(target=ask, args=(r,)) for r in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for room in (first, second):
            assert engine_for(room.app).wait_idle(room.room_id, timeout=15)
        replies = first.messages("agent") + second.messages("agent")
        notices = first.messages("system") + second.messages("system")
        assert len(fake.requests) == 1 and len(replies) == 1
        [notice] = notices
        assert "free plan allows 600 tokens a month" in notice.content
        with first.app.app_context():
            spent = db.session.scalar(sa.select(sa.func.sum(UsageEntry.tokens)).where(
                UsageEntry.user_id == first.owner_id))
            db.session.remove()
        assert spent == 24  # settled to what the server reported
    finally:
        with workers[0].app_context():
            db.session.remove()
            empty_tables(db.engine)


def test_two_gunicorn_hosts_on_redis_cannot_both_spend_one_allowance(
        make_app, fake, redis_server, migrated_database, tmp_path):
    """As above, with real servers: two gunicorn hosts on one database and Redis, one free
    user's two rooms asked at once, one on each host."""
    fake.reset()
    app = make_app()
    first = Room(app, plan="free")
    second = Room(app, owner_id=first.owner_id)
    first.set(User, first.owner_id, max_tokens_per_month=600)
    env = served(tmp_path, migrated_database, fake, DISCUX_REDIS_URL=redis_server.url)
    hosts = [Server(tmp_path, migrated_database, env), Server(tmp_path, migrated_database, env)]
    try:
        fake.respond_with(lambda body: FakeReply(text="Slow and sure.", delay_first=1.0,
                                                 prompt_tokens=20, completion_tokens=4))
        posters = [(Member(host.base_url, room.token), room)
                   for host, room in zip(hosts, (first, second), strict=True)]
        gate = threading.Barrier(2)

        def ask(poster, room):
            gate.wait()
            assert poster.post(room.room_id, f"@{room.nova} go").status_code == 200

        threads = [threading.Thread(target=ask, args=pair) for pair in posters]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        def settled():
            replies = first.messages("agent") + second.messages("agent")
            notices = first.messages("system") + second.messages("system")
            done = [r for r in replies if r.status == "complete"]
            return (done, notices) if len(done) + len(notices) == 2 else None

        done, notices = wait_until(settled, 60, "one reply and one refusal")
        assert len(done) == 1 and len(fake.requests) == 1
        [notice] = notices
        assert "free plan allows 600 tokens a month" in notice.content
    finally:
        for host in hosts:
            host.stop()
        with app.app_context():
            db.session.remove()
            empty_tables(db.engine)


ADMIN = "root@example.com"


@pytest.mark.parametrize("llm_app_config", [{"DISCUX_ADMIN_EMAILS": ADMIN}])
def test_the_instance_admin_sets_prices_and_the_daily_cap_and_reads_the_figures(llm_app, fake):
    room = Room(llm_app)
    with llm_app.app_context():
        admin_token = factories.create_session_token(
            factories.create_user(email=ADMIN, name="Root").id)
    admin = llm_app.test_client()
    admin.set_cookie("discux_session", admin_token, domain="localhost")
    csrf = re.search(r'"X-CSRFToken": "([^"]+)"', admin.get("/admin").get_data(as_text=True))[1]

    refused = admin.post("/admin/usage/prices", data={
        "csrf_token": csrf, "model": "fake-small", "input_usd_per_million": "-3",
        "output_usd_per_million": "12"})
    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    assert "Enter a price from 0 to" in page and 'value="fake-small"' in page
    saved = admin.post("/admin/usage/prices", data={
        "csrf_token": csrf, "model": "fake-small", "input_usd_per_million": "3",
        "output_usd_per_million": "12"})
    assert saved.status_code == 303

    refused = admin.post("/admin/usage/cap", data={"csrf_token": csrf,
                                                   "daily_token_cap": "lots"})
    assert refused.status_code == 422 and 'value="lots"' in refused.get_data(as_text=True)
    assert admin.post("/admin/usage/cap", data={"csrf_token": csrf,
                                                "daily_token_cap": "1000000"}).status_code == 303

    fake.queue(FakeReply(text="Costed.", prompt_tokens=1000, completion_tokens=100))
    room.ask_nova()
    [reply] = room.messages("agent")
    assert reply.cost_usd == pytest.approx(0.0042)  # 1000 × 3 + 100 × 12, per million
    page = admin.get("/admin").get_data(as_text=True)
    usage_section = page[page.index('id="usage"'):page.index('id="figures"')]
    assert "of a daily cap of 1,000,000" in usage_section
    assert re.search(r'<th scope="row">fake-small</th><td>1</td><td>1,000</td>\s*'
                     r'<td>100</td><td>1,100</td><td>\$0.0042</td>', usage_section)
    # Removing the price leaves tokens only; the cost already counted stays.
    assert admin.post("/admin/usage/prices", data={"csrf_token": csrf,
                                                   "model": "fake-small"}).status_code == 303
    assert "<td>$3.0</td>" not in admin.get("/admin").get_data(as_text=True)
    with llm_app.app_context():
        usage.set_daily_cap(None)


def test_members_see_the_rooms_meter_and_the_owner_sets_the_budget_in_the_form(llm_app,
                                                                                fake):
    room = Room(llm_app)
    fake.queue(FakeReply(text="Metered.", prompt_tokens=1200, completion_tokens=34))
    room.ask_nova()
    with llm_app.app_context():
        member = factories.create_user(name="Mia Member", plan="pro")
        chat_factories.add_member(room.room_id, member.id)
        member_token = factories.create_session_token(member.id)
    viewer = llm_app.test_client()
    viewer.set_cookie("discux_session", member_token, domain="localhost")
    panel = viewer.get(f"/rooms/{room.room_id}").get_data(as_text=True)
    meter = panel[panel.index('id="usage"'):]
    assert "<strong>1,234</strong> tokens" in meter
    assert 'name="monthly_token_budget"' not in panel  # a member cannot set it

    form = {"csrf_token": room.csrf, "max_agents": "5", "monthly_token_budget": "-5"}
    refused = room.client.post(f"/rooms/{room.room_id}/settings", data=form)
    assert refused.status_code == 422
    assert "Enter a whole number of tokens from 0" in refused.get_data(as_text=True)
    form["monthly_token_budget"] = "1234"
    assert room.client.post(f"/rooms/{room.room_id}/settings", data=form).status_code == 303
    panel = viewer.get(f"/rooms/{room.room_id}").get_data(as_text=True)
    assert "of a 1,234-token budget" in panel
    room.ask_nova("more?")  # the budget is used up: refused, and said
    [notice] = room.messages("system")
    assert "monthly token budget (1,234 tokens) has 0 left" in notice.content
