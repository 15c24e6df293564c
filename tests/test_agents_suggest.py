"""'Suggest agents': the model proposes three agents from a goal; the person keeps some."""

from __future__ import annotations

import html
import json

import pytest
from playwright.sync_api import expect

from discux.agents.service import agent_problems
from discux.agents.suggestions import demo_suggestions, parse_suggestions
from discux.extensions import db
from discux.models import Agent
from tests.support.agent_factories import agent_count_of, create_agent
from tests.support.fake_llm import FakeReply

GOAL = "Help us plan a product launch for our note-taking app"
HTMX = {"HX-Request": "true"}
PROPOSALS = {"agents": [
    {"name": "Launch Captain", "emoji": "🚀", "color": "#ef4444", "style": "direct",
     "prompt": "You are a launch captain who keeps the plan on its dates."},
    {"name": "Skeptic", "emoji": "not an emoji", "color": "red", "style": "grumpy",
     "prompt": "You are a skeptic who asks what could go wrong first."},
    {"name": "@Customer", "emoji": "🧑‍💻", "color": "#10B981", "style": "friendly",
     "persona": "You speak for the people who will use the app every day."},
]}


def page_text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


@pytest.fixture
def signed_in(llm_app, make_user, login, csrf_token):
    """`signed_in()` → (client, user, csrf token) on the app whose model is the fake."""

    def _signed_in(**user_fields):
        client = llm_app.test_client()
        user = make_user(**user_fields)
        login(user, test_client=client)
        return client, user, csrf_token(test_client=client)

    return _signed_in


def card_form(token: str, index: int, **fields) -> dict:
    values = {"name": "Launch Captain", "prompt": "You keep the launch plan on its dates.",
              "emoji": "🚀", "color": "#EF4444", "style": "direct", **fields}
    return {"csrf_token": token, "card": str(index), "goal": GOAL,
            **{f"s{index}-{name}": value for name, value in values.items()}}


def test_the_model_proposes_three_editable_agents_for_the_goal(signed_in, fake):
    client, _user, token = signed_in()
    fake.queue(FakeReply(text="Here you go:\n```json\n" + json.dumps(PROPOSALS) + "\n```"))
    response = client.post("/agents/suggest", data={"csrf_token": token, "goal": GOAL})
    assert response.status_code == 200
    body = page_text(response)
    assert GOAL in fake.requests[-1]["messages"][-1]["content"]
    assert body.count('class="agent-card suggestion-card"') == 3
    for name in ("Launch Captain", "Skeptic", "Customer"):
        assert f"Create {name}</button>" in body
    # What breaks the agent rules is mended: no "@" in a name, presets for a bad look.
    skeptic = body.split('id="suggestion-1"')[1].split('id="suggestion-2"')[0]
    assert 'name="s1-emoji" type="text" value="🤖"' in skeptic
    assert 'spellcheck="false" type="text" value="#EF4444"' in skeptic
    assert '<option selected value="professional">' in skeptic
    assert 'name="s2-name" type="text" value="Customer"' in body
    assert "You speak for the people" in body
    assert GOAL in body  # the goal stays in its box


def test_an_unreadable_answer_is_asked_again_once_then_explained(signed_in, fake):
    client, user, token = signed_in()
    fake.queue(FakeReply(text="I think you need a planner and a critic."),
               FakeReply(text='{"agents": [{"name": "Only one", "prompt": "Too few agents here."}]}'))
    response = client.post("/agents/suggest", data={"csrf_token": token, "goal": GOAL})
    body = page_text(response)
    assert response.status_code == 200
    assert len(fake.requests) == 2
    assert ("No suggestions: the model did not propose three usable agents; try again, or "
            "describe the goal differently.") in body
    assert GOAL in body
    assert "suggestion-card" not in body


def test_a_second_answer_that_reads_well_is_used(signed_in, fake):
    client, _user, token = signed_in()
    fake.queue(FakeReply(text="not json"), FakeReply(text=json.dumps(PROPOSALS)))
    body = page_text(client.post("/agents/suggest", data={"csrf_token": token, "goal": GOAL}))
    assert body.count('class="agent-card suggestion-card"') == 3


def test_a_model_failure_is_said_in_plain_words_and_keeps_the_goal(signed_in, fake):
    client, _user, token = signed_in()
    fake.queue(FakeReply(mode="http_500"), FakeReply(mode="http_500"), FakeReply(mode="http_500"))
    response = client.post("/agents/suggest", data={"csrf_token": token, "goal": GOAL})
    body = page_text(response)
    assert response.status_code == 200
    assert '<p class="agents-notice agents-notice-error" role="alert">No suggestions: the model server answered 500' in body
    assert GOAL in body


@pytest.mark.parametrize("goal, message", [
    ("launch", "Describe what you need in at least 10 characters."),
    ("x" * 501, "Keep the goal to 500 characters or fewer (this has 501)."),
])
def test_a_goal_too_short_or_long_is_refused_with_the_text_kept(signed_in, fake, goal, message):
    client, _user, token = signed_in()
    response = client.post("/agents/suggest", data={"csrf_token": token, "goal": goal})
    assert response.status_code == 422
    body = page_text(response)
    assert message in body
    assert goal in body
    assert fake.requests == []


def test_the_offline_demo_suggests_sensible_fixed_agents(app, make_user, login, client, csrf_token):
    login(make_user())
    body = page_text(client.post("/agents/suggest", data={"csrf_token": csrf_token(), "goal": GOAL}))
    for name in ("Planner", "Skeptic", "Champion"):
        assert f"Create {name}</button>" in body
    assert body.count(GOAL) >= 4  # the box and each persona


