"""The discussion engine against a real local OpenAI-compatible server: who answers, in what
order, with what context, within what budget, and what people see when the model fails."""

from __future__ import annotations

import json
import re
import threading

import pytest
import sqlalchemy as sa

from discux.discussion.engine import MAX_HANDOVERS, engine_for
from discux.extensions import db
from discux.models import Agent, Message, RoomBrief, RoomSettings, User
from tests.conftest import LiveServer, empty_tables
from tests.support import chat_factories, factories, ws_client
from tests.support.closed_port import CLOSED_URL
from tests.support.fake_llm import FakeReply


@pytest.fixture
def llm_app_config():
    # A model that fails should fail fast here.
    return {"DISCUX_LLM_TIMEOUT": 1.0}


class Room:
    """A room with an owner signed in on a test client, and named agents in it."""

    def __init__(self, app, agents=(("Nova", "analytical"), ("Scout", "direct"))):
        self.app = app
        self.client = app.test_client()
        with app.app_context():
            owner = factories.create_user(name="Ana")
            self.owner_id = owner.id
            room = chat_factories.create_room(owner, name="Launch plan")
            self.id = room.id
            self.agents = {}
            for name, style in agents:
                agent = chat_factories.create_agent(owner, name=name, style=style)
                agent.prompt = f"You are {name}, persona marker {name.upper()}-PERSONA."
                db.session.commit()
                chat_factories.add_agent(room, agent, owner)
                self.agents[name] = agent.id
            token = factories.create_session_token(owner.id)
        self.client.set_cookie("discux_session", token, domain="localhost")
        html = self.client.get("/").get_data(as_text=True)
        self.csrf = re.search(r'"X-CSRFToken": "([^"]+)"', html).group(1)

    def post(self, text: str, humans_only: bool = False, expect: int = 303):
        data = {"content": text, "csrf_token": self.csrf}
        if humans_only:
            data["humans_only"] = "1"
        response = self.client.post(f"/rooms/{self.id}/messages", data=data)
        assert response.status_code == expect, response.get_data(as_text=True)[:500]
        return response

    def control(self, action: str):
        return self.client.post(f"/rooms/{self.id}/{action}", data={"csrf_token": self.csrf})

    def wait(self, timeout: float = 15):
        assert engine_for(self.app).wait_idle(self.id, timeout=timeout), "agents still busy"

    def messages(self) -> list[Message]:
        with self.app.app_context():
            rows = db.session.scalars(
                sa.select(Message).where(Message.room_id == self.id).order_by(Message.id)).all()
            for row in rows:
                db.session.expunge(row)
            return rows

    def replies(self) -> list[tuple[str, str]]:
        return [(m.sender_name, m.content) for m in self.messages() if m.type == "agent"]

    def system_notes(self) -> list[str]:
        return [m.content for m in self.messages() if m.type == "system"]


def by_agent(replies: dict[str, str]):
    """A responder answering as whichever agent the system prompt names."""

    def respond(body):
        system = body["messages"][0]["content"]
        for name, text in replies.items():
            if system.startswith(f"You are {name},"):
                return FakeReply(text=text)
        return None

    return respond


def test_mentioned_agent_streams_a_reply_that_is_stored(llm_app, fake):
    room = Room(llm_app)
    fake.queue(FakeReply(text="Ship the beta on Friday.", logprobs=True))
    room.post("@Nova when should we ship?")
    room.wait()
    [reply] = [m for m in room.messages() if m.type == "agent"]
    assert (reply.sender_name, reply.content, reply.status) == ("Nova", "Ship the beta on Friday.",
                                                                "complete")
    assert reply.processing_time is not None and reply.processing_time >= 0
    assert reply.agent_confidence == pytest.approx(0.9, abs=0.01)
    assert reply.context_length == 1
    with llm_app.app_context():
        assert db.session.get(Agent, room.agents["Nova"]).usage_count == 1


