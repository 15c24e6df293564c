"""Sending sign-in links: over SMTP when DISCUX_SMTP_URL is set, else into the log."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from flask import current_app


def send_sign_in_link(email: str, link: str) -> None:
    smtp_url = current_app.config.get("DISCUX_SMTP_URL")
    if not smtp_url:
        # No mail server: the operator reads the link in the server log (demo and laptops).
        current_app.logger.warning("Sign-in link for %s (no SMTP configured): %s", email, link)
        return
    message = EmailMessage()
    message["Subject"] = "Your Discux sign-in link"
    message["From"] = current_app.config["DISCUX_MAIL_FROM"]
    message["To"] = email
    message.set_content(
        f"Open this link to sign in to Discux:\n\n{link}\n\n"
        "It works once and expires in 24 hours. If you did not ask for it, ignore this email."
    )
    parts = urlsplit(smtp_url)
    port = parts.port or (465 if parts.scheme == "smtps" else 587)
    smtp_class = smtplib.SMTP_SSL if parts.scheme == "smtps" else smtplib.SMTP
    with smtp_class(parts.hostname, port, timeout=10) as smtp:
        if parts.scheme == "smtp+starttls":
            smtp.starttls()
        if parts.username:
            smtp.login(unquote(parts.username), unquote(parts.password or ""))
        smtp.send_message(message)
