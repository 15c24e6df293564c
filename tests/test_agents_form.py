"""Creating and editing agents through the form: every rule, with the message a person sees."""

from __future__ import annotations

import html

import pytest
import sqlalchemy as sa

from discux.extensions import db
from discux.models import Agent
from tests.support.agent_factories import VALID_FORM, agent_count_of, create_agent


def post_new(client, csrf_token, **changes):
    return client.post("/agents/new", data={**VALID_FORM, "csrf_token": csrf_token(), **changes})


def page_text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def test_creating_an_agent_shows_it_on_my_agents(client, make_user, login, csrf_token):
    login(make_user())
    response = post_new(client, csrf_token, name="Ada", emoji="👩‍💻", color="#10b981",
                        is_public="y", model="fake-large")
    assert response.status_code == 303
    agent_page = client.get(response.headers["Location"])
    assert "Ada is ready" in page_text(agent_page)
    listing = page_text(client.get("/agents"))
    assert "Ada" in listing and "👩‍💻" in listing
    assert "1 of 3" in listing and "agents used on the free plan" in listing
    assert "public" in listing


def test_new_agent_is_stored_as_typed(app, client, make_user, login, csrf_token):
    user = make_user()
    login(user)
    post_new(client, csrf_token, name="  Ada  ", color="#10b981", is_public="y", model="fake-large")
    with app.app_context():
        agent = db.session.scalars(sa.select(Agent).filter_by(created_by=user.id)).one()
        assert (agent.name, agent.color, agent.is_public, agent.model, agent.style) == (
            "Ada", "#10B981", True, "fake-large", "analytical")


def test_my_agents_explains_agents_when_there_are_none(client, make_user, login):
    login(make_user())
    text = page_text(client.get("/agents"))
    assert "No agents yet" in text
    assert "An agent is an AI participant" in text
    assert "0 of 3" in text


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"name": ""}, "name", "Give the agent a name."),
        ({"name": "   "}, "name", "Give the agent a name."),
        ({"name": "x" * 101}, "name", "Keep the name to 100 characters or fewer."),
        ({"name": "ada@work"}, "name", 'Names cannot contain "@": it is how agents are mentioned.'),
        ({"prompt": ""}, "prompt", "Describe the agent in at least 10 characters."),
        ({"prompt": "too short"}, "prompt", "Describe the agent in at least 10 characters."),
        ({"prompt": "p" * 4001}, "prompt", "Keep the prompt to 4000 characters or fewer."),
        ({"emoji": ""}, "emoji", "Pick an emoji for the agent."),
        ({"emoji": "ab"}, "emoji", "Use exactly one emoji (this has 2 characters)."),
        ({"emoji": "🤖🚀"}, "emoji", "Use exactly one emoji (this has 2 characters)."),
        ({"emoji": "🇮🇩🇮🇩"}, "emoji", "Use exactly one emoji (this has 2 characters)."),
        ({"color": "blue"}, "color", "Use a colour written as # and six hex digits, like #3B82F6."),
        ({"color": "#12345"}, "color", "Use a colour written as # and six hex digits, like #3B82F6."),
        ({"color": "#GGGGGG"}, "color", "Use a colour written as # and six hex digits, like #3B82F6."),
        ({"color": ""}, "color", "Use a colour written as # and six hex digits, like #3B82F6."),
        ({"style": "sarcastic"}, "style",
         "Choose one of the styles: professional, direct, friendly, creative, analytical."),
        ({"model": "m" * 201}, "model", "Keep the model name to 200 characters or fewer."),
    ],
)
def test_invalid_agent_is_refused_with_the_reason_beside_the_field(
    client, make_user, login, csrf_token, changes, field, message
):
    user = make_user()
    login(user)
    response = post_new(client, csrf_token, **changes)
    assert response.status_code == 422
    text = page_text(response)
    assert f'<small class="field-error" id="{field}-error">{message}</small>' in text
    assert f'id="{field}"' in text and 'aria-invalid="true"' in text


def test_refused_agent_keeps_what_i_typed_and_writes_nothing(
    app, client, make_user, login, csrf_token
):
    user = make_user()
    login(user)
    response = post_new(client, csrf_token, name="Bad@Name",
                        prompt="A persona I spent a while writing <b>carefully</b>.")
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert 'value="Bad@Name"' in body
    assert "A persona I spent a while writing &lt;b&gt;carefully&lt;/b&gt;." in body
    with app.app_context():
        assert agent_count_of(user) == 0


def test_several_problems_are_all_shown_at_once(client, make_user, login, csrf_token):
    login(make_user())
    text = page_text(post_new(client, csrf_token, name="", prompt="short", emoji="ab"))
    assert "Give the agent a name." in text
    assert "Describe the agent in at least 10 characters." in text
    assert "Use exactly one emoji" in text


@pytest.mark.parametrize("emoji", ["👩‍💻", "🇮🇩", "1️⃣", "👨‍👩‍👧‍👦", "🤖", "🏳️‍🌈"])
def test_one_emoji_of_several_code_points_is_accepted(
    app, client, make_user, login, csrf_token, emoji
):
    user = make_user()
    login(user)
    response = post_new(client, csrf_token, emoji=emoji)
    assert response.status_code == 303
    with app.app_context():
        assert db.session.scalars(sa.select(Agent).filter_by(created_by=user.id)).one().emoji == emoji


