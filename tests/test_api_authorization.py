"""Who may call what in the JSON API: every route × {no token, bad token, revoked token, another
user's token, a member whose role may not, the right token}, and a refused call changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from discux.api import tokens
from discux.extensions import db
from discux.models import (
    Agent,
    ApiToken,
    Message,
    Room,
    RoomAgent,
    RoomInvitation,
    RoomParticipant,
    User,
)
from tests.support import chat_factories as cf
from tests.support import room_factories as rf
from tests.support.api_helpers import Api, error_of, issue_token


@dataclass
class Scene:
    room: str
    owner: User
    admin: User
    member: User
    outsider: User
    target: User  # a plain member the others act upon
    agent: str  # the owner's private agent, in the room
    spare_agent: str  # the outsider's public agent, not in the room
    invitation: str
    invite_token: str
    target_message: str  # posted by the target
    tokens: dict[str, str]


@pytest.fixture
def scene(app, make_user) -> Scene:
    people = {role: make_user(name=name) for role, name in (
        ("owner", "Olive Owner"), ("admin", "Adam Admin"), ("member", "Mia Member"),
        ("outsider", "Otto Outsider"), ("target", "Tess Target"))}
    with app.app_context():
        room = rf.create_room(people["owner"], "Launch plan", allow_agent_creation=False)
        rf.add_member(room, people["admin"], "admin")
        rf.add_member(room, people["member"])
        rf.add_member(room, people["target"])
        agent = rf.create_agent(people["owner"], "Critic")
        rf.put_agent_in_room(room, agent, people["owner"])
        spare = rf.create_agent(people["outsider"], "Helper", public=True)
        invitation, invite_token = rf.create_invitation(room, people["owner"])
        message = cf.create_message(room, people["target"], "Tess was here")
        ids = (room.id, agent.id, spare.id, invitation.id, message.id)
    return Scene(ids[0], people["owner"], people["admin"], people["member"], people["outsider"],
                 people["target"], ids[1], ids[2], ids[3], invite_token, ids[4],
                 {role: issue_token(app, user) for role, user in people.items()})


def snapshot(app) -> dict:
    """Every row an API call could write, as comparable values."""
    with app.app_context():
        def rows(model, *columns):
            return set(db.session.execute(sa.select(*[getattr(model, c) for c in columns])).all())

        return {
            "rooms": rows(Room, "id", "name", "description", "is_active", "created_by"),
            "people": rows(RoomParticipant, "room_id", "user_id", "role"),
            "room agents": rows(RoomAgent, "room_id", "agent_id"),
            "agents": rows(Agent, "id", "name", "prompt", "is_public"),
            "messages": rows(Message, "id", "room_id", "content"),
            "invitations": rows(RoomInvitation, "id", "used_at", "revoked_at"),
            "settings": {(room.id, room.settings.max_agents, room.settings.allow_agent_creation)
                         for room in db.session.scalars(sa.select(Room))},
        }


# Room-scoped routes: (method, path, JSON body, expected status for owner, admin, member).
ROOM_ROUTES = {
    "show room": ("GET", "/rooms/{room}", None, (200, 200, 200)),
    "edit room": ("PATCH", "/rooms/{room}", {"name": "Renamed"}, (200, 200, 403)),
    "archive room": ("PATCH", "/rooms/{room}", {"is_active": False}, (200, 200, 403)),
    "delete room": ("DELETE", "/rooms/{room}", None, (204, 403, 403)),
    "show settings": ("GET", "/rooms/{room}/settings", None, (200, 200, 200)),
    "edit settings": ("PATCH", "/rooms/{room}/settings", {"max_agents": 7}, (200, 200, 403)),
    "list members": ("GET", "/rooms/{room}/members", None, (200, 200, 200)),
    "change role": ("PATCH", "/rooms/{room}/members/{target}", {"role": "admin"},
                    (200, 200, 403)),
    "remove member": ("DELETE", "/rooms/{room}/members/{target}", None, (204, 204, 403)),
    "transfer": ("POST", "/rooms/{room}/transfer", {"new_owner_id": "{target}"},
                 (200, 403, 403)),
    "leave": ("POST", "/rooms/{room}/leave", None, (403, 204, 204)),
    "list room agents": ("GET", "/rooms/{room}/agents", None, (200, 200, 200)),
    "add room agent": ("POST", "/rooms/{room}/agents", {"agent_id": "{spare_agent}"},
                       (201, 201, 403)),
    "remove room agent": ("DELETE", "/rooms/{room}/agents/{agent}", None, (204, 204, 403)),
    "list messages": ("GET", "/rooms/{room}/messages", None, (200, 200, 200)),
    "post message": ("POST", "/rooms/{room}/messages", {"content": "Hello"}, (201, 201, 201)),
    "delete message": ("DELETE", "/rooms/{room}/messages/{target_message}", None,
                       (204, 204, 403)),
    # Only its author edits a message (here the target's): nobody else, whatever their role.
    "edit message": ("PATCH", "/rooms/{room}/messages/{target_message}", {"content": "Edited"},
                     (403, 403, 403)),
    "list invitations": ("GET", "/rooms/{room}/invitations", None, (200, 200, 403)),
    "invite": ("POST", "/rooms/{room}/invitations", {"expiry": "1d"}, (201, 201, 403)),
    "revoke invitation": ("DELETE", "/rooms/{room}/invitations/{invitation}", None,
                          (200, 200, 403)),
}
# Routes about the caller's own things: (method, path, body, status for the owner, status
# for another user's token on the same path).
OWN_ROUTES = {
    "me": ("GET", "/me", None, 200, 200),
    "list agents": ("GET", "/agents", None, 200, 200),
    "public agents": ("GET", "/agents/public", None, 200, 200),
    "create agent": ("POST", "/agents", {"name": "Scout", "prompt": "Finds the facts fast."},
                     201, 201),
    "show agent": ("GET", "/agents/{agent}", None, 200, 404),
    "edit agent": ("PATCH", "/agents/{agent}", {"prompt": "Critiques every plan gently."},
                   200, 404),
    "delete agent": ("DELETE", "/agents/{agent}", None, 204, 404),
    "list rooms": ("GET", "/rooms", None, 200, 200),
    "create room": ("POST", "/rooms", {"name": "Second room"}, 403, 201),
    "search": ("GET", "/search?q=Tess", None, 200, 200),
    "accept invitation": ("POST", "/invitations/accept", {"token": "{invite_token}"}, 200, 200),
}


def fill(value, scene: Scene):
    if isinstance(value, dict):
        return {key: fill(item, scene) for key, item in value.items()}
    if not isinstance(value, str):
        return value
    return value.format(room=scene.room, target=scene.target.id, agent=scene.agent,
                        spare_agent=scene.spare_agent, invitation=scene.invitation,
                        invite_token=scene.invite_token, target_message=scene.target_message)


def test_the_tables_cover_every_api_route(app):
    covered = {(method, path.split("?")[0])
               for method, path, *_ in [*ROOM_ROUTES.values(), *OWN_ROUTES.values()]}
    # The tables' placeholder for each URL argument ({agent} for both kinds of agent path).
    placeholders = {"room_id": "room", "user_id": "target", "agent_id": "agent",
                    "message_id": "target_message", "invitation_id": "invitation"}
    rules = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api."):
            path = rule.rule.removeprefix("/api/v1")
            for name in rule.arguments:
                path = path.replace(f"<{name}>", f"{{{placeholders[name]}}}")
            rules |= {(method, path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert rules == covered


def every_route() -> list[tuple[str, str, object]]:
    return [(method, path, body) for method, path, body, *_ in
            [*ROOM_ROUTES.values(), *OWN_ROUTES.values()]]


ROUTE_IDS = [*ROOM_ROUTES, *OWN_ROUTES]


@pytest.mark.parametrize(("method", "path", "body"), every_route(), ids=ROUTE_IDS)
def test_no_token_gets_401_and_changes_nothing(app, client, scene, method, path, body):
    before = snapshot(app)
    response = Api(client, None).request(method, fill(path, scene), json=fill(body, scene))
    assert response.status_code == 401
    assert error_of(response)["code"] == "missing_token"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert snapshot(app) == before


@pytest.mark.parametrize(("method", "path", "body"), every_route(), ids=ROUTE_IDS)
@pytest.mark.parametrize("token", ["dxk_not-a-real-token", "not-even-the-prefix", "dxk_" + "a" * 300])
def test_bad_token_gets_401(app, client, scene, method, path, body, token):
    before = snapshot(app)
    response = Api(client, token).request(method, fill(path, scene), json=fill(body, scene))
    assert response.status_code == 401
    assert error_of(response)["code"] == "invalid_token"
    assert snapshot(app) == before


@pytest.mark.parametrize(("method", "path", "body"), every_route(), ids=ROUTE_IDS)
def test_revoked_token_gets_401(app, client, scene, method, path, body):
    with app.app_context():
        token_row = db.session.scalar(sa.select(ApiToken).where(ApiToken.user_id == scene.owner.id))
        tokens.revoke_token(db.session.get(User, scene.owner.id), token_row.id)
    before = snapshot(app)
    response = Api(client, scene.tokens["owner"]).request(method, fill(path, scene),
                                                          json=fill(body, scene))
    assert response.status_code == 401
    assert error_of(response)["code"] == "invalid_token"
    assert snapshot(app) == before


@pytest.mark.parametrize(("method", "path", "body"), every_route(), ids=ROUTE_IDS)
def test_a_session_cookie_alone_gets_401(app, client, login, scene, method, path, body):
    login(scene.owner)
    before = snapshot(app)
    response = Api(client, None).request(method, fill(path, scene), json=fill(body, scene))
    assert response.status_code == 401
    assert error_of(response)["code"] == "missing_token"
    assert snapshot(app) == before


@pytest.mark.parametrize("role", ["owner", "admin", "member", "outsider"])
@pytest.mark.parametrize("action", list(ROOM_ROUTES))
def test_room_routes_by_role(app, client, scene, action, role):
    method, path, body, expected_by_role = ROOM_ROUTES[action]
    before = snapshot(app)
    response = Api(client, scene.tokens[role]).request(method, fill(path, scene),
                                                       json=fill(body, scene))
    text = response.get_data(as_text=True)
    if role == "outsider":
        assert response.status_code == 404, text
        assert error_of(response)["code"] == "not_found"
        assert "Launch plan" not in text and "Tess" not in text
        assert snapshot(app) == before
        return
    expected = expected_by_role[("owner", "admin", "member").index(role)]
    assert response.status_code == expected, text
    if expected == 403:
        assert error_of(response)["code"] == "forbidden"
        assert snapshot(app) == before
    elif method == "GET":
        assert snapshot(app) == before
    else:
        assert snapshot(app) != before


@pytest.mark.parametrize("role", ["owner", "outsider"])
@pytest.mark.parametrize("action", list(OWN_ROUTES))
def test_own_routes_for_the_owner_and_for_another_user(app, client, scene, action, role):
    method, path, body, owner_status, other_status = OWN_ROUTES[action]
    before = snapshot(app)
    response = Api(client, scene.tokens[role]).request(method, fill(path, scene),
                                                       json=fill(body, scene))
    expected = owner_status if role == "owner" else other_status
    assert response.status_code == expected, response.get_data(as_text=True)
    if expected >= 400:
        error_of(response)
        assert snapshot(app) == before
        if expected == 404:
            assert "Critic" not in response.get_data(as_text=True)