def test_prompt_carries_style_persona_and_who_is_here(llm_app, fake):
    room = Room(llm_app)
    room.post("@Nova thoughts?")
    room.wait()
    [body] = fake.requests
    system = body["messages"][0]["content"]
    assert "NOVA-PERSONA" in system
    assert "Be analytical" in system  # the analytical style's instruction
    assert "People in this room: Ana." in system
    assert "@Scout" in system
    assert (body["temperature"], body["max_tokens"]) == (0.4, 600)
    assert body["model"] == "fake-small" and body["stream"] is True
    assert body["messages"][-1] == {"role": "user", "content": "Ana: @Nova thoughts?"}


def test_several_agents_answer_in_mention_order_each_seeing_earlier_replies(llm_app, fake):
    room = Room(llm_app)
    fake.respond_with(by_agent({"Nova": "Nova says A.", "Scout": "Scout says B."}))
    room.post("@Scout and @Nova, what now?")
    room.wait()
    assert room.replies() == [("Scout", "Scout says B."), ("Nova", "Nova says A.")]
    second = fake.requests[1]["messages"]
    assert {"role": "user", "content": "Scout (agent): Scout says B."} in second
    assert "Scout says B." not in json.dumps(fake.requests[0])


def test_an_agent_mention_hands_over_the_turn(llm_app, fake):
    room = Room(llm_app)
    fake.respond_with(by_agent({"Nova": "Over to @Scout for numbers.", "Scout": "It's 42."}))
    room.post("@Nova start us off")
    room.wait()
    assert room.replies() == [("Nova", "Over to @Scout for numbers."), ("Scout", "It's 42.")]


def test_hand_overs_stop_at_the_budget_and_continue_grants_more(llm_app, fake):
    room = Room(llm_app)
    # Each reply says something new: a chain that repeats itself stops sooner (the loop guard,
    # tests/test_discussion_loop_guard.py).
    points = iter(["pricing", "the launch date", "support hours", "the beta list",
                   "our changelog", "onboarding emails", "refunds", "the roadmap"])
    fake.respond_with(lambda body: FakeReply(
        text=f"I think {next(points)} matters most; @"
        f"{'Scout' if body['messages'][0]['content'].startswith('You are Nova') else 'Nova'}?"))
    room.post("@Nova go")
    room.wait()
    assert len(room.replies()) == 1 + MAX_HANDOVERS
    room.control("continue")
    room.wait()
    assert len(room.replies()) == 1 + MAX_HANDOVERS + 3


def test_ten_replies_is_the_most_one_message_sets_off(llm_app, fake):
    names = [(f"Agent{n}", "direct") for n in range(12)]
    room = Room(llm_app, agents=names)
    fake.respond_with(lambda body: FakeReply(text="ok"))
    room.post("@all answer please")
    room.wait()
    assert len(room.replies()) == 10


@pytest.fixture
def room_socket(llm_app):
    """`room_socket(room)` → a JSON socket on a live server of the LLM app, as the owner."""
    server = LiveServer(llm_app).start()
    sockets = []

    def _open(room):
        with llm_app.app_context():
            token = factories.create_session_token(room.owner_id)
        ws = ws_client.connect(server.url, room.id, token)
        sockets.append(ws)
        return ws

    yield _open
    for ws in sockets:
        ws.close()
    server.stop()


def test_reply_streams_to_listening_sockets_then_completes(llm_app, fake, room_socket):
    room = Room(llm_app)
    ws = room_socket(room)
    fake.queue(FakeReply(text="alpha beta gamma delta", delay_per_token=0.06))
    room.post("@Nova stream please")
    status = ws_client.wait_for_event(ws, lambda e: e["type"] == "agent.status")
    assert status["data"]["state"] == "answering" and status["data"]["agent"] == "Nova"
    assert (status["data"]["position"], status["data"]["total"]) == (1, 1)  # "1 of 1 answering"
    created = ws_client.wait_for_event(ws, lambda e: e["type"] == "message.created"
                                       and e["data"]["type"] == "agent")
    assert created["data"]["status"] == "streaming"
    streamed = ""
    while True:
        event = ws_client.wait_for_event(
            ws, lambda e: e["type"] in {"message.delta", "message.completed"})
        if event["type"] == "message.completed":
            break
        streamed += event["data"]["delta"]
    assert streamed == "alpha beta gamma delta"
    assert event["data"]["status"] == "complete" and event["data"]["content"] == streamed


