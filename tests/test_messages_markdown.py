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


def _samples(count: int, seed: int) -> list[str]:
    """Chat-like lines and random strings over every ASCII character plus tricky Unicode."""
    import random
    import string

    rng = random.Random(seed)
    tricky = ["é", "日本", "🧑\u200d💻", "\u00a0", "\u2028", "\u200b", "\t", "\n", "\r", "\x0c",
              "١", "１", "«", "»", "’", "…", "\ufeff"]
    alphabet = list(string.printable) + tricky
    words = ["ship", "the", "beta", "on", "Friday", "AI", "UX", "ok?", "1.", "2)", "3", "yes,",
             "@Nova", "a@b.example", "http://x.example/a?b=1", '"quoted"', "it's", "100%",
             "4.5", ":)", "$5", "{x}", "^", "  ", "e.g.", "#1", "x_y", "**b**", "-", "end."]
    out = []
    for n in range(count):
        if n % 2:
            out.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30))))
        else:
            line = " ".join(rng.choice(words) for _ in range(rng.randint(1, 12)))
            out.append(line if rng.random() < 0.7 else rng.choice(["1", "1. ", " ", ""]) + line)
    return out


def test_plain_text_fast_path_renders_exactly_what_markdown_it_renders():
    """Text with no Markdown syntax skips the parser; for every input the stored HTML is the
    same as the parser's, sanitized (on the fast path and off it)."""
    from markdown_it.common.utils import escapeHtml

    from discux.messages.rendering import _markdown, is_plain_text, sanitize_html

    samples = _samples(30_000, seed=8)
    plain = 0
    for text in samples:
        if is_plain_text(text):
            plain += 1
            # What the fast path hands the sanitizer is exactly what markdown-it returns.
            assert _markdown.render(text) == f"<p>{escapeHtml(text)}</p>\n", repr(text)
        assert render_markdown(text) == sanitize_html(_markdown.render(text)), repr(text)
    assert plain > 2_000  # the fast path was really exercised


@pytest.mark.parametrize("text", ["1. first", "2) second", "# title", "> quote", "- item",
                                  "a  b", " indented", "x\ty", "line\nbreak", "a & b", "<b>",
                                  "**bold**", "snake_case", "~~gone~~", "[a](b)", "`c`", "===",
                                  "| a |", "\\*", "&amp;", "1."])
def test_text_with_markdown_syntax_goes_through_the_parser(text):
    from discux.messages.rendering import is_plain_text

    if text not in ("a  b",):
        assert not is_plain_text(text)
    assert "<script" not in render_markdown(text)