def test_every_demo_suggestion_and_parsed_proposal_passes_the_agent_rules(ctx, make_user):
    user = make_user()
    proposals = parse_suggestions(json.dumps(PROPOSALS))
    assert [agent.name for agent in proposals] == ["Launch Captain", "Skeptic", "Customer"]
    for fields in [*demo_suggestions(GOAL), *proposals]:
        assert agent_problems(user.id, fields.cleaned()) == {}


def test_duplicate_names_count_once(ctx):
    twice = {"agents": [PROPOSALS["agents"][0], {**PROPOSALS["agents"][0], "name": "launch captain"},
                        PROPOSALS["agents"][1]]}
    assert [agent.name for agent in parse_suggestions(json.dumps(twice))] == ["Launch Captain", "Skeptic"]


def test_creating_a_card_makes_the_agent_as_edited(app, signed_in):
    client, user, token = signed_in()
    response = client.post("/agents/suggest/create",
                           data=card_form(token, 1, name="Launch Lead", style="analytical"))
    assert response.status_code == 303
    with app.app_context():
        agent = db.session.scalar(db.select(Agent).where(Agent.created_by == user.id))
        assert (agent.name, agent.style, agent.emoji, agent.color) == (
            "Launch Lead", "analytical", "🚀", "#EF4444")
        assert response.headers["Location"].endswith(f"/agents/{agent.id}")


def test_creating_a_card_in_place_shows_it_created(app, signed_in):
    client, user, token = signed_in()
    response = client.post("/agents/suggest/create", data=card_form(token, 2), headers=HTMX)
    body = page_text(response)
    assert response.status_code == 200
    assert '<div id="suggestion-2" class="suggestion-created" role="status">' in body
    assert "Created." in body and "Add to a room" in body
    with app.app_context():
        assert agent_count_of(user) == 1


def test_a_card_breaking_a_rule_comes_back_with_the_reason_and_the_text(app, signed_in):
    client, user, token = signed_in()
    with app.app_context():
        create_agent(user, "Launch Captain")
    response = client.post("/agents/suggest/create",
                           data=card_form(token, 0, prompt="Short"), headers=HTMX)
    body = page_text(response)
    assert response.status_code == 422
    assert 'You already have an agent called "Launch Captain". Pick another name.' in body
    assert "Describe the agent in at least 10 characters." in body
    assert 'id="suggestion-0"' in body and "Short</textarea>" in body
    without_js = client.post("/agents/suggest/create", data=card_form(token, 0, prompt="Short"))
    assert without_js.status_code == 422
    assert GOAL in page_text(without_js)
    with app.app_context():
        assert agent_count_of(user) == 1


def test_the_plan_limit_applies_to_suggested_agents(app, signed_in):
    client, user, token = signed_in(plan="free")
    with app.app_context():
        for _ in range(3):
            create_agent(user)
    in_place = client.post("/agents/suggest/create", data=card_form(token, 0), headers=HTMX)
    assert in_place.status_code == 422
    assert "3 agents" in page_text(in_place)
    assert client.post("/agents/suggest/create", data=card_form(token, 0)).status_code == 403
    with app.app_context():
        assert agent_count_of(user) == 3


def test_creating_needs_the_csrf_token_and_a_card_on_the_page(app, signed_in):
    client, user, token = signed_in()
    form = card_form(token, 0)
    del form["csrf_token"]
    assert client.post("/agents/suggest/create", data=form).status_code == 400
    assert client.post("/agents/suggest/create", data=card_form(token, 7)).status_code == 400
    with app.app_context():
        assert agent_count_of(user) == 0


def test_signed_out_visitors_are_sent_to_sign_in(client):
    assert client.get("/agents/suggest").status_code == 302


def test_suggestions_are_rate_limited_per_person(make_app, fake, make_user, login, csrf_token):
    client = make_app(DISCUX_LLM_BASE_URL=fake.base_url, DISCUX_LLM_MODEL="fake-small",
                      RATELIMIT_ENABLED=True).test_client()
    login(make_user(), test_client=client)
    token = csrf_token(test_client=client)
    statuses = [client.post("/agents/suggest", data={"csrf_token": token, "goal": "short"}).status_code
                for _ in range(7)]
    assert statuses == [422] * 6 + [429]
    assert client.get("/agents/suggest").status_code == 200


@pytest.mark.browser
@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 800}, {"width": 390, "height": 844}])
def test_suggest_edit_and_keep_two_in_a_browser(app, fake, make_user, live_server, signed_in_page,
                                                viewport):
    app.config.update(DISCUX_LLM_BASE_URL=fake.base_url, DISCUX_LLM_MODEL="fake-small")
    fake.reset()
    fake.queue(FakeReply(text=json.dumps(PROPOSALS)))
    page = signed_in_page(make_user(plan="pro"), viewport=viewport)
    page.goto(f"{live_server.url}/agents")
    page.get_by_role("button", name="Suggest agents").click()
    page.get_by_label("What do you need help with?").fill(GOAL)
    page.get_by_role("button", name="Suggest agents").click()
    cards = page.locator(".suggestion-card")
    expect(cards).to_have_count(3)
    first = page.locator("#suggestion-0")
    first.get_by_label("Name").fill("Launch Lead")
    first.get_by_role("button", name="Create").click()
    expect(page.locator("#suggestion-0")).to_contain_text("Created.")
    page.locator("#suggestion-2").get_by_role("button", name="Create").click()
    expect(page.locator("#suggestion-2")).to_contain_text("Created.")
    expect(page.locator("#suggestion-1 form")).to_be_visible()  # the one not kept stays a proposal
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    page.goto(f"{live_server.url}/agents")
    expect(page.locator(".agent-card")).to_have_count(2)
    expect(page.locator(".agent-card", has_text="Launch Lead")).to_contain_text("Direct")