def test_a_reply_the_model_answers_at_once_still_streams_after_its_row(llm_app, fake, room_socket):
    # The first piece is published by the thread that receives it, racing the reply row.
    room = Room(llm_app)
    ws = room_socket(room)
    for n in range(3):
        fake.queue(FakeReply(text=f"Answer {n} right away."))
        room.post(f"@Nova quick {n}")
        seen = []
        while not seen or seen[-1]["type"] != "message.completed":
            seen.append(ws_client.wait_for_event(ws, lambda e: e["type"] in {
                "message.created", "message.delta", "message.completed"}
                and e["data"].get("type") != "user"))
        created = seen[0]
        assert created["type"] == "message.created" and created["data"]["status"] == "streaming"
        streamed = "".join(e["data"]["delta"] for e in seen if e["type"] == "message.delta")
        assert streamed == f"Answer {n} right away."
        assert all(e["data"]["id"] == created["data"]["id"] for e in seen)
        room.wait()


def test_busy_request_threads_do_not_hold_back_the_answering_line(llm_app, fake, room_socket,
                                                                   monkeypatch):
    # A turn stands aside while its request is being sent; one queued behind busy request
    # threads is not being sent, so the turn announces itself without waiting for it.
    monkeypatch.setattr("discux.discussion.engine.REQUEST_SEND_WAIT", 3600)
    room = Room(llm_app)
    ws = room_socket(room)
    requests = engine_for(llm_app).requests
    release = threading.Event()
    held = [requests.submit(release.wait)[0] for _ in range(requests.workers)]
    try:
        fake.queue(FakeReply(text="Worth the wait."))
        room.post("@Nova are you there?")
        status = ws_client.wait_for_event(ws, lambda e: e["type"] == "agent.status")
        assert status["data"]["state"] == "answering" and status["data"]["agent"] == "Nova"
        created = ws_client.wait_for_event(ws, lambda e: e["type"] == "message.created"
                                           and e["data"]["type"] == "agent")
        assert created["data"]["status"] == "streaming"
        assert fake.requests == []  # the model has not been asked yet: its request is queued
    finally:
        release.set()
    assert all(f.result(timeout=5) for f in held)
    completed = ws_client.wait_for_event(ws, lambda e: e["type"] == "message.completed"
                                         and e["data"]["id"] == created["data"]["id"])
    assert completed["data"]["content"] == "Worth the wait."


def test_stop_keeps_the_partial_reply_and_drops_the_queue(llm_app, fake, room_socket):
    room = Room(llm_app)
    ws = room_socket(room)
    fake.queue(FakeReply(text=" ".join(f"w{n}" for n in range(200)), delay_per_token=0.02))
    room.post("@Nova @Scout long answer please")
    ws_client.wait_for_event(ws, lambda e: e["type"] == "message.delta")
    response = room.control("stop")
    assert response.status_code == 303
    room.wait()
    replies = [m for m in room.messages() if m.type == "agent"]
    assert len(replies) == 1 and replies[0].status == "stopped"
    assert replies[0].content.startswith("w0") and "w199" not in replies[0].content
    assert len(fake.requests) == 1  # Scout was never asked
    ws_client.wait_for_event(ws, lambda e: e["type"] == "agent.status"
                             and e["data"]["state"] == "stopped")


def test_a_new_message_to_agents_cancels_what_was_running(llm_app, fake, room_socket):
    room = Room(llm_app)
    ws = room_socket(room)
    fake.queue(FakeReply(text=" ".join(f"w{n}" for n in range(200)), delay_per_token=0.02),
               FakeReply(text="Fresh answer."))
    room.post("@Nova @Scout long one")
    ws_client.wait_for_event(ws, lambda e: e["type"] == "message.delta")
    room.post("@Scout actually, quick question")
    room.wait()
    replies = [(m.sender_name, m.status) for m in room.messages() if m.type == "agent"]
    assert replies == [("Nova", "stopped"), ("Scout", "complete")]


