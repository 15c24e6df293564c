"""Links the app sends come from DISCUX_BASE_URL, and requests naming any other host (in the Host
header, or X-Forwarded-Host from a trusted proxy) get 400 before anything is issued or sent."""

from __future__ import annotations

import logging
import re

import pytest
import sqlalchemy as sa

from discux.auth.sessions import COOKIE_NAME
from discux.extensions import db
from discux.models import RoomInvitation, VerificationToken
from tests.support import factories
from tests.support import room_factories as rf

SITE = "http://discux.example.org"


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model))


@pytest.fixture
def site_app(app, make_app):  # `app` empties the tables afterwards
    # CSRF off here: a form posted to another host would fail the CSRF check too (its cookie is
    # the real site's), and these tests are about what the Host alone does.
    return make_app(DISCUX_DEV_LOGIN=False, DISCUX_BASE_URL=SITE, WTF_CSRF_ENABLED=False,
                    DISCUX_TRUSTED_PROXIES=1)


@pytest.mark.parametrize("forged", [{"base_url": "http://evil.example"},
                                    {"headers": {"X-Forwarded-Host": "evil.example"}}])
def test_sign_in_link_for_another_host_is_refused_and_nothing_is_sent(site_app, caplog, forged):
    client = site_app.test_client()
    with caplog.at_level(logging.WARNING):
        response = client.post("/login/email", data={"email": "victim@example.com"},
                               **{"base_url": SITE, **forged})
    assert response.status_code == 400
    assert count(site_app, VerificationToken) == 0
    assert "victim@example.com" not in caplog.text  # no link was mailed (here: logged)


def test_sign_in_link_points_at_the_base_url(site_app, caplog):
    client = site_app.test_client()
    with caplog.at_level(logging.WARNING):
        response = client.post("/login/email", data={"email": "ana@example.com"}, base_url=SITE)
    assert response.status_code == 200
    assert count(site_app, VerificationToken) == 1
    links = re.findall(r"(https?://\S+/login/email/verify\S*)", caplog.text)
    assert links and all(link.startswith(f"{SITE}/login/email/verify?") for link in links)


def test_invitation_for_another_host_is_refused_and_none_is_made(site_app, make_user):
    owner = make_user()
    with site_app.app_context():
        room_id = rf.create_room(owner).id
        raw_token = factories.create_session_token(owner.id)
    client = site_app.test_client()
    for host in ("discux.example.org", "evil.example"):
        client.set_cookie(COOKIE_NAME, raw_token, domain=host)
    response = client.post(f"/rooms/{room_id}/invitations", data={"expiry": "7d"},
                           base_url="http://evil.example")
    assert response.status_code == 400
    assert count(site_app, RoomInvitation) == 0
    response = client.post(f"/rooms/{room_id}/invitations", data={"expiry": "7d"}, base_url=SITE)
    assert response.status_code == 201
    assert f'value="{SITE}/invite/' in response.get_data(as_text=True)


@pytest.mark.parametrize(("host", "status"), [
    ("localhost", 200), ("127.0.0.1:5000", 200), ("evil.example", 400),
    ("evil.example:5000", 400), ("localhost.evil.example", 400),
])
def test_demo_mode_without_a_base_url_answers_only_to_this_machines_names(client, host, status):
    assert client.get("/login", headers={"Host": host}).status_code == status
