"""Using an email sign-in link the way a person does: open it, press "Sign in as …"."""

from __future__ import annotations

import html
import re

CONFIRM_FORM = re.compile(r'<form method="post" action="(/login/email/verify)">(.*?)</form>', re.S)


def confirm_form(page: str) -> tuple[str, dict]:
    """The "Sign in as …" form of the page a link opens: its action and hidden fields."""
    action, inner = CONFIRM_FORM.search(page).groups()
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', inner))
    return action, {name: html.unescape(value) for name, value in fields.items()}


def open_sign_in_link(client, link):
    page = client.get(link)
    assert page.status_code == 200, page.get_data(as_text=True)
    action, fields = confirm_form(page.get_data(as_text=True))
    return client.post(action, data=fields)