@pytest.mark.parametrize(
    ("replies", "reason"),
    [
        ([FakeReply(mode="http_500")] * 3, "answered 500"),
        ([FakeReply(mode="hang")] * 3, "timed out"),  # the first try and both retries
        ([FakeReply(mode="garbage")], "malformed"),
        ([FakeReply(mode="http_400")], "answered 400"),
    ],
    ids=["server-error", "timeout", "garbage", "bad-request"],
)
def test_model_failure_becomes_a_system_message_and_others_go_on(llm_app, fake, replies, reason):
    room = Room(llm_app)
    fake.queue(*replies, FakeReply(text="Scout is fine."))
    room.post("@Nova @Scout status?")
    room.wait(timeout=30)
    messages = room.messages()
    assert messages[0].content == "@Nova @Scout status?"  # the user's message is never lost
    [note] = room.system_notes()
    assert note.startswith("⚠️ **Nova** could not answer:") and reason in note
    assert room.replies() == [("Scout", "Scout is fine.")]


def test_cut_off_stream_keeps_what_arrived_and_says_so(llm_app, fake):
    room = Room(llm_app)
    fake.queue(FakeReply(text="one two three four five six", mode="cut"))
    room.post("@Nova go")
    room.wait()
    [reply] = [m for m in room.messages() if m.type == "agent"]
    assert reply.status == "failed" and reply.content.startswith("one")
    [note] = room.system_notes()
    assert "Nova" in note and "cut off" in note


def test_refused_connection_is_reported(make_app):
    app = make_app(DISCUX_LLM_BASE_URL=f"{CLOSED_URL}/v1", DISCUX_LLM_TIMEOUT=1.0)
    room = Room(app)
    room.post("@Nova hello?")
    room.wait(timeout=30)
    [note] = room.system_notes()
    assert "could not connect" in note
    with app.app_context():
        empty_tables(db.engine)


def test_confidence_is_null_when_the_provider_gives_no_logprobs(llm_app, fake):
    room = Room(llm_app)
    fake.queue(FakeReply(text="No logprobs here.", logprobs=False))
    room.post("@Nova hi")
    room.wait()
    [reply] = [m for m in room.messages() if m.type == "agent"]
    assert reply.agent_confidence is None


def test_humans_only_messages_are_never_sent_to_agents(llm_app, fake):
    room = Room(llm_app)
    room.post("@Nova secret salary talk", humans_only=True)
    room.wait()
    assert fake.requests == [] and room.replies() == []
    room.post("@Nova public question")
    room.wait()
    assert "secret salary" not in json.dumps(fake.requests)


def nova_waits_for_her_rate_limit(llm_app, room, ws, seconds_ago: float = 59.2) -> None:
    """Nova has sent her 10 replies of this minute (`seconds_ago`: by default the oldest leaves
    the window in under 1 s) when "@Nova one more" is posted: the room is told she waits."""
    from datetime import timedelta

    from discux.ids import utcnow

    with llm_app.app_context():
        nova = db.session.get(Agent, room.agents["Nova"])
        for _ in range(10):
            chat_factories.create_message(room.id, nova, "earlier")
        db.session.execute(sa.update(Message).where(Message.sender_id == nova.id).values(
            timestamp=utcnow() - timedelta(seconds=seconds_ago)))
        db.session.commit()
    room.post("@Nova one more")
    status = ws_client.wait_for_event(ws, lambda e: e["type"] == "agent.status")
    assert (status["data"]["state"], status["data"]["agent"]) == ("waiting", "Nova")


def test_an_agent_over_its_rate_limit_waits_and_then_answers(llm_app, fake, room_socket):
    room = Room(llm_app)
    ws = room_socket(room)
    nova_waits_for_her_rate_limit(llm_app, room, ws)
    room.wait(timeout=15)
    assert room.replies()[-1][0] == "Nova"
    assert len(room.replies()) == 11


def test_an_agent_that_waited_for_its_rate_limit_sees_what_was_said_meanwhile(
        llm_app, fake, room_socket):
    room = Room(llm_app)
    ws = room_socket(room)
    nova_waits_for_her_rate_limit(llm_app, room, ws)
    room.post("Also: the launch moved to Friday.")
    room.wait(timeout=15)
    history = json.dumps(fake.requests[-1]["messages"])
    assert "Ana: @Nova one more" in history and "the launch moved to Friday" in history


