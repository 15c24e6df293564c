"""Plans and limits: one place answers "may this user create another X", with a clear reason."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from discux import plans
from discux.errors import LimitReached
from discux.extensions import db
from discux.ids import utcnow
from discux.models import Agent, Room, User
from tests.support import chat_factories, factories


def add_agents(user, count):
    made = db.session.scalar(sa.select(sa.func.count()).select_from(Agent))
    for n in range(made, made + count):
        db.session.add(Agent(name=f"A{n}", prompt="A helpful agent.", created_by=user.id))
    db.session.commit()


def test_new_user_gets_the_free_plan_limits(ctx):
    user = factories.create_user()
    assert (user.subscription, user.max_agents, user.max_rooms, user.max_messages_per_month) == (
        "free", 3, 1, 100)


def test_fourth_agent_on_free_plan_is_refused_with_plan_and_limit(ctx):
    user = factories.create_user()
    add_agents(user, 2)
    plans.check_can_create_agent(user)
    add_agents(user, 1)
    with pytest.raises(LimitReached, match="free plan allows 3 agents"):
        plans.check_can_create_agent(user)


def test_archived_rooms_do_not_count_toward_the_room_limit(ctx):
    user = factories.create_user()
    room = Room(name="One", created_by=user.id)
    db.session.add(room)
    db.session.commit()
    with pytest.raises(LimitReached, match="1 active rooms"):
        plans.check_can_create_room(user)
    room.is_active = False
    db.session.commit()
    plans.check_can_create_room(user)


def test_monthly_messages_count_only_this_calendar_month(ctx):
    user = factories.create_user()
    user.max_messages_per_month = 2
    room = chat_factories.create_room(user)
    last_year = plans.month_start().replace(year=utcnow().year - 1)
    chat_factories.create_message(room, user, "old", days_ago=(utcnow() - last_year).days)
    chat_factories.create_message(room, user, "now")
    chat_factories.create_message(room, "agent-x", "agent", type="agent")
    plans.check_can_post_message(user)
    chat_factories.create_message(room, user, "again")
    with pytest.raises(LimitReached, match="2 messages a month"):
        plans.check_can_post_message(user)


def test_pro_plan_is_unlimited(ctx):
    user = factories.create_user(plan="pro")
    add_agents(user, 5)
    plans.check_can_create_agent(user)
    assert user.max_agents >= plans.UNLIMITED


def test_cli_set_plan_and_list(app, runner, make_user):
    make_user(email="dee@example.com", name="Dee")
    result = runner.invoke(args=["users", "set-plan", "dee@example.com", "team"])
    assert result.exit_code == 0, result.output
    assert "dee@example.com is now on the team plan." in result.output
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.email == "dee@example.com"))
        assert user.subscription == "team" and user.max_rooms >= plans.UNLIMITED
    listing = runner.invoke(args=["users", "list"])
    assert "dee@example.com\tDee\tteam" in listing.output


def test_cli_set_plan_explains_mistakes(runner, make_user):
    make_user(email="eve@example.com")
    unknown_user = runner.invoke(args=["users", "set-plan", "nobody@example.com", "pro"])
    assert unknown_user.exit_code != 0 and "No user with email nobody@example.com" in unknown_user.output
    bad_plan = runner.invoke(args=["users", "set-plan", "eve@example.com", "gold"])
    assert bad_plan.exit_code != 0 and "gold" in bad_plan.output


def test_settings_page_shows_usage_against_plan(client, make_user, login):
    login(make_user())
    page = client.get("/settings").get_data(as_text=True)
    assert "You are on the <strong>free</strong> plan." in page
    assert "<td>Agents</td><td>0</td><td>3</td>" in page


def test_limited_plan_is_stopped_at_its_limit_even_far_past_it(ctx):
    """Moved from pro to free mid-month with more than 100 messages: still refused, and the
    usage shown is the real number."""
    user = factories.create_user(plan="pro")
    chat_factories.count_sent(user.id, messages=130)
    db.session.commit()
    plans.check_can_post_message(user)  # pro: unlimited
    plans.set_plan(user, "free")
    db.session.commit()
    with pytest.raises(LimitReached, match="100 messages a month"):
        plans.check_can_post_message(user)
    assert plans.messages_used_this_month(user) == 130
