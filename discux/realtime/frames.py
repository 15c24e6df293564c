"""What a socket receives for an event: JSON (`?format=json`) or HTML for the htmx ws extension.

HTML frames are elements that swap out-of-band by id, rendered from the same partials as the
page. A payload is rendered once per *kind* of listener (at most: own message or not × may
delete or not), never once per socket.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from markupsafe import escape

from discux.messages.rendering import MessageView

if TYPE_CHECKING:
    from jinja2 import Environment

    from discux.realtime.hub import Connection

MESSAGE_EVENTS = ("message.created", "message.completed", "message.updated")
# Facts for JSON clients only: the page learns of them from the message posted with them
# (a summary's system message).
JSON_ONLY_EVENTS = ("summary.created",)
EVENT_TYPES = frozenset({
    "message.created", "message.delta", "message.completed", "message.updated",
    "message.deleted", "history.cleared",
    "agent.status", "typing", "presence", "summary.created",
})


def variant(event: dict, conn: Connection) -> tuple | None:
    """Which rendering `conn` needs for `event`; None when it should not get the event at all."""
    kind = event["type"]
    data = event.get("data") or {}
    if kind == "typing" and data.get("user_id") == conn.user_id:
        return None  # nobody needs to be told they are typing
    if conn.fmt == "json":
        return ("json",)
    if kind in JSON_ONLY_EVENTS:
        return None
    if event.get("html") is not None:
        return ("given",)
    if kind in MESSAGE_EVENTS:
        own = data.get("type") == "user" and data.get("sender_id") == conn.user_id
        may_delete = (own and conn.may_delete_own) or conn.may_delete_any
        return ("html", own, bool(may_delete))
    return ("html",)


def render(event: dict, key: tuple, env: Environment) -> str:
    """The payload for listeners of kind `key` (from `variant`)."""
    if key[0] == "json":
        return json_event(event["type"], event["room_id"], event.get("data") or {})
    if key[0] == "given":
        return event["html"]
    kind = event["type"]
    data = event.get("data") or {}
    if kind in MESSAGE_EVENTS:
        view = MessageView.from_payload(data)
        own, may_delete = key[1], key[2]
        if kind in ("message.completed", "message.updated"):
            return message_html(env, view, own, may_delete, oob="outerHTML")
        return append_messages([message_html(env, view, own, may_delete)])
    if kind == "message.delta":
        return (f'<div hx-swap-oob="beforeend:#message-body-{escape(data.get("id", ""))}">'
                f'{escape(data.get("delta", ""))}</div>')
    if kind == "message.deleted":
        return deleted_html(data.get("id", ""))
    if kind == "history.cleared":
        return cleared_html()
    if kind == "typing":
        return ('<div hx-swap-oob="beforeend:#typing-indicator">'
                f'<span class="typing-user" data-user-id="{escape(data.get("user_id", ""))}">'
                f'{escape(data.get("name") or "Someone")} is typing…</span></div>')
    if kind == "presence":
        return env.get_template("messages/_presence.html").render(
            user_id=data.get("user_id", ""), state=data.get("state", "offline"), oob=True
        )
    if kind == "agent.status":
        return (f'<div id="agent-status" class="agent-status" role="status" '
                f'hx-swap-oob="true">{escape(data.get("text") or "")}</div>')
    return ""


def json_event(kind: str, room_id: str, data: dict) -> str:
    """SPEC §9: `{"type", "room_id", "data"}`."""
    return json.dumps({"type": kind, "room_id": room_id, "data": data},
                      ensure_ascii=False, separators=(",", ":"))


def message_html(env: Environment, view: MessageView, own: bool, can_delete: bool,
                 oob: str | None = None) -> str:
    return env.get_template("messages/_message.html").render(
        message=view, own=own, can_delete=can_delete, oob=oob
    )


def deleted_html(message_id: str) -> str:
    """Removes the message from the page."""
    return f'<div id="message-{escape(message_id)}" hx-swap-oob="delete"></div>'


def cleared_html() -> str:
    """Empties the list (the system message saying who cleared it follows as its own event)
    and takes away "Load earlier": there is nothing earlier any more."""
    return ('<div id="messages" hx-swap-oob="innerHTML"></div>'
            '<div hx-swap-oob="delete:#load-earlier"></div>')


def rights_html(may_delete_own: bool, may_delete_any: bool) -> str | None:
    """For an HTML socket whose delete rights shrank: remove the Delete buttons already on the
    page that it may no longer use (messages pushed from now on come without them). Gained
    rights show on messages from now on, and on every message after a reload."""
    if may_delete_any:
        return None
    others = "#messages .message:not(.message-own) .message-delete"
    selector = others if may_delete_own else "#messages .message-delete"
    return f'<div hx-swap-oob="delete:{selector}"></div>'


def append_messages(parts: list[str]) -> str:
    """Messages appended at the end of the list, in order."""
    return '<div hx-swap-oob="beforeend:#messages">' + "".join(parts) + "</div>"