@pytest.mark.parametrize("llm_app_config", [{"DISCUX_LLM_TIMEOUT": 1.0, "DISCUX_AGENT_WORKERS": 1}])
def test_a_room_waiting_for_a_rate_limit_holds_up_no_other_room(llm_app, fake, room_socket):
    # One agent thread: Nova's turn must give it back while she waits (about 4 s).
    waiting = Room(llm_app)
    nova_waits_for_her_rate_limit(llm_app, waiting, room_socket(waiting), seconds_ago=56)
    other = Room(llm_app, agents=(("Scout", "direct"),))
    other.post("@Scout are we on track?")
    other.wait()
    assert [name for name, _ in other.replies()] == ["Scout"]
    assert len(waiting.replies()) == 10  # Nova has not answered yet
    waiting.wait(timeout=15)
    assert waiting.replies()[-1][0] == "Nova" and len(waiting.replies()) == 11


def test_stop_cancels_a_turn_waiting_for_its_rate_limit(llm_app, fake, room_socket):
    room = Room(llm_app)
    ws = room_socket(room)
    nova_waits_for_her_rate_limit(llm_app, room, ws, seconds_ago=30)
    assert room.control("stop").status_code == 303
    ws_client.wait_for_event(ws, lambda e: e["type"] == "agent.status"
                             and e["data"]["state"] == "stopped")
    room.wait(timeout=10)  # Nova would have waited 30 s
    assert len(room.replies()) == 10 and fake.requests == []


def test_a_newer_mention_cancels_a_turn_waiting_for_its_rate_limit(llm_app, fake, room_socket):
    room = Room(llm_app)
    ws = room_socket(room)
    nova_waits_for_her_rate_limit(llm_app, room, ws, seconds_ago=30)
    room.post("@Scout then you answer")
    room.wait(timeout=10)
    assert [name for name, _ in room.replies()] == ["Nova"] * 10 + ["Scout"]


def test_an_agent_one_reply_short_of_its_rate_limit_answers_at_once(llm_app, fake, room_socket):
    # The replies were written by "another worker": only the database knows of them.
    room = Room(llm_app)
    ws = room_socket(room)
    with llm_app.app_context():
        nova = db.session.get(Agent, room.agents["Nova"])
        for _ in range(9):
            chat_factories.create_message(room.id, nova, "earlier")
    room.post("@Nova one more")
    status = ws_client.wait_for_event(ws, lambda e: e["type"] == "agent.status")
    assert status["data"]["state"] == "answering"
    room.wait()
    assert len(room.replies()) == 10


def test_the_next_prompt_sees_a_renamed_person_a_new_member_and_a_new_brief(llm_app, fake):
    room = Room(llm_app)
    room.post("@Nova hello")
    room.wait()
    first = fake.requests[-1]["messages"][0]["content"]
    assert "People in this room: Ana." in first and "Room brief" not in first
    # Changed behind this worker's back, as another worker (or a direct edit) would.
    with llm_app.app_context():
        db.session.execute(sa.update(User).where(User.id == room.owner_id).values(name="Ana B."))
        db.session.add(RoomBrief(room_id=room.id, version=1, content="Ship on Friday.",
                                 content_html="<p>Ship on Friday.</p>", source="human"))
        db.session.commit()
        chat_factories.add_member(room.id, factories.create_user(name="Bo"))
    room.post("@Nova again")
    room.wait()
    second = fake.requests[-1]["messages"][0]["content"]
    assert "People in this room: Ana B., Bo." in second
    assert "Room brief (the room's long-term memory, version 1)" in second
    assert "Ship on Friday." in second
    with llm_app.app_context():
        db.session.add(RoomBrief(room_id=room.id, version=2, content="Ship on Monday.",
                                 content_html="<p>Ship on Monday.</p>", source="human"))
        db.session.commit()
    room.post("@Nova and now?")
    room.wait()
    third = fake.requests[-1]["messages"][0]["content"]
    assert "version 2)" in third and "Ship on Monday." in third
    assert "Ship on Friday." not in third
    reply = [m for m in room.messages() if m.type == "agent"][-1]
    assert json.loads(reply.context_receipt)["brief_version"] == 2