def test_names_are_unique_per_creator_ignoring_case(app, client, make_user, login, csrf_token):
    me, other = make_user(), make_user()
    with app.app_context():
        create_agent(me, "Ada")
        create_agent(other, "Grace")
    login(me)
    response = post_new(client, csrf_token, name="ADA")
    assert response.status_code == 422
    assert 'You already have an agent called "ADA". Pick another name.' in page_text(response)
    # Someone else's agent of that name is no obstacle.
    assert post_new(client, csrf_token, name="grace").status_code == 303


def test_fourth_agent_of_a_free_user_is_refused_naming_plan_and_limit(
    app, client, make_user, login, csrf_token
):
    user = make_user()
    with app.app_context():
        for name in ("One", "Two", "Three"):
            create_agent(user, name)
    login(user)
    assert "3 of 3" in page_text(client.get("/agents"))
    response = post_new(client, csrf_token, name="Four")
    assert response.status_code == 403
    text = page_text(response)
    assert "Your free plan allows 3 agents, and you have used them all." in text
    assert 'value="Four"' in response.get_data(as_text=True)
    with app.app_context():
        assert agent_count_of(user) == 3


def test_pro_user_is_not_held_to_three_agents(app, client, make_user, login, csrf_token):
    user = make_user(plan="pro")
    with app.app_context():
        for name in ("One", "Two", "Three"):
            create_agent(user, name)
    login(user)
    assert post_new(client, csrf_token, name="Four").status_code == 303
    assert "unlimited on the pro plan" in page_text(client.get("/agents"))


def test_editing_saves_changes(app, client, make_user, login, csrf_token):
    user = make_user()
    with app.app_context():
        agent_id = create_agent(user, "Ada").id
    login(user)
    page = page_text(client.get(f"/agents/{agent_id}"))
    assert "Save changes" in page and 'value="Ada"' in page
    response = client.post(f"/agents/{agent_id}", data={
        **VALID_FORM, "csrf_token": csrf_token(), "name": "Ada Lovelace", "style": "creative",
    })
    assert response.status_code == 303
    assert "Changes saved" in page_text(client.get(response.headers["Location"]))
    with app.app_context():
        agent = db.session.get(Agent, agent_id)
        assert (agent.name, agent.style) == ("Ada Lovelace", "creative")


def test_editing_can_keep_the_same_name_in_another_case(app, client, make_user, login, csrf_token):
    user = make_user()
    with app.app_context():
        agent_id = create_agent(user, "Ada").id
    login(user)
    response = client.post(f"/agents/{agent_id}", data={
        **VALID_FORM, "csrf_token": csrf_token(), "name": "ADA",
    })
    assert response.status_code == 303


def test_invalid_edit_changes_nothing(app, client, make_user, login, csrf_token):
    user = make_user()
    with app.app_context():
        create_agent(user, "Grace")
        agent_id = create_agent(user, "Ada").id
    login(user)
    response = client.post(f"/agents/{agent_id}", data={
        **VALID_FORM, "csrf_token": csrf_token(), "name": "grace", "prompt": "Changed persona text.",
    })
    assert response.status_code == 422
    assert 'You already have an agent called "grace"' in page_text(response)
    with app.app_context():
        agent = db.session.get(Agent, agent_id)
        assert agent.name == "Ada" and agent.prompt != "Changed persona text."


def test_form_without_csrf_token_is_refused(app, client, make_user, login):
    user = make_user()
    login(user)
    response = client.post("/agents/new", data=VALID_FORM)
    assert response.status_code == 400
    with app.app_context():
        assert agent_count_of(user) == 0


def test_form_offers_presets_and_labels_every_control(client, make_user, login):
    login(make_user())
    page = page_text(client.get("/agents/new"))
    for emoji in ("🤖", "🚀", "💡", "📊", "🎯", "💰", "🔧", "🎨", "📈", "🔬"):
        assert f'data-emoji="{emoji}"' in page
    for color in ("#3B82F6", "#EF4444", "#10B981", "#F59E0B", "#8B5CF6", "#EC4899"):
        assert f'data-color="{color}"' in page
    for control in ("name", "prompt", "emoji", "color", "color-picker", "style", "model",
                    "is_public", "try_message"):
        assert f'<label for="{control}"' in page
    assert ">Create agent</button>" in page and ">Try it</button>" in page
    assert "agents.js" in page


def test_signed_out_visitor_is_sent_to_sign_in(client):
    response = client.get("/agents")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


HOSTILE_NAME = '<img src=x onerror="alert(1)">Eve'
HOSTILE_PROMPT = "<script>alert('prompt')</script> and a persona long enough."


def test_hostile_name_and_prompt_show_as_plain_text_everywhere(
    app, client, make_user, login
):
    user = make_user()
    with app.app_context():
        agent_id = create_agent(user, HOSTILE_NAME, prompt=HOSTILE_PROMPT, public=True).id
    login(user)
    for path in ("/agents", f"/agents/{agent_id}", "/agents/gallery", f"/agents/{agent_id}/use",
                 f"/agents/{agent_id}/delete"):
        body = client.get(path).get_data(as_text=True)
        assert "<img src=x" not in body and "<script>alert" not in body, path
        assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;Eve" in body, path
