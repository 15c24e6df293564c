"""The numbers on an agent's page, computed from messages the tests write."""

from __future__ import annotations

import html
import re
from datetime import timedelta

from discux.ids import utcnow
from tests.support.agent_factories import agent_reply, create_agent
from tests.support.room_factories import add_member, create_room, put_agent_in_room


def page_text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def stat(text: str, label: str) -> str:
    match = re.search(rf"<dt>{label}</dt><dd>([^<]*)</dd>", text)
    assert match, f"no {label!r} on the page"
    return match.group(1).strip()


def bars(text: str) -> list[tuple[str, str]]:
    """(day, replies) of every bar in the inline chart."""
    return re.findall(r'<rect class="bar"[^>]*><title>(\d{4}-\d\d-\d\d): (\d+) repl', text)


def test_unused_agent_shows_an_empty_state(app, client, make_user, login):
    me = make_user()
    with app.app_context():
        agent_id = create_agent(me, "Ada").id
    login(me)
    text = page_text(client.get(f"/agents/{agent_id}"))
    assert "Ada has not replied anywhere yet" in text
    assert "<svg" not in text


def test_stats_count_complete_replies_and_average_their_time_and_confidence(
    app, client, make_user, login
):
    me = make_user()
    now = utcnow()
    with app.app_context():
        room = create_room(me, "Planning")
        agent = create_agent(me, "Ada")
        other = create_agent(me, "Grace")
        put_agent_in_room(room, agent, me)
        agent_reply(room, agent, processing_time=1.0, confidence=0.80, at=now)
        agent_reply(room, agent, processing_time=2.0, confidence=0.90, at=now - timedelta(days=1))
        agent_reply(room, agent, processing_time=3.5, confidence=None, at=now - timedelta(days=1))
        # Not counted: a failed reply, one still streaming, another agent's reply.
        agent_reply(room, agent, processing_time=60, confidence=0.1, status="failed")
        agent_reply(room, agent, processing_time=60, confidence=0.1, status="streaming")
        agent_reply(room, other, processing_time=60, confidence=0.1)
        agent_id = agent.id
    login(me)
    text = page_text(client.get(f"/agents/{agent_id}"))
    assert stat(text, "Replies") == "3"
    assert stat(text, "Average reply time") == "2.2 s"  # (1.0 + 2.0 + 3.5) / 3
    assert stat(text, "Average confidence") == "85%"  # NULL confidence is not a zero
    assert stat(text, "Rooms") == "1"
    assert "In your rooms:" in text and "Planning" in text


def test_confidence_shows_a_dash_when_no_reply_had_one(app, client, make_user, login):
    me = make_user()
    with app.app_context():
        room = create_room(me)
        agent = create_agent(me, "Ada")
        agent_reply(room, agent, processing_time=None, confidence=None)
        agent_id = agent.id
    login(me)
    text = page_text(client.get(f"/agents/{agent_id}"))
    assert stat(text, "Replies") == "1"
    assert stat(text, "Average confidence") == "—"
    assert stat(text, "Average reply time") == "—"


def test_chart_has_one_bar_per_day_with_replies_in_the_last_30_days(
    app, client, make_user, login
):
    me = make_user()
    now = utcnow().replace(hour=12)
    with app.app_context():
        room = create_room(me)
        agent = create_agent(me, "Ada")
        for days_ago, count in ((0, 3), (2, 1), (29, 2)):
            for _ in range(count):
                agent_reply(room, agent, at=now - timedelta(days=days_ago))
        agent_reply(room, agent, at=now - timedelta(days=31))  # too old for the chart
        agent_id = agent.id
    login(me)
    text = page_text(client.get(f"/agents/{agent_id}"))
    assert stat(text, "Replies") == "7"
    day = lambda n: (now - timedelta(days=n)).date().isoformat()  # noqa: E731
    assert sorted(bars(text)) == sorted([(day(0), "3"), (day(2), "1"), (day(29), "2")])
    svg = re.search(r"<svg.*?</svg>", text, re.S).group(0)
    assert 'role="img"' in svg and 'aria-labelledby="chart-title chart-desc"' in svg
    assert f"6 replies in the last 30 days; the busiest day was {day(0)} with 3." in svg
    # The busiest day fills the height; the others are in proportion.
    heights = {
        day_: float(height) for height, day_ in
        re.findall(r'height="([\d.]+)" fill="#[0-9A-F]{6}"><title>([\d-]+):', svg)
    }
    assert heights[day(0)] == 120.0
    assert heights[day(2)] == 40.0


def test_rooms_i_am_not_in_are_counted_but_not_named(app, client, make_user, login):
    me, stranger = make_user(plan="pro"), make_user(plan="pro")
    with app.app_context():
        agent = create_agent(me, "Ada", public=True)
        mine = create_room(me, "Our room")
        theirs = create_room(stranger, "Their secret room")
        shared = create_room(stranger, "Shared room")
        add_member(shared, me)
        for room in (mine, theirs, shared):
            put_agent_in_room(room, agent, me)
        agent_id = agent.id
    login(me)
    text = page_text(client.get(f"/agents/{agent_id}"))
    assert stat(text, "Rooms") == "3"
    assert "Our room" in text and "Shared room" in text and "and 1 other" in text
    assert "Their secret room" not in text


def test_uses_are_shown_on_cards_and_the_agent_page(app, client, make_user, login):
    me = make_user()
    with app.app_context():
        agent_id = create_agent(me, "Ada", usage_count=12).id
    login(me)
    assert "used 12 times" in page_text(client.get("/agents"))
    assert "used 12 times" in page_text(client.get(f"/agents/{agent_id}"))