def test_history_is_sent_oldest_first_with_the_agents_own_replies_as_its_own(llm_app, fake):
    room = Room(llm_app)
    fake.respond_with(by_agent({"Nova": "Nova's first answer.", "Scout": "Scout's view."}))
    room.post("@Nova first")
    room.wait()
    room.post("Just a note.", humans_only=True)
    room.post("@Scout your view?")
    room.wait()
    room.post("@Nova and you?")
    room.wait()
    history = fake.requests[-1]["messages"][1:]
    assert history == [
        {"role": "user", "content": "Ana: @Nova first"},
        {"role": "assistant", "content": "Nova's first answer."},
        {"role": "user", "content": "Ana: @Scout your view?"},
        {"role": "user", "content": "Scout (agent): Scout's view."},
        {"role": "user", "content": "Ana: @Nova and you?"},
    ]


def test_history_is_the_newest_twenty_four_messages_with_content(llm_app, fake):
    room = Room(llm_app)
    with llm_app.app_context():
        ana = db.session.get(User, room.owner_id)
        nova = db.session.get(Agent, room.agents["Nova"])
        stored = [chat_factories.create_message(room.id, ana, f"m{n}") for n in range(30)]
        # Stopped before a word came, or nothing but whitespace: nothing to show the model.
        for blank in ("", "   ", "\n\t", "", " \n "):
            chat_factories.create_message(room.id, nova, blank, status="stopped")
            stored.append(chat_factories.create_message(room.id, ana, f"after blank {blank!r}"))
        cut_before = stored[-24].id  # the newest 23 stored messages and the question fit
    room.post("@Nova how many?")
    room.wait()
    history = fake.requests[-1]["messages"][1:]
    assert len(history) == 24
    assert history[0] == {"role": "user", "content": "Ana: m12"}
    assert history[-1] == {"role": "user", "content": "Ana: @Nova how many?"}
    assert all(line["content"].strip() for line in history)
    reply = [m for m in room.messages() if m.type == "agent" and m.content][-1]
    assert json.loads(reply.context_receipt)["cut"] == {
        "reason": "message limit", "limit": 24, "before": cut_before}


def test_monthly_quota_refuses_the_message_and_wakes_no_agent(llm_app, fake):
    room = Room(llm_app)
    with llm_app.app_context():
        db.session.execute(sa.update(User).values(max_messages_per_month=1))
        db.session.commit()
    room.post("@Nova first")
    room.wait()
    response = room.post("@Nova second", expect=403)
    assert "1 messages a month" in response.get_data(as_text=True)
    room.wait()
    assert len(fake.requests) == 1


def room_with_auto_summary(app, earlier_messages: int) -> Room:
    """A room with auto-summarize on and `earlier_messages` messages ("point 0", …) already in."""
    room = Room(app)
    with app.app_context():
        db.session.execute(sa.update(RoomSettings).values(auto_summarize=True))
        db.session.commit()
        owner = db.session.get(User, room.owner_id)
        for n in range(earlier_messages):
            chat_factories.create_message(room.id, owner, f"point {n}")
    return room


def test_auto_summary_after_thirty_messages_updates_the_brief(llm_app, fake):
    room = room_with_auto_summary(llm_app, earlier_messages=29)
    fake.queue(FakeReply(text="## Decisions\n- Ship Friday (#2)\n## Open questions\nNone yet.\n"
                              "## Action items\n- Ana: write notes (#1)"))
    room.post("the 30th message")
    room.wait()
    with llm_app.app_context():
        [brief] = db.session.scalars(sa.select(RoomBrief)).all()
        assert brief.version == 1 and brief.source == "summary"
        assert "(#2)" not in brief.content and "#message-" in brief.content
    [summary_request] = fake.requests
    assert "keep the brief" in summary_request["messages"][0]["content"]
    assert "point 0" in summary_request["messages"][-1]["content"]
    notes = room.system_notes()
    assert notes and notes[-1].startswith("📝 **Summary**")
    room.post("one more")  # the next summary waits for 30 new messages
    room.wait()
    assert len(fake.requests) == 1


