"""'Try it': a streamed one-off reply from the persona and style on the form, saved or not."""

from __future__ import annotations

import html
import json

import pytest

from discux.extensions import db
from discux.models import Agent, User
from tests.support.agent_factories import VALID_FORM, agent_count_of, create_agent
from tests.support.fake_llm import FakeLLM, FakeReply

STREAM = {"Accept": "text/event-stream, application/json;q=0.9"}
PERSONA = "A grumpy old sea captain who answers in nautical metaphors."


@pytest.fixture
def fake():
    with FakeLLM() as server:
        yield server


@pytest.fixture
def llm_client(make_app, fake):
    """A test client of an app whose model server is the fake."""
    return make_app(DISCUX_LLM_BASE_URL=fake.base_url, DISCUX_LLM_MODEL="fake-small",
                    DISCUX_LLM_TIMEOUT=0.5).test_client()


@pytest.fixture
def signed_in(llm_client, make_user, login, csrf_token):
    """`signed_in()` → (client, user, csrf token) for a fresh user on the fake-backed app."""

    def _signed_in(**user_fields):
        user = make_user(**user_fields)
        login(user, test_client=llm_client)
        return llm_client, user, csrf_token(test_client=llm_client)

    return _signed_in


def events(response) -> list[tuple[str, dict]]:
    """The server-sent events of a streamed response, in order."""
    parsed = []
    for block in response.get_data(as_text=True).split("\n\n"):
        if not block.strip():
            continue
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        parsed.append((lines["event"], json.loads(lines["data"])))
    return parsed


def try_form(token: str, **changes) -> dict:
    return {**VALID_FORM, "csrf_token": token, "prompt": PERSONA, "style": "creative",
            "try_message": "Where should we go next?", **changes}


def test_try_streams_the_reply_from_the_unsaved_persona_and_style(app, signed_in, fake):
    client, user, token = signed_in()
    fake.queue(FakeReply(text="Steer for calmer waters, matey.", logprobs=True))
    response = client.post("/agents/new/try", data=try_form(token, name="Captain"),
                           headers=STREAM)
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    stream = events(response)
    assert stream[0][0] == "start"
    assert [data["text"] for name, data in stream if name == "delta"] == [
        "Steer", " for", " calmer", " waters,", " matey."]
    name, done = stream[-1]
    assert name == "done" and done["confidence"] == pytest.approx(0.9, abs=1e-6)

    sent = fake.requests[-1]
    system, question = sent["messages"]
    assert system["role"] == "system" and question == {
        "role": "user", "content": "Where should we go next?"}
    assert "You are Captain" in system["content"]
    assert PERSONA in system["content"]
    assert "Be creative: offer unexpected ideas" in system["content"]
    assert (sent["temperature"], sent["max_tokens"], sent["model"]) == (0.9, 500, "fake-small")
    with app.app_context():
        assert agent_count_of(user) == 0  # trying saves nothing


@pytest.mark.parametrize(
    ("style", "temperature", "max_tokens", "instruction"),
    [
        ("professional", 0.7, 500, "Answer in a professional tone"),
        ("direct", 0.5, 300, "Be direct"),
        ("friendly", 0.8, 400, "Be warm and encouraging"),
        ("creative", 0.9, 500, "Be creative"),
        ("analytical", 0.4, 600, "Be analytical"),
    ],
)
def test_each_style_sets_its_instruction_and_sampling(
    signed_in, fake, style, temperature, max_tokens, instruction
):
    client, _, token = signed_in()
    events(client.post("/agents/new/try", data=try_form(token, style=style), headers=STREAM))
    sent = fake.requests[-1]
    assert (sent["temperature"], sent["max_tokens"]) == (temperature, max_tokens)
    assert instruction in sent["messages"][0]["content"]


def test_try_uses_the_model_typed_on_the_form(signed_in, fake):
    client, _, token = signed_in()
    events(client.post("/agents/new/try", data=try_form(token, model="fake-large"), headers=STREAM))
    assert fake.requests[-1]["model"] == "fake-large"


def test_trying_an_edit_uses_the_form_not_the_saved_agent(app, signed_in, fake):
    client, user, token = signed_in()
    with app.app_context():
        agent_id = create_agent(user, "Ada", prompt="The saved, old persona text.").id
    response = client.post(f"/agents/{agent_id}/try",
                           data=try_form(token, name="Ada", prompt=PERSONA), headers=STREAM)
    assert response.status_code == 200
    assert events(response)[-1][0] == "done"
    system = fake.requests[-1]["messages"][0]["content"]
    assert PERSONA in system and "old persona" not in system
    with app.app_context():
        assert db.session.get(Agent, agent_id).prompt == "The saved, old persona text."


def test_without_javascript_try_renders_the_whole_reply_on_the_form(signed_in, fake):
    client, _, token = signed_in()
    fake.queue(FakeReply(text="Hoist the <b>sails</b>!"))
    response = client.post("/agents/new/try", data=try_form(token, name="Captain"))
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert '<div class="try-reply-text">Hoist the &lt;b&gt;sails&lt;/b&gt;!</div>' in body
    assert 'value="Captain"' in body and html.escape(PERSONA, quote=False) in body
    assert ">Create agent</button>" in body


