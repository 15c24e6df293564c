"""The side panel's forms as a browser reads them: every form carries its CSRF token, every
field has a label, and a refused form comes back with what was typed and why it was refused."""

from __future__ import annotations

from collections import Counter
from html.parser import HTMLParser

import pytest

from discux.extensions import db
from discux.models import Room
from tests.support import room_factories as rf


class PageForms(HTMLParser):
    """The forms of a page: each with its action, inputs, selects (with options) and labels."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []
        self.ids: list[str] = []
        self.label_targets: list[str] = []
        self._select = None
        self._optgroup = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "form":
            self.forms.append({"action": attrs.get("action"), "method": attrs.get("method"),
                               "fields": {}, "selects": {}})
        elif tag == "label" and attrs.get("for"):
            self.label_targets.append(attrs["for"])
        elif tag == "input" and self.forms:
            self.forms[-1]["fields"][attrs.get("name")] = attrs
        elif tag == "select" and self.forms:
            self._select = {**attrs, "options": []}
            self.forms[-1]["selects"][attrs.get("name")] = self._select
        elif tag == "optgroup":
            self._optgroup = attrs.get("label")
        elif tag == "option" and self._select is not None:
            self._select["options"].append(
                {"value": attrs.get("value"), "selected": "selected" in attrs,
                 "group": self._optgroup})

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "optgroup":
            self._optgroup = None

    def form(self, action_end: str) -> dict:
        found = [f for f in self.forms if (f["action"] or "").endswith(action_end)]
        assert len(found) == 1, f"{len(found)} forms posting to …{action_end}"
        return found[0]


def forms_of(html: str) -> PageForms:
    parser = PageForms()
    parser.feed(html)
    return parser


@pytest.fixture
def busy_room(app, make_user):
    """An owner's room with an admin, a member, an agent in it, agents to add and invitations."""
    owner = make_user(name="Olive", plan="pro")
    admin = make_user(name="Adam")
    member = make_user(name="Mia")
    stranger = make_user(name="Sam")
    with app.app_context():
        room = rf.create_room(owner, "Roadmap")
        rf.add_member(room, admin, "admin")
        rf.add_member(room, member)
        rf.put_agent_in_room(room, rf.create_agent(owner, "Scribe"), owner)
        ids = {
            "mine": rf.create_agent(owner, "Zed Mine").id,
            "public": rf.create_agent(stranger, "Able Public", public=True).id,
            "private": rf.create_agent(stranger, "Secret", public=False).id,
        }
        rf.create_invitation(room, owner, "friend@example.com")
        rf.create_invitation(room, owner, None, state="revoked")
        return room.id, {"owner": owner, "admin": admin, "member": member}, ids


@pytest.mark.parametrize(("path", "actions"), [
    ("", ("/settings", "/agents", "/transfer")),
    ("/invitations", ("/invitations",)),  # the room's Invite opens this page (in a dialog with JS)
])
def test_every_panel_form_posts_with_a_csrf_token_and_labelled_fields(client, login, busy_room,
                                                                       path, actions):
    room_id, users, _ = busy_room
    login(users["owner"])
    page = forms_of(client.get(f"/rooms/{room_id}{path}").get_data(as_text=True))
    posting = [f for f in page.forms if f["method"] == "post"]
    for action in actions:
        assert page.form(f"/rooms/{room_id}{action}")
    for form in posting:
        assert form["fields"]["csrf_token"]["value"], form["action"]
    named = [field for form in posting for field in (*form["fields"].values(),
                                                     *form["selects"].values())
             if field.get("type") != "hidden"]
    assert named and all(field["id"] in page.label_targets for field in named)
    duplicated = [name for name, count in Counter(page.ids).items() if count > 1]
    assert duplicated == []


def test_settings_form_shows_the_saved_settings(app, client, login, busy_room):
    room_id, users, _ = busy_room
    with app.app_context():
        room = db.session.get(Room, room_id)
        room.settings.max_agents, room.settings.allow_agent_creation = 7, False
        room.settings.auto_summarize = True
        db.session.commit()
    login(users["owner"])
    form = forms_of(client.get(f"/rooms/{room_id}").get_data(as_text=True)).form("/settings")
    fields = form["fields"]
    assert fields["max_agents"]["value"] == "7" and fields["max_agents"]["type"] == "number"
    assert "checked" not in fields["allow_agent_creation"]
    assert "checked" in fields["auto_summarize"]
    assert fields["auto_summarize"]["role"] == "switch"