def test_auto_summary_counts_the_messages_posted_since_the_room_was_last_counted(llm_app, fake):
    # The 29th and 30th messages are posted: the first is counted in the database, the second
    # only in memory, and the summary still comes at the 30th.
    room = room_with_auto_summary(llm_app, earlier_messages=28)
    fake.queue(FakeReply(text="## Decisions\n- Ship Friday (#2)"))
    room.post("the 29th message")
    room.wait()
    assert fake.requests == [] and room.system_notes() == []
    room.post("the 30th message")
    room.wait()
    [summary_request] = fake.requests
    assert "the 30th message" in summary_request["messages"][-1]["content"]
    assert room.system_notes()[-1].startswith("📝 **Summary**")


def test_switching_auto_summary_off_stops_the_summary_that_was_about_to_come(llm_app, fake):
    room = room_with_auto_summary(llm_app, earlier_messages=28)
    room.post("the 29th message")  # the room is now counted, with auto-summarize on
    room.wait()
    response = room.client.post(f"/rooms/{room.id}/settings", data={
        "csrf_token": room.csrf, "max_agents": "5", "allow_agent_creation": "y"})
    assert response.status_code == 303
    room.post("the 30th message")
    room.wait()
    assert fake.requests == [] and room.system_notes() == []
    with llm_app.app_context():
        assert db.session.scalars(sa.select(RoomBrief)).all() == []


def test_summarize_on_demand_and_the_brief_feeds_later_prompts(llm_app, fake):
    room = Room(llm_app)
    room.post("We decided on Postgres.")
    fake.queue(FakeReply(text="## Decisions\n- Postgres (#1)"), FakeReply(text="Noted."))
    assert room.control("summarize").status_code == 303
    room.wait()
    room.post("@Nova what did we decide?")
    room.wait()
    system = fake.requests[-1]["messages"][0]["content"]
    assert "Room brief (the room's long-term memory, version 1)" in system
    assert "Postgres" in system


def test_people_edit_the_brief_and_every_save_is_a_version(llm_app):
    room = Room(llm_app)
    page = room.client.get(f"/rooms/{room.id}/brief").get_data(as_text=True)
    assert "No versions yet." in page
    for base, text in enumerate(("- Decide pricing", "- Decide pricing\n- Ana: draft")):
        response = room.client.post(f"/rooms/{room.id}/brief",
                                    data={"content": text, "base_version": str(base),
                                          "csrf_token": room.csrf})
        assert response.status_code == 303
    page = room.client.get(f"/rooms/{room.id}/brief").get_data(as_text=True)
    assert "Version 2" in page and "Version 1" in page
    empty = room.client.post(f"/rooms/{room.id}/brief", data={"content": " ", "base_version": "2",
                                                             "csrf_token": room.csrf})
    assert empty.status_code == 422 and "cannot be empty" in empty.get_data(as_text=True)
    assert any("edited the room brief (version 2)" in n for n in room.system_notes())


def test_context_receipt_shows_what_the_agent_was_sent(llm_app, fake):
    room = Room(llm_app)
    room.post("Background: budget is 10k.")
    room.post("@Nova plan it", )
    room.wait()
    reply = [m for m in room.messages() if m.type == "agent"][0]
    receipt = json.loads(reply.context_receipt)
    assert receipt["message_ids"] == [m.id for m in room.messages()[:2]]
    html = room.client.get(f"/rooms/{room.id}/messages/{reply.id}/receipt").get_data(as_text=True)
    assert "2</strong> messages sent" in html
    assert "budget is 10k" in html


def test_demo_responder_answers_when_nothing_is_configured(make_app):
    app = make_app()  # its Ollama URL names a port held closed (tests/conftest.py)
    room = Room(app)
    room.post("@Nova hello there")
    room.wait(timeout=20)
    [reply] = [m for m in room.messages() if m.type == "agent"]
    assert reply.content and reply.status == "complete"
    assert json.loads(reply.context_receipt)["demo"] is True
    page = room.client.get(f"/rooms/{room.id}").get_data(as_text=True)
    assert 'title="Written by the offline demo responder, not a real model">demo</span>' in page
    with app.app_context():
        empty_tables(db.engine)