@pytest.mark.parametrize(
    ("replies", "message"),
    [
        ([FakeReply(mode="http_500")] * 3, "No reply: the model server answered 500 (Fake http_500 error.)."),
        ([FakeReply(mode="hang")] * 3, "No reply: timed out after 0.5 s."),
        ([FakeReply(text="one two three four", mode="cut")], "No reply: the reply stream was cut off."),
        ([FakeReply(mode="garbage")], "No reply: the model server sent a malformed reply."),
    ],
    ids=["http_500", "hang", "cut", "garbage"],
)
def test_model_failures_are_told_in_plain_words(signed_in, fake, replies, message):
    client, _, token = signed_in()
    fake.queue(*replies)
    stream = events(client.post("/agents/new/try", data=try_form(token), headers=STREAM))
    assert stream[-1] == ("error", {"message": message})


def test_failure_without_javascript_is_shown_on_the_form(signed_in, fake):
    client, _, token = signed_in()
    fake.queue(FakeReply(mode="garbage"))
    body = html.unescape(client.post("/agents/new/try", data=try_form(token)).get_data(as_text=True))
    assert '<p class="try-error" role="alert">No reply: the model server sent a malformed reply.</p>' in body


def test_an_empty_test_message_is_refused(signed_in, fake):
    client, _, token = signed_in()
    response = client.post("/agents/new/try", data=try_form(token, try_message="  "),
                           headers=STREAM)
    assert response.status_code == 422
    assert response.get_json()["error"] == {
        "code": "invalid", "field": "try_message",
        "message": "Write a test message to try the agent with."}
    page = client.post("/agents/new/try", data=try_form(token, try_message=""))
    assert page.status_code == 422
    assert "Write a test message to try the agent with." in page.get_data(as_text=True)
    assert fake.requests == []


def test_form_offers_the_servers_models_and_names_the_provider(signed_in):
    client, _, _ = signed_in()
    page = html.unescape(client.get("/agents/new").get_data(as_text=True))
    assert '<option value="fake-large">' in page and '<option value="fake-small">' in page
    assert "Leave empty for the server's default (fake-small)" in page
    assert "Replies come from OpenAI-compatible server at http://127.0.0.1:" in page


def test_with_no_model_server_the_demo_responder_is_labelled(client, make_user, login, csrf_token):
    login(make_user())
    page = client.get("/agents/new").get_data(as_text=True)
    assert "Demo responder (offline)" in page and ">demo</mark>" in page
    stream = events(client.post("/agents/new/try", data=try_form(csrf_token(), name="Captain"),
                                headers=STREAM))
    assert stream[0] == ("start", {"provider": "Demo responder (offline)", "demo": True})
    text = "".join(data["text"] for name, data in stream if name == "delta")
    assert text.startswith("(Demo reply, no model connected.) As Captain (a grumpy old sea captain")


def test_try_is_rate_limited_per_person(make_app, fake, make_user, login, csrf_token):
    client = make_app(DISCUX_LLM_BASE_URL=fake.base_url, DISCUX_LLM_MODEL="fake-small",
                      RATELIMIT_ENABLED=True).test_client()
    login(make_user(), test_client=client)
    token = csrf_token(test_client=client)
    statuses = []
    for _ in range(11):
        response = client.post("/agents/new/try", data=try_form(token), headers=STREAM)
        response.get_data()  # let the stream run to its end
        statuses.append(response.status_code)
    assert statuses == [200] * 10 + [429]
    refusal = client.post("/agents/new/try", data=try_form(token), headers=STREAM)
    assert "Too many requests: the limit is 10 per 1 minute" in refusal.get_json()["error"]["message"]
    assert len(fake.requests) == 10


def test_try_counts_its_tokens_and_stops_at_the_plans_allowance(app, signed_in, fake):
    client, user, token = signed_in()
    fake.queue(FakeReply(text="Aye.", prompt_tokens=50, completion_tokens=6))
    stream = events(client.post("/agents/new/try", data=try_form(token), headers=STREAM))
    assert stream[-1][0] == "done"
    assert stream[-1][1]["usage"] == {"prompt_tokens": 50, "completion_tokens": 6,
                                      "estimated": False, "cost_usd": None}
    with app.app_context():
        spent = db.session.get(User, user.id)
        spent.max_tokens_per_month = 56  # exactly what that Try it used
        db.session.commit()
    refused = client.post("/agents/new/try", data=try_form(token), headers=STREAM)
    assert refused.status_code == 403
    assert "free plan allows 56 tokens a month, and 0 are left" in refused.get_json()[
        "error"]["message"]
    page = client.post("/agents/new/try", data=try_form(token))  # without JavaScript
    assert page.status_code == 403
    assert "and 0 are left" in html.unescape(page.get_data(as_text=True))
    assert len(fake.requests) == 1
