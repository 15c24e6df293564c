"""The room's status line ("1 of 2 answering", "Summarizing…"): one way to publish it, so every
socket kind gets it, HTML sockets with its rendered fragment."""

from __future__ import annotations

from flask import render_template

from discux.realtime import publish


def publish_status(room_id: str, status: dict) -> None:
    """Tell the room what the agents are doing (the "N of M answering" line)."""
    html = render_template("discussion/_status.html", status=status, room_id=room_id, oob=True,
                           csrf=None)
    publish(room_id, "agent.status", status, html=html)
