"""Message actions over HTTP: editing your own message, replying with a quote, copying the
source, and clearing a room's history; each refused to whoever may not do it."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from discux.auth.sessions import COOKIE_NAME
from discux.extensions import db
from discux.messages.service import MAX_LENGTH
from discux.models import Message, Room
from tests.support import chat_factories
from tests.support.chat_factories import World


@pytest.fixture
def world(app) -> World:
    return World(app)


def as_person(client, person):
    client.set_cookie(COOKIE_NAME, person.token, domain="localhost")
    return client


def message_by(app, world, person, content="First draft of the plan") -> str:
    with app.app_context():
        return chat_factories.create_message(world.room_id, person.id, content,
                                             sender_name=person.name).id


def stored(app, message_id) -> Message | None:
    with app.app_context():
        message = db.session.get(Message, message_id)
        if message is not None:
            db.session.expunge(message)
        return message


def room_messages(app, room_id) -> list[Message]:
    with app.app_context():
        rows = list(db.session.scalars(
            sa.select(Message).where(Message.room_id == room_id).order_by(Message.id)))
        for row in rows:
            db.session.expunge(row)
        return rows


def article_of(html: str, message_id: str) -> str:
    match = re.search(rf'<article[^>]*id="message-{message_id}".*?</article>', html, re.S)
    assert match, f"message {message_id} is not on the page"
    return match.group(0)


# ---- Edit ----
def test_author_edits_own_message_without_javascript(app, client, world, csrf_token):
    message_id = message_by(app, world, world.member)
    member = as_person(client, world.member)
    page = member.get(f"/rooms/{world.room_id}/messages/{message_id}/edit")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<h1>Edit your message</h1>" in html
    assert ">First draft of the plan</textarea>" in html
    assert f'action="/rooms/{world.room_id}/messages/{message_id}/edit"' in html
    response = member.post(f"/rooms/{world.room_id}/messages/{message_id}/edit",
                           data={"content": "Second draft, **final**", "csrf_token": csrf_token()})
    assert response.status_code == 303
    assert response.headers["Location"] == (
        f"/rooms/{world.room_id}?around={message_id}#message-{message_id}")
    message = stored(app, message_id)
    assert message.content == "Second draft, **final**"
    assert "<strong>final</strong>" in message.content_html
    assert message.edited_at is not None and message.changed_at >= message.edited_at
    room = member.get(response.headers["Location"]).get_data(as_text=True)
    article = article_of(room, message_id)
    assert "<strong>final</strong>" in article
    assert re.search(r'<span class="message-tag message-edited" title="Edited \w+day [^"]+ UTC">'
                     r'edited</span>', article)


def test_htmx_edit_opens_in_place_and_saves_back_to_the_message(app, client, world, csrf_token):
    message_id = message_by(app, world, world.member)
    member = as_person(client, world.member)
    url = f"/rooms/{world.room_id}/messages/{message_id}/edit"
    form = member.get(url, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert form.startswith(f'<article class="message message-user message-own message-editing" '
                           f'id="message-{message_id}"')
    assert "<html" not in form and 'hx-post="' + url + '"' in form
    saved = member.post(url, data={"content": "Edited in place"},
                        headers={"HX-Request": "true", "X-CSRFToken": csrf_token()})
    assert saved.status_code == 200
    article = saved.get_data(as_text=True)
    assert f'id="message-{message_id}"' in article and "Edited in place" in article
    assert ">edited</span>" in article
    cancel = member.get(f"/rooms/{world.room_id}/messages/{message_id}",
                        headers={"HX-Request": "true"}).get_data(as_text=True)
    assert cancel.startswith("<article") and "Edited in place" in cancel


@pytest.mark.parametrize("text, reason", [
    ("   ", "Write something before sending."),
    ("x" * (MAX_LENGTH + 1), f"at most {MAX_LENGTH:,} characters; this one has 4,001"),
])
@pytest.mark.parametrize("htmx", [True, False])
def test_a_refused_edit_shows_why_and_keeps_the_text(app, client, world, csrf_token, text,
                                                     reason, htmx):
    message_id = message_by(app, world, world.member)
    headers = {"HX-Request": "true"} if htmx else {}
    response = as_person(client, world.member).post(
        f"/rooms/{world.room_id}/messages/{message_id}/edit",
        data={"content": text, "csrf_token": csrf_token()}, headers=headers)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert reason in html and 'role="alert"' in html
    assert f">{text}</textarea>" in html
    assert ("<html" in html) is not htmx
    assert stored(app, message_id).content == "First draft of the plan"
    assert stored(app, message_id).edited_at is None


def test_nobody_edits_someone_elses_message(app, client, world, csrf_token):
    message_id = message_by(app, world, world.member)
    url = f"/rooms/{world.room_id}/messages/{message_id}/edit"
    for person in (world.owner, world.admin):
        refused = as_person(client, person).post(url, data={"content": "Mine now",
                                                            "csrf_token": csrf_token()})
        assert refused.status_code == 403
        assert "You can only edit your own messages." in refused.get_data(as_text=True)
        assert as_person(client, person).get(url).status_code == 403
    outsider = as_person(client, world.outsider)
    assert outsider.post(url, data={"content": "x", "csrf_token": csrf_token()}).status_code == 404
    assert outsider.get(url).status_code == 404
    assert stored(app, message_id).content == "First draft of the plan"


def test_agent_and_system_messages_cannot_be_edited(app, client, world, csrf_token):
    with app.app_context():
        agent_id = chat_factories.create_message(world.room_id, world.agents[0][0], "I think so.",
                                                 type="agent").id
    response = as_person(client, world.owner).post(
        f"/rooms/{world.room_id}/messages/{agent_id}/edit",
        data={"content": "You think not.", "csrf_token": csrf_token()})
    assert response.status_code == 403
    assert stored(app, agent_id).content == "I think so."


def test_nothing_is_edited_in_an_archived_room(app, client, world, csrf_token):
    message_id = message_by(app, world, world.member)
    with app.app_context():
        db.session.get(Room, world.room_id).is_active = False
        db.session.commit()
    response = as_person(client, world.member).post(
        f"/rooms/{world.room_id}/messages/{message_id}/edit",
        data={"content": "Too late", "csrf_token": csrf_token()})
    assert response.status_code == 403
    assert "archived" in response.get_data(as_text=True)
    assert stored(app, message_id).content == "First draft of the plan"


def test_edit_without_csrf_token_is_refused(app, client, world):
    message_id = message_by(app, world, world.member)
    response = as_person(client, world.member).post(
        f"/rooms/{world.room_id}/messages/{message_id}/edit", data={"content": "Sneaky"})
    assert response.status_code == 400
    assert stored(app, message_id).content == "First draft of the plan"


def test_an_edited_message_is_found_by_its_new_words_only(app, client, world, csrf_token):
    message_id = message_by(app, world, world.member, "Budget for pineapples")
    member = as_person(client, world.member)
    member.post(f"/rooms/{world.room_id}/messages/{message_id}/edit",
                data={"content": "Budget for watermelons", "csrf_token": csrf_token()})
    found = member.get("/search?q=watermelons").get_data(as_text=True)
    assert f"message-{message_id}" in found or message_id in found
    gone = member.get("/search?q=pineapples").get_data(as_text=True)
    assert message_id not in gone


# ---- Reply ----
def test_a_reply_quotes_and_links_the_message_it_answers(app, client, world, csrf_token):
    original = message_by(app, world, world.owner, "Who owns the launch checklist?")
    member = as_person(client, world.member)
    response = member.post(f"/rooms/{world.room_id}/messages",
                           data={"content": "I do.", "reply_to": original,
                                 "csrf_token": csrf_token()})
    assert response.status_code == 303
    reply = room_messages(app, world.room_id)[-1]
    assert (reply.content, reply.reply_to_id) == ("I do.", original)
    article = article_of(member.get(f"/rooms/{world.room_id}").get_data(as_text=True), reply.id)
    link = f"/rooms/{world.room_id}?around={original}#message-{original}"
    assert (f'<a class="message-quote" href="{link}" data-quote-of="{original}">') in article
    assert "<strong>Olga Owner</strong>" in article and "Who owns the launch checklist?" in article
    # The quote's link works when the original is not on the page: it opens the room at it.
    with app.app_context():
        for n in range(60):
            chat_factories.create_message(world.room_id, world.owner.id, f"later {n}")
    newest = member.get(f"/rooms/{world.room_id}").get_data(as_text=True)
    assert f'id="message-{original}"' not in newest
    assert f'id="message-{original}"' in member.get(link).get_data(as_text=True)


def test_without_javascript_reply_opens_a_composer_that_answers_the_message(app, client, world):
    original = message_by(app, world, world.owner, "Ship on Friday?")
    page = as_person(client, world.member).get(
        f"/rooms/{world.room_id}/messages/{original}/reply")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f'<input type="hidden" name="reply_to" value="{original}">' in html
    assert "Replying to <strong data-reply-name>Olga Owner</strong>" in html
    assert 'id="composer-text"' in html
    assert as_person(client, world.outsider).get(
        f"/rooms/{world.room_id}/messages/{original}/reply").status_code == 404


@pytest.mark.parametrize("target", ["deleted", "other room", "not an id"])
def test_a_reply_to_nothing_here_is_refused_with_the_text_kept(app, client, world, csrf_token,
                                                               target):
    with app.app_context():
        if target == "deleted":
            reply_to = "01a20000-0000-7000-8000-000000000000"
        elif target == "other room":
            other = chat_factories.create_room(world.outsider.id)
            reply_to = chat_factories.create_message(other, world.outsider.id, "elsewhere").id
        else:
            reply_to = "<script>"
    before = len(room_messages(app, world.room_id))
    response = as_person(client, world.member).post(
        f"/rooms/{world.room_id}/messages", headers={"HX-Request": "true",
                                                    "X-CSRFToken": csrf_token()},
        data={"content": "My careful answer", "reply_to": reply_to})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert ">My careful answer</textarea>" in html
    assert "reply" in html.split('id="composer-error"')[1].split("</small>")[0].lower()
    assert "<script>" not in html
    assert len(room_messages(app, world.room_id)) == before


# ---- Copy ----
def test_copy_gets_the_source_text_for_members_only(app, client, world):
    message_id = message_by(app, world, world.owner, "Use **bold** and `code`")
    response = as_person(client, world.member).get(
        f"/rooms/{world.room_id}/messages/{message_id}/source")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.get_data(as_text=True) == "Use **bold** and `code`"
    assert as_person(client, world.outsider).get(
        f"/rooms/{world.room_id}/messages/{message_id}/source").status_code == 404


def test_without_javascript_a_messages_time_leads_to_its_actions(app, client, world):
    mine = message_by(app, world, world.member, "Mine, with **bold**")
    theirs = message_by(app, world, world.owner, "Theirs")
    member = as_person(client, world.member)
    room = member.get(f"/rooms/{world.room_id}").get_data(as_text=True)
    for message_id in (mine, theirs):
        assert f'<a href="/messages/{message_id}"><time' in article_of(room, message_id)
    own = member.get(f"/messages/{mine}").get_data(as_text=True)
    base = f"/rooms/{world.room_id}/messages/{mine}"
    for action in ("reply", "edit", "delete"):
        assert f'href="{base}/{action}"' in own
    assert "regenerate" not in own
    assert '<textarea id="message-source" rows="4" readonly>Mine, with **bold**</textarea>' in own
    other = member.get(f"/messages/{theirs}").get_data(as_text=True)
    assert f"/messages/{theirs}/reply" in other
    assert f"/messages/{theirs}/edit" not in other and f"/messages/{theirs}/delete" not in other
    assert as_person(client, world.outsider).get(f"/messages/{mine}").status_code == 404
    assert member.get("/messages/01a20000-0000-7000-8000-000000000000").status_code == 404


# ---- Clear history ----
def test_admin_clears_the_history_after_confirming(app, client, world, csrf_token):
    with app.app_context():
        for n in range(3):
            chat_factories.create_message(world.room_id, world.member.id, f"zucchini note {n}")
    admin = as_person(client, world.admin)
    assert 'class="search-hit' in admin.get("/search?q=zucchini").get_data(as_text=True)
    confirm = admin.get(f"/rooms/{world.room_id}/clear")
    assert confirm.status_code == 200
    html = confirm.get_data(as_text=True)
    assert "Clear the history of “Launch plan”?" in html and "(3 in all)" in html
    assert len(room_messages(app, world.room_id)) == 3  # asking clears nothing
    response = admin.post(f"/rooms/{world.room_id}/clear", data={"csrf_token": csrf_token()})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/rooms/{world.room_id}"
    [note] = room_messages(app, world.room_id)
    assert note.type == "system" and "**Adam Admin** cleared the history" in note.content
    room = admin.get(f"/rooms/{world.room_id}").get_data(as_text=True)
    assert "zucchini" not in room and "cleared the history of this room" in room
    assert 'class="search-hit' not in admin.get("/search?q=zucchini").get_data(as_text=True)
    exported = admin.get(f"/rooms/{world.room_id}/export.json").get_json()
    assert [m["type"] for m in exported["messages"]] == ["system"]
    assert "zucchini" not in admin.get(f"/rooms/{world.room_id}/export.md").get_data(
        as_text=True)


def test_only_staff_may_clear_the_history(app, client, world, csrf_token):
    message_by(app, world, world.member, "keep me")
    url = f"/rooms/{world.room_id}/clear"
    member = as_person(client, world.member)
    assert member.get(url).status_code == 403
    refused = member.post(url, data={"csrf_token": csrf_token()})
    assert refused.status_code == 403
    assert "Only the owner and admins may clear" in refused.get_data(as_text=True)
    outsider = as_person(client, world.outsider)
    assert outsider.get(url).status_code == 404
    assert outsider.post(url, data={"csrf_token": csrf_token()}).status_code == 404
    assert as_person(client, world.owner).post(url).status_code == 400  # no CSRF token
    assert [m.content for m in room_messages(app, world.room_id)] == ["keep me"]


def test_the_panel_offers_clear_history_to_staff_only(app, client, world):
    link = f'href="/rooms/{world.room_id}/clear"'
    assert link in as_person(client, world.owner).get(f"/rooms/{world.room_id}").get_data(
        as_text=True)
    assert link not in as_person(client, world.member).get(f"/rooms/{world.room_id}").get_data(
        as_text=True)


# ---- Regenerated versions ----
def test_deleting_a_regenerated_reply_brings_back_the_version_it_replaced(app, client, world,
                                                                         csrf_token):
    agent_id, _ = world.agents[0]
    with app.app_context():
        question = chat_factories.create_message(world.room_id, world.owner.id, "Ideas?").id
        old = chat_factories.create_message(world.room_id, agent_id, "Old idea", type="agent",
                                            reply_to_id=question).id
        new = chat_factories.create_message(world.room_id, agent_id, "New idea", type="agent",
                                            reply_to_id=question, replaces_id=old).id
        db.session.get(Message, old).replaced_by_id = new
        db.session.commit()
    owner = as_person(client, world.owner)
    page = owner.get(f"/rooms/{world.room_id}").get_data(as_text=True)
    assert "New idea" in page and "Old idea" not in page
    assert f'href="/rooms/{world.room_id}/messages/{new}/versions"' in article_of(page, new)
    versions = owner.get(f"/rooms/{world.room_id}/messages/{new}/versions",
                         headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "Old idea" in versions and "<html" not in versions
    owner.post(f"/rooms/{world.room_id}/messages/{new}/delete", data={"csrf_token": csrf_token()})
    page = owner.get(f"/rooms/{world.room_id}").get_data(as_text=True)
    assert "Old idea" in page and "New idea" not in page
    assert stored(app, old).replaced_by_id is None
