"""Two requests at the same moment: one wins cleanly, the other gets a clear answer, never a 500.

Each race runs several rounds against a live threaded server, the racers released together by a
barrier, so a check-then-write without a lock would let both through in some round."""

from __future__ import annotations

import html
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import sqlalchemy as sa

from discux.extensions import db
from discux.models import Agent, RoomBrief
from tests.support import factories
from tests.support import room_factories as rf
from tests.support.ws_client import Member

ROUNDS = 5
BASE_VERSION = re.compile(r'name="base_version" value="(\d+)"')


def member(app, live_server, user) -> Member:
    with app.app_context():
        token = factories.create_session_token(user.id)
    return Member(live_server.url, token)


def together(calls):
    """Run the zero-argument `calls` at the same moment; their results in order."""
    start = threading.Barrier(len(calls))

    def run(call):
        start.wait(timeout=10)
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def textarea(page: str) -> str:
    match = re.search(r'<textarea id="brief-content"[^>]*>(.*?)</textarea>', page, re.S)
    return html.unescape(match.group(1)) if match else ""


# ---- the room brief ----

def brief_form(person: Member, room_id: str) -> str:
    page = person.http.get(f"{person.base_url}/rooms/{room_id}/brief", timeout=10)
    assert page.status_code == 200
    return BASE_VERSION.search(page.text).group(1)


def save_brief(person: Member, room_id: str, text: str, base: str):
    return person.http.post(
        f"{person.base_url}/rooms/{room_id}/brief",
        data={"content": text, "base_version": base, "csrf_token": person.csrf},
        allow_redirects=False, timeout=30)


def test_two_saves_of_the_brief_at_once_keep_one_and_tell_the_other(app, live_server, make_user):
    owner, colleague = make_user(name="Olive"), make_user(name="Cole")
    with app.app_context():
        room = rf.create_room(owner, "Brief race")
        rf.add_member(room, colleague)
        room_id = room.id
    olive, cole = member(app, live_server, owner), member(app, live_server, colleague)
    for n in range(1, ROUNDS + 1):
        bases = brief_form(olive, room_id), brief_form(cole, room_id)
        texts = f"Plan {n} by Olive", f"Plan {n} by Cole"
        responses = together([partial(save_brief, olive, room_id, texts[0], bases[0]),
                              partial(save_brief, cole, room_id, texts[1], bases[1])])
        assert sorted(r.status_code for r in responses) == [303, 409], [
            (r.status_code, r.text[:300]) for r in responses]
        winner = 0 if responses[0].status_code == 303 else 1
        loser = responses[1 - winner]
        # The refused person keeps their text, sees the version that won, and can save again.
        assert "while you were editing" in loser.text
        assert textarea(loser.text) == texts[1 - winner]
        assert f"<p>{texts[winner]}</p>" in loser.text
        assert BASE_VERSION.search(loser.text).group(1) == str(n)
        with app.app_context():
            versions = db.session.execute(
                sa.select(RoomBrief.version, RoomBrief.content)
                .where(RoomBrief.room_id == room_id).order_by(RoomBrief.version)).all()
        assert [tuple(v) for v in versions][-1] == (n, texts[winner])
        assert len(versions) == n  # no lost update, no duplicate version


def test_saving_over_a_newer_brief_is_refused_with_the_newer_one_shown(app, live_server,
                                                                        make_user):
    owner, colleague = make_user(name="Olive"), make_user(name="Cole")
    with app.app_context():
        room = rf.create_room(owner, "Stale form")
        rf.add_member(room, colleague)
        room_id = room.id
    olive, cole = member(app, live_server, owner), member(app, live_server, colleague)
    stale = brief_form(olive, room_id)
    assert save_brief(cole, room_id, "- Ship on Monday", brief_form(cole, room_id)
                      ).status_code == 303
    refused = save_brief(olive, room_id, "- Ship on Friday", stale)
    assert refused.status_code == 409
    assert textarea(refused.text) == "- Ship on Friday"
    assert "Ship on Monday" in refused.text and "version 1 of the brief" in refused.text
    # Saved again from the refusal page, the edit goes in as version 2.
    again = save_brief(olive, room_id, "- Ship on Friday", BASE_VERSION.search(refused.text)[1])
    assert again.status_code == 303
    with app.app_context():
        assert db.session.scalars(sa.select(RoomBrief.content).where(
            RoomBrief.room_id == room_id).order_by(RoomBrief.version)).all() == [
            "- Ship on Monday", "- Ship on Friday"]


# ---- agents of one owner ----

def new_agent(person: Member, name: str):
    return person.http.post(
        f"{person.base_url}/agents/new",
        data={"name": name, "prompt": "You weigh every option twice.", "emoji": "🤖",
              "color": "#3B82F6", "style": "professional", "csrf_token": person.csrf},
        allow_redirects=False, timeout=30)


def agent_names(app, user_id: str) -> list[str]:
    with app.app_context():
        return sorted(db.session.scalars(
            sa.select(Agent.name).where(Agent.created_by == user_id)))


def test_one_name_created_twice_at_once_gives_one_agent_and_a_form_error(app, live_server,
                                                                         make_user):
    user = make_user(name="Nadia", plan="pro")
    tabs = [member(app, live_server, user) for _ in range(2)]
    for n in range(ROUNDS):
        names = [f"Nova {n}", f"NOVA {n}"]
        responses = together([partial(new_agent, tab, name)
                              for tab, name in zip(tabs, names, strict=True)])
        assert sorted(r.status_code for r in responses) == [303, 422], [
            (r.status_code, r.text[:300]) for r in responses]
        loser = next(r for r in responses if r.status_code == 422)
        refused_name = names[responses.index(loser)]
        assert f"You already have an agent called &#34;{refused_name}&#34;" in loser.text \
            or f"You already have an agent called &quot;{refused_name}&quot;" in loser.text
        assert f'value="{refused_name}"' in loser.text  # the form keeps what was typed
        assert "You weigh every option twice." in loser.text
    assert len(agent_names(app, user.id)) == ROUNDS


def test_agents_created_at_once_stop_at_the_plan_limit(app, live_server, make_user):
    user = make_user(name="Frida")  # free plan: 3 agents
    tabs = [member(app, live_server, user) for _ in range(3)]
    for n in range(ROUNDS):
        with app.app_context():
            db.session.execute(sa.delete(Agent).where(Agent.created_by == user.id))
            db.session.add_all([Agent(name=f"Kept {k}", prompt="Already here, helping.",
                                      created_by=user.id) for k in range(2)])
            db.session.commit()
        responses = together([partial(new_agent, tab, f"Racer {n}.{k}")
                              for k, tab in enumerate(tabs)])
        assert sorted(r.status_code for r in responses) == [303, 403, 403], [
            (r.status_code, r.text[:300]) for r in responses]
        for refused in (r for r in responses if r.status_code == 403):
            assert "Your free plan allows 3 agents, and you have used them all" in refused.text
            assert "You weigh every option twice." in refused.text
        assert len(agent_names(app, user.id)) == 3