def test_non_members_cannot_drive_the_agents(llm_app, make_user, login):
    room = Room(llm_app)
    stranger = llm_app.test_client()
    with llm_app.app_context():
        token = factories.create_session_token(factories.create_user().id)
    stranger.set_cookie("discux_session", token, domain="localhost")
    html = stranger.get("/").get_data(as_text=True)
    csrf = re.search(r'"X-CSRFToken": "([^"]+)"', html).group(1)
    for action in ("stop", "continue", "summarize", "brief"):
        assert stranger.post(f"/rooms/{room.id}/{action}", data={"csrf_token": csrf}
                             ).status_code == 404


def test_settings_show_the_provider_and_test_its_connection(llm_app, fake):
    room = Room(llm_app)
    page = room.client.get("/settings").get_data(as_text=True)
    assert "Agents answer through <strong>OpenAI-compatible server at" in page
    assert "model <code>fake-small</code>" in page
    fake.queue(FakeReply(text="ready"))
    response = room.client.post("/settings/llm/test", data={"csrf_token": room.csrf},
                                follow_redirects=True)
    assert "answered: ready" in response.get_data(as_text=True)
    fake.queue(*[FakeReply(mode="http_500")] * 3)
    response = room.client.post("/settings/llm/test", data={"csrf_token": room.csrf},
                                follow_redirects=True)
    assert "did not answer" in response.get_data(as_text=True)


def test_room_page_has_the_brief_search_and_export(llm_app):
    room = Room(llm_app)
    page = room.client.get(f"/rooms/{room.id}").get_data(as_text=True)
    assert "Room brief" in page and "No brief yet." in page
    assert ">Summarize</button>" in page and "Edit brief" in page
    assert "Search this room" in page
    assert f"/rooms/{room.id}/export.md" in page


def test_stop_reaches_the_worker_running_the_room_through_redis(make_app, fake, redis_server):
    """Two app instances = two workers sharing Redis: Stop posted to one stops the other."""
    redis_url = redis_server.url
    worker_one = make_app(DISCUX_LLM_BASE_URL=fake.base_url, DISCUX_REDIS_URL=redis_url)
    worker_two = make_app(DISCUX_LLM_BASE_URL=fake.base_url, DISCUX_REDIS_URL=redis_url)
    fake.reset()
    room = Room(worker_one)
    engine_for(worker_two)  # worker two's engine listens for cancels too
    fake.queue(FakeReply(text=" ".join(f"w{n}" for n in range(300)), delay_per_token=0.02))
    room.post("@Nova a long one")
    fake.wait_for_requests(1)
    other = worker_two.test_client()
    other.set_cookie("discux_session", room.client.get_cookie("discux_session").value,
                     domain="localhost")
    csrf = re.search(r'"X-CSRFToken": "([^"]+)"', other.get("/").get_data(as_text=True))[1]
    response = other.post(f"/rooms/{room.id}/stop", data={"csrf_token": csrf})
    assert response.status_code == 303
    room.wait(timeout=10)
    [reply] = [m for m in room.messages() if m.type == "agent"]
    assert reply.status == "stopped" and "w299" not in reply.content
    with worker_one.app_context():
        empty_tables(db.engine)


def test_jump_to_an_old_message_shows_the_history_around_it(llm_app):
    room = Room(llm_app)
    with llm_app.app_context():
        owner = db.session.get(User, room.owner_id)
        ids = [chat_factories.create_message(room.id, owner, f"note number {n}").id
               for n in range(120)]
    page = room.client.get(f"/rooms/{room.id}?around={ids[10]}").get_data(as_text=True)
    assert f'id="message-{ids[10]}"' in page
    assert "note number 0<" in page.replace("</p>", "<")  # older neighbours are there
    assert "note number 119" not in page
    assert "Jump to the latest messages" in page
    newest = room.client.get(f"/rooms/{room.id}").get_data(as_text=True)
    assert f'id="message-{ids[10]}"' not in newest and "note number 119" in newest
    unknown = room.client.get(f"/rooms/{room.id}?around=not-an-id").get_data(as_text=True)
    assert "note number 119" in unknown and "Jump to the latest" not in unknown
