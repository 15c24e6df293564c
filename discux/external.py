"""Absolute links the app hands out (sign-in emails, invitations, OAuth callbacks).

They come from DISCUX_BASE_URL, never from the request's Host header, which any client
chooses: a link built from it could send a victim's sign-in token to an attacker's host.
Config refuses to start without DISCUX_BASE_URL outside demo mode, and Flask's TRUSTED_HOSTS
(discux/config.py finish_config) answers 400 to requests naming another host."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, request, url_for


def site_url() -> str:
    """The site's address without a trailing slash: DISCUX_BASE_URL, or in demo mode without
    one the request's own (its Host is one of config.DEMO_HOSTS, TRUSTED_HOSTS saw to that)."""
    base_url = current_app.config.get("DISCUX_BASE_URL")
    return (base_url or request.host_url).rstrip("/")


def site_origin() -> str:
    """scheme://host[:port] of the site, as a browser's Origin header names it."""
    parts = urlsplit(site_url())
    return f"{parts.scheme}://{parts.netloc}".lower()


def external_url(endpoint: str, **values) -> str:
    return site_url() + url_for(endpoint, **values)
