"""Absolute links the app hands out (sign-in emails, invitations, OAuth callbacks).

They come from DISCUX_BASE_URL, never from the request's Host header, which any client
chooses: a link built from it could send a victim's sign-in token to an attacker's host."""

from __future__ import annotations

from flask import current_app, request, url_for


def external_url(endpoint: str, **values) -> str:
    base_url = current_app.config.get("DISCUX_BASE_URL")
    if not base_url:
        # Only demo mode runs without DISCUX_BASE_URL (config refuses to start otherwise).
        base_url = request.host_url.rstrip("/")
    return base_url + url_for(endpoint, **values)
