"""Markdown renders once, safely: hostile text is stored, shown and pushed inert."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from discux.messages.rendering import render_markdown
from tests.support.chat_factories import World, wait_until_sockets_closed
from tests.support.ws_client import Member, connect, wait_for_event, wait_for_text

XSS_CORPUS = [
    "<script>alert(1)</script>",
    "[click me](javascript:alert(1))",
    "[click me](JaVaScRiPt:alert(1))",
    "<img src=x onerror=alert(1)>",
    '<a href="#" hx-get="/settings" hx-trigger="load">x</a>',
    '<div data-hx-post="/rooms" data-hx-trigger="load">x</div>',
    "<svg onload=alert(1)>",
    '<iframe src="javascript:alert(1)"></iframe>',
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    '<a href="https://x.example" onclick="alert(1)">x</a>',
    "```\n</code></pre><script>alert(1)</script>\n```",
    '<style>body{display:none}</style>',
    "![x](https://x.example/a.png\" onerror=\"alert(1))",
]
SAFE_TAGS = {"p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "blockquote", "ul",
             "ol", "li", "a", "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr",
             "th", "td", "span"}


class Inspector(HTMLParser):
    """Every element and attribute of a fragment, as a browser would parse it."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def dangers(html: str, frame_tags: frozenset = frozenset()) -> list[str]:
    """What in `html` could run script or drive htmx (empty when inert)."""
    inspector = Inspector()
    inspector.feed(html)
    found = []
    for tag, attrs in inspector.tags:
        if tag in frame_tags:
            continue
        if tag not in SAFE_TAGS:
            found.append(f"<{tag}>")
        for name, value in attrs.items():
            if name.startswith(("on", "hx-", "data-hx-", "style", "src")):
                found.append(f"{tag}[{name}]")
            if name == "href" and not re.match(r"^(https?:|mailto:)", value or "", re.I):
                found.append(f"{tag}[href={value}]")
    return found


@pytest.mark.parametrize("payload", XSS_CORPUS)
def test_hostile_markdown_renders_inert(payload):
    html = render_markdown(payload)
    assert dangers(html) == [], html


def test_links_get_noopener_nofollow():
    assert render_markdown("[docs](https://example.com/docs)") == (
        '<p><a href="https://example.com/docs" rel="noopener nofollow">docs</a></p>\n')


def test_code_blocks_are_highlighted_with_pygments():
    html = render_markdown("```python\ndef f():\n    return 1\n```")
    assert html.startswith("<pre><code>") and '<span class="k">def</span>' in html


def test_newlines_typed_in_the_composer_stay_line_breaks():
    assert render_markdown("first line\nsecond line") == "<p>first line<br>\nsecond line</p>\n"


@pytest.fixture
def world(app):
    world = World(app)
    yield world
    wait_until_sockets_closed(app)


def test_hostile_messages_arrive_inert_in_pushed_frames(live_server, world):
    json_socket = connect(live_server.url, world.room_id, world.member.token)
    wait_for_event(json_socket, lambda e: e["type"] == "presence")
    html_socket = connect(live_server.url, world.room_id, world.admin.token, fmt=None)
    wait_for_text(html_socket, f'data-user-id="{world.admin.id}"')
    poster = Member(live_server.url, world.owner.token)
    for n, payload in enumerate(XSS_CORPUS):
        assert poster.post(world.room_id, f"payload {n}: {payload}").status_code == 200
        event = wait_for_event(json_socket, lambda e, n=n: e["type"] == "message.created"
                               and e["data"]["content"].startswith(f"payload {n}:"))
        assert dangers(event["data"]["content_html"]) == [], event["data"]["content_html"]
        frame = wait_for_text(html_socket, f"payload {n}:")
        # The frame's own markup (placement, header) is ours; the message body must be inert.
        body = frame.split(" hx-disable>", 1)[1].rsplit("</div>", 3)[0]
        assert dangers(body) == [], frame
    json_socket.close()
    html_socket.close()


def test_hostile_message_is_inert_in_the_stored_html_and_json(app, live_server, world):
    poster = Member(live_server.url, world.owner.token)
    poster.post(world.room_id, XSS_CORPUS[0] + " " + XSS_CORPUS[4])
    from discux.extensions import db
    from discux.models import Message

    with app.app_context():
        stored = db.session.query(Message).filter_by(room_id=world.room_id).one()
        assert stored.content == XSS_CORPUS[0] + " " + XSS_CORPUS[4]  # the text as typed
        assert dangers(stored.content_html) == []
        assert json.loads(json.dumps(stored.content_html)) == stored.content_html
