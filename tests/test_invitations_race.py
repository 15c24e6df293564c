"""Several people accepting one single-use link at the same moment: exactly one gets in."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import requests
import sqlalchemy as sa

from discux.auth.sessions import COOKIE_NAME
from discux.extensions import db
from discux.models import Room, RoomParticipant
from tests.support import factories
from tests.support import room_factories as rf

CSRF = re.compile(r'"X-CSRFToken": "([^"]+)"')
ROUNDS = 6
RACERS = 3


def browser_session(app, user) -> requests.Session:
    """A `requests` session signed in as `user` through a real Session row."""
    with app.app_context():
        raw_token = factories.create_session_token(user.id)
    session = requests.Session()
    session.cookies.set(COOKIE_NAME, raw_token, domain="127.0.0.1", path="/")
    return session


def accept_together(url: str, start: threading.Barrier, racer) -> requests.Response:
    """Press "Join room" at the same moment as the other racers."""
    session, csrf = racer
    start.wait(timeout=10)
    return session.post(url, data={"csrf_token": csrf}, allow_redirects=False, timeout=30)


def test_exactly_one_of_several_simultaneous_accepts_joins(app, live_server, make_user):
    owner = make_user(name="Olive")
    with app.app_context():
        room_id = rf.create_room(owner, "Race room").id
    for _ in range(ROUNDS):
        with app.app_context():
            _, token = rf.create_invitation(db.session.get(Room, room_id), owner)
        url = f"{live_server.url}/invite/{token}"
        racers = []
        for _ in range(RACERS):
            session = browser_session(app, make_user())
            page = session.get(url, timeout=10)
            assert page.status_code == 200 and "Join room" in page.text
            racers.append((session, CSRF.search(page.text).group(1)))
        start = threading.Barrier(RACERS)
        with ThreadPoolExecutor(RACERS) as pool:
            responses = list(pool.map(partial(accept_together, url, start), racers))

        statuses = sorted(r.status_code for r in responses)
        assert statuses == [303] + [410] * (RACERS - 1), statuses
        loser_pages = [r.text for r in responses if r.status_code == 410]
        assert all("already been used" in text for text in loser_pages)
        with app.app_context():
            invitation = rf.invitation_by_token(token)
            winner_ids = {p for p in db.session.scalars(
                sa.select(RoomParticipant.user_id).where(RoomParticipant.room_id == room_id))}
            assert invitation.used_by in winner_ids
    with app.app_context():
        count = db.session.scalar(sa.select(sa.func.count()).select_from(RoomParticipant)
                                  .where(RoomParticipant.room_id == room_id))
    assert count == 1 + ROUNDS  # the owner and one winner per link
