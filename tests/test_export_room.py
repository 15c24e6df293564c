"""Exporting a room: members download every message, in order, as JSON or Markdown, streamed
in batches; nobody else learns the room exists."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

import pytest

from discux.export import service
from discux.extensions import db
from discux.models import Room
from tests.support import search_factories as sf

BULK = 1_100  # more than two batches of 500


@dataclass
class Scene:
    room: str
    owner: object
    member: object
    outsider: object
    former: object
    ids: list[str]


@pytest.fixture
def scene(app, make_user) -> Scene:
    owner, member = make_user(name="Olive"), make_user(name="Mia")
    outsider, former = make_user(name="Otto"), make_user(name="Fay")
    with app.app_context():
        room = sf.room(owner.id, 'Q3 "plans"/../<x>; été', description="Where we plan Q3.")
        sf.join(room, member.id)
        sf.join(room, former.id)
        sf.leave(room, former.id)
        critic, analyst = sf.agent(owner.id, "Critic"), sf.agent(owner.id, "Analyst")
        ids = sf.messages(room, ["@Critic @Analyst what do you think of the *plan*?"],
                          sender_name="Olive", sender_id=owner.id)
        sf.mention(ids[0], critic)
        sf.mention(ids[0], analyst)
        ids += sf.messages(room, ["It is **bold**.\n\nSecond paragraph."], type="agent",
                           sender_name="Critic", sender_emoji="🎯", sender_id=critic,
                           processing_time=1.5, agent_confidence=0.82)
        ids += sf.messages(room, ["Analyst could not answer: timeout"], type="system",
                           sender_name=None, sender_id="system", status="complete")
        ids += sf.bulk_messages(room, BULK, lambda i: f"bulk message {i} <b>not html</b>",
                                sender_name="Mia *star*", sender_id=member.id)
    return Scene(room, owner, member, outsider, former, ids)


def test_json_export_holds_every_message_in_order_with_mentions_and_metrics(
        client, login, scene):
    login(scene.member)
    response = client.get(f"/rooms/{scene.room}/export.json")
    assert response.status_code == 200
    assert response.is_streamed
    assert response.mimetype == "application/json"
    document = json.loads(response.get_data(as_text=True))
    assert document["room"]["id"] == scene.room
    assert document["room"]["name"] == 'Q3 "plans"/../<x>; été'
    assert document["room"]["description"] == "Where we plan Q3."
    messages = document["messages"]
    assert [m["id"] for m in messages] == scene.ids
    first, reply, system = messages[:3]
    assert first["mentions"] == ["Analyst", "Critic"]
    assert first["sender_name"] == "Olive" and first["type"] == "user"
    assert (reply["type"], reply["sender_name"], reply["processing_time"],
            reply["agent_confidence"], reply["status"]) == ("agent", "Critic", 1.5, 0.82,
                                                           "complete")
    assert reply["content"] == "It is **bold**.\n\nSecond paragraph."
    assert system["sender_name"] == "Discux" and system["type"] == "system"
    assert messages[-1]["content"] == f"bulk message {BULK - 1} <b>not html</b>"
    for message in messages:
        assert set(message) == {"id", "type", "sender_name", "content", "timestamp",
                                "mentions", "processing_time", "agent_confidence", "status",
                                "usage"}
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", message["timestamp"])
        datetime.fromisoformat(message["timestamp"].replace("Z", "+00:00"))


def test_markdown_export_holds_every_message_with_sender_and_time(client, login, scene):
    login(scene.owner)
    response = client.get(f"/rooms/{scene.room}/export.md")
    assert response.status_code == 200 and response.is_streamed
    assert response.mimetype == "text/markdown"
    text = response.get_data(as_text=True)
    assert text.startswith('# Q3 "plans"/../\\<x\\>; été\n')
    assert "*agent · confidence 82% · 1.5 s*" in text
    assert "### 🎯 Critic · " in text and "### Discux · " in text
    assert "mentions @Analyst, @Critic" in text
    assert "It is **bold**.\n\nSecond paragraph." in text
    assert text.count("### Mia \\*star\\* · ") == BULK
    for i in range(BULK):
        assert f"\nbulk message {i} <b>not html</b>\n" in text
    assert re.search(r"### Olive · \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", text)


@pytest.mark.parametrize("kind", ["md", "json"])
def test_the_download_has_a_safe_file_name(client, login, scene, kind):
    login(scene.member)
    disposition = client.get(f"/rooms/{scene.room}/export.{kind}").headers[
        "Content-Disposition"]
    assert re.fullmatch(
        rf'attachment; filename="discux-q3-plans-x-ete-\d{{4}}-\d\d-\d\d\.{kind}"', disposition)


def test_a_name_with_nothing_ascii_still_gets_a_file_name(ctx):
    assert service.download_name(Room(name="🚀🚀"), "md").startswith("discux-room-")


@pytest.mark.parametrize("kind", ["md", "json"])
@pytest.mark.parametrize("who", ["outsider", "former"])
def test_people_outside_the_room_get_not_found(client, login, scene, kind, who):
    login(getattr(scene, who))
    response = client.get(f"/rooms/{scene.room}/export.{kind}")
    assert response.status_code == 404
    assert "bulk message" not in response.get_data(as_text=True)


@pytest.mark.parametrize("kind", ["md", "json"])
def test_an_unknown_room_is_not_found(client, login, scene, kind):
    login(scene.owner)
    assert client.get(f"/rooms/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/export.{kind}"
                      ).status_code == 404


@pytest.mark.parametrize("kind", ["md", "json"])
def test_signed_out_visitors_are_sent_to_sign_in(client, scene, kind):
    response = client.get(f"/rooms/{scene.room}/export.{kind}")
    assert response.status_code == 302
    assert "/login?next=" in response.headers["Location"]


def test_an_archived_room_can_still_be_exported(client, login, scene, app):
    with app.app_context():
        db.session.get(Room, scene.room).is_active = False
        db.session.commit()
    login(scene.member)
    assert client.get(f"/rooms/{scene.room}/export.json").status_code == 200


def test_messages_are_read_in_bounded_batches(scene, ctx):
    sizes = [len(batch) for batch in service.message_batches(scene.room, batch_size=500)]
    assert sizes == [500, 500, len(scene.ids) - 1000]


def test_an_empty_room_exports_valid_json(client, login, app, make_user):
    owner = make_user()
    with app.app_context():
        room = sf.room(owner.id, "Quiet")
    login(owner)
    document = json.loads(client.get(f"/rooms/{room}/export.json").get_data(as_text=True))
    assert document["messages"] == [] and document["room"]["name"] == "Quiet"


def test_the_export_links_partial_points_at_both_downloads(app, scene):
    from flask import render_template_string

    with app.test_request_context():
        html = render_template_string('{% include "export/_export_links.html" %}',
                                      room={"id": scene.room}, allowed={"export": True})
    assert f'href="/rooms/{scene.room}/export.md" download' in html
    assert f'href="/rooms/{scene.room}/export.json" download' in html
