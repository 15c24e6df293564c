"""Limits that hold: the monthly quota counts what was sent (deleting gives nothing back, posts at
the same moment count one each), and a room never holds two agents one @mention cannot tell
apart."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from discux.extensions import db
from discux.models import Agent, Message, Room, RoomAgent, User
from tests.support import factories
from tests.support import room_factories as rf
from tests.support.api_helpers import Api, error_of, issue_token
from tests.support.ws_client import Member

USAGE_ROW = re.compile(r"<td>Messages this month</td><td>(\d+)</td>")


def quota_user(app, make_user, limit: int | None):
    """A user with a room of their own; `limit` messages a month (None: the pro plan)."""
    user = make_user(name="Quinn", plan="free" if limit else "pro")
    with app.app_context():
        room_id = rf.create_room(user, "Quota room").id
        if limit:
            db.session.execute(sa.update(User).where(User.id == user.id)
                               .values(max_messages_per_month=limit))
            db.session.commit()
        token = factories.create_session_token(user.id)
    return user, room_id, token


def stored(app, room_id: str) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(
            sa.select(Message.content).where(Message.room_id == room_id).order_by(Message.id)))


def shown_usage(person: Member) -> int:
    page = person.http.get(person.base_url + "/settings", timeout=10).text
    return int(USAGE_ROW.search(page).group(1))


def test_deleting_my_messages_gives_no_quota_back(app, live_server, make_user):
    _, room_id, token = quota_user(app, make_user, limit=3)
    me = Member(live_server.url, token)
    for n in range(3):
        assert me.post(room_id, f"note {n}").status_code == 200
    with app.app_context():
        first = db.session.scalar(sa.select(Message.id).where(Message.room_id == room_id)
                                  .order_by(Message.id))
    deleted = me.http.delete(f"{live_server.url}/rooms/{room_id}/messages/{first}",
                             headers={"X-CSRFToken": me.csrf, "HX-Request": "true"}, timeout=10)
    assert deleted.status_code == 200
    assert stored(app, room_id) == ["note 1", "note 2"]
    refused = me.post(room_id, "one more")
    assert refused.status_code == 422
    assert "Your free plan allows 3 messages a month" in refused.text
    assert stored(app, room_id) == ["note 1", "note 2"]
    assert shown_usage(me) == 3  # sent this month, the deleted one included


def post_together(person: Member, room_id: str, count: int):
    start = threading.Barrier(count)

    def post(n):
        start.wait(timeout=10)
        return person.post(room_id, f"at once {n}")

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(post, range(count)))


def test_posts_at_the_same_moment_count_one_each_and_stay_counted(app, live_server, make_user):
    _, room_id, token = quota_user(app, make_user, limit=None)
    me = Member(live_server.url, token)
    responses = post_together(me, room_id, 8)
    assert [r.status_code for r in responses] == [200] * 8
    assert len(stored(app, room_id)) == 8
    with app.app_context():
        some = db.session.scalars(sa.select(Message.id).where(Message.room_id == room_id)
                                  .limit(3)).all()
    for message in some:
        assert me.http.delete(f"{live_server.url}/rooms/{room_id}/messages/{message}",
                              headers={"X-CSRFToken": me.csrf, "HX-Request": "true"},
                              timeout=10).status_code == 200
    assert len(stored(app, room_id)) == 5
    assert shown_usage(me) == 8


def test_posts_at_the_same_moment_stop_exactly_at_the_limit(app, live_server, make_user):
    _, room_id, token = quota_user(app, make_user, limit=5)
    me = Member(live_server.url, token)
    responses = post_together(me, room_id, 8)
    assert sorted(r.status_code for r in responses) == [200] * 5 + [422] * 3
    assert all("5 messages a month" in r.text for r in responses if r.status_code == 422)
    assert len(stored(app, room_id)) == 5
    assert shown_usage(me) == 5


# ---- one name per room ----

@pytest.fixture
def namesakes(app, make_user):
    """Olive's room holds her "Nova"; Pia has shared an agent called "NOVA" in the gallery."""
    olive, pia = make_user(name="Olive", plan="pro"), make_user(name="Pia", plan="pro")
    with app.app_context():
        room = rf.create_room(olive, "Naming room")
        nova = rf.create_agent(olive, "Nova")
        rf.put_agent_in_room(room, nova, olive)
        shared = rf.create_agent(pia, "NOVA", public=True)
        return room.id, olive, shared.id


def room_agent_ids(app, room_id: str) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(
            sa.select(RoomAgent.agent_id).where(RoomAgent.room_id == room_id)))


CLASH = 'This room already has an agent called "Nova"'


def test_the_room_panel_refuses_a_second_agent_of_the_same_name(app, client, csrf_token, login,
                                                                namesakes):
    room_id, olive, shared_id = namesakes
    login(olive)
    response = client.post(f"/rooms/{room_id}/agents",
                           data={"agent_id": shared_id, "csrf_token": csrf_token()})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert CLASH.replace('"', "&#34;") in page or CLASH.replace('"', "&quot;") in page
    assert len(room_agent_ids(app, room_id)) == 1
    # A name that only starts the same is another name: it joins.
    with app.app_context():
        novak = rf.create_agent(olive, "Novak").id
    response = client.post(f"/rooms/{room_id}/agents",
                           data={"agent_id": novak, "csrf_token": csrf_token()})
    assert response.status_code == 303
    assert len(room_agent_ids(app, room_id)) == 2


def test_the_agent_page_refuses_it_too_and_says_why_beforehand(app, client, csrf_token, login,
                                                               namesakes):
    room_id, olive, shared_id = namesakes
    login(olive)
    page = client.get(f"/agents/{shared_id}/use").get_data(as_text=True)
    assert "Naming room (has an agent called &#34;Nova&#34;)" in page \
        or "Naming room (has an agent called &quot;Nova&quot;)" in page
    response = client.post(f"/agents/{shared_id}/add-to-room",
                           data={"room_id": room_id, "csrf_token": csrf_token()})
    assert response.status_code == 422
    assert len(room_agent_ids(app, room_id)) == 1


def test_the_api_refuses_it_naming_the_clash(app, client, namesakes):
    room_id, olive, shared_id = namesakes
    api = Api(client, issue_token(app, olive))
    response = api.post(f"/rooms/{room_id}/agents", json={"agent_id": shared_id})
    assert response.status_code == 422
    error = error_of(response)
    assert error["field"] == "agent_id" and CLASH in error["message"]
    assert len(room_agent_ids(app, room_id)) == 1


def test_renaming_an_agent_into_a_clash_in_one_of_its_rooms_is_refused(app, client, csrf_token,
                                                                        login, namesakes,
                                                                        make_user):
    room_id, olive, _ = namesakes
    rex = make_user(name="Rex", plan="pro")
    with app.app_context():
        orion = rf.create_agent(rex, "Orion", public=True)
        rf.put_agent_in_room(db.session.get(Room, room_id), orion, olive)
        orion_id = orion.id
    login(rex)
    response = client.post(f"/agents/{orion_id}", data={
        "name": "nova", "prompt": "You help the team think clearly.", "emoji": "🤖",
        "color": "#3B82F6", "style": "professional", "csrf_token": csrf_token()})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "&#34;Naming room&#34; already has an agent called &#34;Nova&#34;" in page
    assert 'value="nova"' in page
    with app.app_context():
        assert db.session.get(Agent, orion_id).name == "Orion"