def test_refused_settings_come_back_with_what_was_typed(client, csrf_token, login, busy_room):
    room_id, users, _ = busy_room
    login(users["owner"])
    response = client.post(f"/rooms/{room_id}/settings", data={
        "max_agents": "99", "auto_summarize": "y", "csrf_token": csrf_token()})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    fields = forms_of(html).form("/settings")["fields"]
    assert fields["max_agents"]["value"] == "99"
    assert fields["max_agents"]["aria-invalid"] == "true"
    assert fields["max_agents"]["aria-describedby"] == "max_agents-error"
    assert 'id="max_agents-error">Choose a number from 1 to 20.</small>' in html
    # The switches show what was posted, not what is saved.
    assert "checked" in fields["auto_summarize"]
    assert "checked" not in fields["allow_agent_creation"]


def test_add_agent_offers_my_agents_first_then_public_ones(client, login, busy_room):
    room_id, users, ids = busy_room
    login(users["owner"])
    page = forms_of(client.get(f"/rooms/{room_id}").get_data(as_text=True))
    options = page.form("/agents")["selects"]["agent_id"]["options"]
    assert [(o["value"], o["group"]) for o in options] == [
        (ids["mine"], "Your agents"), (ids["public"], "Public agents")]


def test_refused_agent_keeps_the_choice_and_says_why(app, client, csrf_token, login, busy_room):
    room_id, users, ids = busy_room
    with app.app_context():
        db.session.get(Room, room_id).settings.max_agents = 1
        db.session.commit()
    login(users["owner"])
    response = client.post(f"/rooms/{room_id}/agents",
                           data={"agent_id": ids["public"], "csrf_token": csrf_token()})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    select = forms_of(html).form("/agents")["selects"]["agent_id"]
    assert [o["value"] for o in select["options"] if o["selected"]] == [ids["public"]]
    assert select["aria-describedby"] == "agent_id-error"
    assert 'id="agent_id-error">This room allows at most 1 agent. Remove one' in html


def test_refused_transfer_keeps_the_choice_and_says_why(app, client, csrf_token, login,
                                                        busy_room):
    room_id, users, _ = busy_room
    login(users["owner"])
    response = client.post(f"/rooms/{room_id}/transfer",
                           data={"new_owner_id": "", "csrf_token": csrf_token()})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    select = forms_of(html).form("/transfer")["selects"]["new_owner_id"]
    assert select["aria-invalid"] == "true"
    assert 'id="new_owner_id-error">Choose who becomes the owner.</small>' in html
    assert {o["value"] for o in select["options"]} == {users["admin"].id, users["member"].id}


def test_invitations_list_says_who_made_each_and_its_state(client, login, busy_room):
    room_id, users, _ = busy_room
    login(users["owner"])
    room_page = client.get(f"/rooms/{room_id}").get_data(as_text=True)
    # Invite, in the room's header, opens the invitations page.
    assert f'href="/rooms/{room_id}/invitations" role="button"' in room_page
    html = client.get(f"/rooms/{room_id}/invitations").get_data(as_text=True)
    section = html[html.index('id="invitations"'):]
    assert section.count("by Olive") == 2
    assert "status-open" in section and "for friend@example.com" in section
    assert "status-revoked" in section


@pytest.mark.parametrize("htmx", [False, True])
def test_refused_invite_keeps_the_email_and_expiry(client, csrf_token, login, busy_room, htmx):
    room_id, users, _ = busy_room
    login(users["owner"])
    response = client.post(f"/rooms/{room_id}/invitations",
                           data={"email": "not-an-email", "expiry": "30d",
                                 "csrf_token": csrf_token()},
                           headers={"HX-Request": "true"} if htmx else {})
    assert response.status_code == 422
    form = forms_of(response.get_data(as_text=True)).form(f"/rooms/{room_id}/invitations")
    assert form["fields"]["email"]["value"] == "not-an-email"
    assert form["fields"]["email"]["aria-describedby"] == "email-error"
    assert form["fields"]["csrf_token"]["value"]
    expiry = form["selects"]["expiry"]["options"]
    assert [o["value"] for o in expiry if o["selected"]] == ["30d"]


def test_a_new_invite_form_starts_blank_with_seven_days(client, csrf_token, login, busy_room):
    room_id, users, _ = busy_room
    login(users["owner"])
    response = client.post(f"/rooms/{room_id}/invitations",
                           data={"email": "pal@example.com", "expiry": "1d",
                                 "csrf_token": csrf_token()}, headers={"HX-Request": "true"})
    assert response.status_code == 201
    form = forms_of(response.get_data(as_text=True)).form(f"/rooms/{room_id}/invitations")
    assert form["fields"]["email"]["value"] == ""
    assert [o["value"] for o in form["selects"]["expiry"]["options"] if o["selected"]] == ["7d"]
