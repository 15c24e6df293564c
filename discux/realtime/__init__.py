"""Real time: room events pushed to WebSockets through a broker (in-process or Redis).

Public functions other parts of Discux call:
- `publish(room_id, type, data, html=None)` — push an event to every socket of the room,
- `close_sockets(room_id, user_id=None)` — close sockets of a removed member / a deleted room,
- `presence_states(room_id)` — who is online/away now, for the page's first render.
"""

from __future__ import annotations

from discux.realtime.frames import EVENT_TYPES
from discux.realtime.hub import hub_for

__all__ = ["EVENT_TYPES", "close_sockets", "presence_states", "publish"]


def publish(room_id: str, type: str, data: dict, html: str | None = None) -> None:
    """Push `{"type", "room_id", "data"}` to every open socket of the room, on every worker.

    JSON sockets get the event as is. HTML sockets get `html` when given (the same markup for
    everyone, e.g. a pre-rendered fragment); otherwise a frame rendered from `data` by
    `discux.realtime.frames` (message events carry a message payload, see
    `discux.messages.service.message_payload`). Call it after the database commit; the one
    exception is an agent reply's empty streaming placeholder (`discussion.engine.run_reply`
    announces it while its commit runs, and publishes `message.deleted` if that fails).
    """
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}; one of {sorted(EVENT_TYPES)}")
    hub_for().publish({"type": type, "room_id": room_id, "data": data, "html": html})


def close_sockets(room_id: str, user_id: str | None = None,
                  reason: str = "You are no longer a member of this room.") -> None:
    """Close the room's sockets (only `user_id`'s when given) in every worker.

    Call it after committing the membership change: the closed clients do not reconnect (close
    code 1008), and a reconnect would be refused anyway.
    """
    hub_for().close_sockets(room_id, user_id, 1008, reason)


def presence_states(room_id: str) -> dict[str, str]:
    """`{user_id: "online" | "away"}` for everyone with a socket open in the room (others are
    offline)."""
    return hub_for().presence(room_id)
