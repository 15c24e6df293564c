"""Deleting messages over HTTP: your own, or anyone's if you run the room; never someone else's."""

from __future__ import annotations

import pytest

from discux.auth.sessions import COOKIE_NAME
from discux.extensions import db
from discux.models import Message
from tests.support import chat_factories
from tests.support.chat_factories import World


@pytest.fixture
def world(app) -> World:
    return World(app)


def message_by(app, world, person, content="to delete") -> str:
    with app.app_context():
        return chat_factories.create_message(world.room_id, person.id, content).id


def still_there(app, message_id) -> bool:
    with app.app_context():
        return db.session.get(Message, message_id) is not None


def as_person(client, person):
    client.set_cookie(COOKIE_NAME, person.token, domain="localhost")
    return client


def test_member_deletes_own_message_without_javascript(app, client, world, csrf_token):
    message_id = message_by(app, world, world.member)
    response = as_person(client, world.member).post(
        f"/rooms/{world.room_id}/messages/{message_id}/delete",
        data={"csrf_token": csrf_token()})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/rooms/{world.room_id}"
    assert not still_there(app, message_id)


def test_htmx_delete_removes_the_message_at_once(app, client, world, csrf_token):
    message_id = message_by(app, world, world.member)
    response = as_person(client, world.member).delete(
        f"/rooms/{world.room_id}/messages/{message_id}",
        headers={"X-CSRFToken": csrf_token(), "HX-Request": "true"})
    assert response.status_code == 200
    assert response.get_data(as_text=True) == (
        f'<div id="message-{message_id}" hx-swap-oob="delete"></div>')
    assert not still_there(app, message_id)


@pytest.mark.parametrize("staff", ["owner", "admin"])
def test_staff_delete_anyones_message(app, client, world, csrf_token, staff):
    message_id = message_by(app, world, world.member)
    response = as_person(client, getattr(world, staff)).post(
        f"/rooms/{world.room_id}/messages/{message_id}/delete",
        data={"csrf_token": csrf_token()})
    assert response.status_code == 303
    assert not still_there(app, message_id)


def test_member_cannot_delete_someone_elses_message(app, client, world, csrf_token):
    message_id = message_by(app, world, world.owner)
    response = as_person(client, world.member).post(
        f"/rooms/{world.room_id}/messages/{message_id}/delete",
        data={"csrf_token": csrf_token()})
    assert response.status_code == 403
    assert "owner and admins can delete other people" in response.get_data(as_text=True)
    assert still_there(app, message_id)


def test_outsider_cannot_delete_and_learns_nothing(app, client, world, csrf_token):
    message_id = message_by(app, world, world.owner)
    response = as_person(client, world.outsider).post(
        f"/rooms/{world.room_id}/messages/{message_id}/delete",
        data={"csrf_token": csrf_token()})
    assert response.status_code == 404
    assert still_there(app, message_id)


def test_message_of_another_room_cannot_be_deleted_through_this_one(app, client, world,
                                                                   csrf_token):
    with app.app_context():
        other = chat_factories.create_room(world.outsider.id)
        foreign_id = chat_factories.create_message(other, world.outsider.id, "elsewhere").id
    response = as_person(client, world.owner).post(
        f"/rooms/{world.room_id}/messages/{foreign_id}/delete",
        data={"csrf_token": csrf_token()})
    assert response.status_code == 404
    assert still_there(app, foreign_id)


def test_delete_without_csrf_token_is_refused(app, client, world):
    message_id = message_by(app, world, world.member)
    response = as_person(client, world.member).post(
        f"/rooms/{world.room_id}/messages/{message_id}/delete")
    assert response.status_code == 400
    assert still_there(app, message_id)


def test_without_javascript_delete_asks_on_a_page_then_deletes(app, client, world, csrf_token):
    message_id = message_by(app, world, world.member, "regrettable remark")
    member = as_person(client, world.member)
    page = member.get(f"/rooms/{world.room_id}/messages/{message_id}/delete")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<h1>Delete this message?</h1>" in html and "regrettable remark" in html
    assert (f'<form method="post" action="/rooms/{world.room_id}/messages/{message_id}/delete"'
            in html)
    assert 'name="csrf_token"' in html
    assert f'href="/rooms/{world.room_id}#message-{message_id}"' in html  # "Keep it"
    assert still_there(app, message_id)  # asking deletes nothing
    response = member.post(f"/rooms/{world.room_id}/messages/{message_id}/delete",
                           data={"csrf_token": csrf_token()})
    assert response.status_code == 303 and not still_there(app, message_id)


def test_confirmation_page_refuses_whoever_may_not_delete(app, client, world):
    message_id = message_by(app, world, world.owner)
    url = f"/rooms/{world.room_id}/messages/{message_id}/delete"
    refused = as_person(client, world.member).get(url)
    assert refused.status_code == 403
    assert "owner and admins can delete other people" in refused.get_data(as_text=True)
    assert as_person(client, world.outsider).get(url).status_code == 404


@pytest.mark.parametrize("message_id", ["01a20000-0000-7000-8000-000000000000", "not-an-id"])
def test_confirmation_page_for_a_message_that_is_gone(app, client, world, message_id):
    response = as_person(client, world.owner).get(
        f"/rooms/{world.room_id}/messages/{message_id}/delete")
    assert response.status_code == 404


# ---- the short addresses every message's Delete button uses: /messages/<id>[/delete] ----

def test_the_short_address_deletes_in_place_and_without_javascript(app, client, world, csrf_token):
    first, second = message_by(app, world, world.member), message_by(app, world, world.member)
    member = as_person(client, world.member)
    in_place = member.delete(f"/messages/{first}",
                             headers={"X-CSRFToken": csrf_token(), "HX-Request": "true"})
    assert in_place.get_data(as_text=True) == f'<div id="message-{first}" hx-swap-oob="delete"></div>'
    page = member.get(f"/messages/{second}/delete")
    assert page.status_code == 200 and "to delete" in page.get_data(as_text=True)
    plain = member.post(f"/messages/{second}/delete", data={"csrf_token": csrf_token()})
    assert (plain.status_code, plain.headers["Location"]) == (303, f"/rooms/{world.room_id}")
    assert not still_there(app, first) and not still_there(app, second)


@pytest.mark.parametrize("who, status", [("outsider", 404), ("member", 403)])
def test_the_short_address_asks_the_same_rules(app, client, world, csrf_token, who, status):
    message_id = message_by(app, world, world.owner)
    person = as_person(client, getattr(world, who))
    assert person.post(f"/messages/{message_id}/delete",
                       data={"csrf_token": csrf_token()}).status_code == status
    assert person.delete(f"/messages/{message_id}",
                         headers={"X-CSRFToken": csrf_token()}).status_code == status
    assert person.get(f"/messages/{message_id}/delete").status_code == status
    assert person.post(f"/messages/{message_id}/delete").status_code == 400  # no CSRF token
    assert still_there(app, message_id)


@pytest.mark.parametrize("message_id", ["01a23d21-d782-7efa-9baf-be7b7886661a", "not-an-id"])
def test_the_short_address_of_no_message_is_404(app, client, world, csrf_token, message_id):
    member = as_person(client, world.member)
    assert member.get(f"/messages/{message_id}/delete").status_code == 404
    assert member.post(f"/messages/{message_id}/delete",
                       data={"csrf_token": csrf_token()}).status_code == 404
