"""Sign-in pages: demo, email link, OAuth/OIDC providers, and sign-out."""

from __future__ import annotations

from functools import partial
from urllib.parse import urlsplit

import click
from authlib.integrations.base_client.errors import OAuthError
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required
from joserfc.errors import JoseError

from discux.auth import links, mail, providers
from discux.auth.accounts import normalize_email, user_for_email, user_for_oauth_identity
from discux.auth.forms import DemoSignInForm, EmailLinkForm
from discux.auth.sessions import end_session, start_session
from discux.errors import DiscuxError
from discux.extensions import db, limiter
from discux.external import external_url

bp = Blueprint("auth", __name__, cli_group="auth")


def safe_next(target: str | None) -> str:
    """Only same-site paths: no scheme, no host, no protocol-relative or backslash tricks."""
    if not target:
        return url_for("main.index")
    parts = urlsplit(target)
    if (parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//")
            or "\\" in target or any(ord(c) < 32 for c in target)):
        return url_for("main.index")
    return target


def _render_login(demo_form=None, email_form=None, status=200):
    next_url = request.values.get("next", "")
    demo_form = demo_form or DemoSignInForm(next=next_url)
    email_form = email_form or EmailLinkForm(next=next_url)
    return render_template(
        "auth/login.html",
        demo_form=demo_form,
        email_form=email_form,
        providers=providers.configured_providers(),
        next_url=next_url,
    ), status


@bp.get("/login")
def login():
    if current_user.is_authenticated:
        return redirect(safe_next(request.args.get("next")))
    return _render_login()


@bp.post("/login/demo")
@limiter.limit("20/minute")
def demo_login():
    if not current_app.config["DISCUX_DEV_LOGIN"]:
        abort(404)
    form = DemoSignInForm()
    if not form.validate_on_submit():
        return _render_login(demo_form=form, status=422)
    user = user_for_email(form.email.data, form.name.data)
    start_session(user)
    return redirect(safe_next(form.next.data), 303)


@bp.post("/login/email")
@limiter.limit("5/minute")
def email_login():
    form = EmailLinkForm()
    if not form.validate_on_submit():
        return _render_login(email_form=form, status=422)
    email = normalize_email(form.email.data)
    raw_token = links.issue_sign_in_token(email)
    link = external_url(
        "auth.email_verify", token=raw_token, email=email, next=safe_next(form.next.data),
    )
    ticket = mail.outbox().send_sign_in_link(
        email, link, on_failure=partial(links.withdraw_sign_in_token, email, raw_token)
    )
    return render_template("auth/check_email.html", email=email, ticket=ticket,
                           state=mail.SENDING)


@bp.get("/login/email/sent")
@limiter.limit("120/minute")
def email_sent_status():
    """Whether the email of a ticket went out: the "check your email" page polls this."""
    ticket = request.args.get("ticket", "")
    state = mail.outbox().status(ticket) or "unknown"
    if request.headers.get("HX-Request"):
        return render_template("auth/_send_status.html", ticket=ticket, state=state)
    return render_template("auth/check_email.html", email=None, ticket=ticket, state=state)


def _unusable_link(error: DiscuxError):
    response = make_response(
        render_template("auth/confirm_sign_in.html", message=error.message), error.status)
    return _private(response)


def _private(response):
    # The page's address holds a live token: keep it out of caches and Referer headers. The
    # origin alone still goes with the confirm POST: over https Flask-WTF refuses one without it.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "strict-origin"
    return response


@bp.get("/login/email/verify")
@limiter.limit("20/minute")
def email_verify():
    """Opening the link spends nothing (mail scanners open links too): it asks to confirm."""
    email, token = request.args.get("email", ""), request.args.get("token", "")
    try:
        links.check_sign_in_token(email, token)
    except DiscuxError as error:
        return _unusable_link(error)
    return _private(make_response(render_template(
        "auth/confirm_sign_in.html", email=normalize_email(email), token=token,
        next_url=safe_next(request.args.get("next")),
    )))


@bp.post("/login/email/verify")
@limiter.limit("20/minute")
def email_verify_confirm():
    try:
        email = links.consume_sign_in_token(
            request.form.get("email", ""), request.form.get("token", "")
        )
    except DiscuxError as error:
        return _unusable_link(error)
    user = user_for_email(email, verified=True)
    start_session(user)
    return redirect(safe_next(request.form.get("next")), 303)


@bp.get("/login/<provider>")
@limiter.limit("20/minute")
def oauth_start(provider: str):
    if provider not in {p.key for p in providers.configured_providers()}:
        abort(404)
    client = providers.oauth_registry().create_client(provider)
    redirect_uri = external_url("auth.oauth_callback", provider=provider)
    session["login_next"] = safe_next(request.args.get("next"))
    return client.authorize_redirect(redirect_uri)


@bp.get("/auth/<provider>/callback")
@limiter.limit("20/minute")
def oauth_callback(provider: str):
    configured = {p.key: p.label for p in providers.configured_providers()}
    if provider not in configured:
        abort(404)
    label = configured[provider]
    if request.args.get("error"):
        denied = request.args.get("error") == "access_denied"
        flash(
            f"Sign-in with {label} was cancelled." if denied
            else f"{label} refused the sign-in: {request.args.get('error_description') or request.args['error']}.",
            "error",
        )
        return redirect(url_for("auth.login"))
    client = providers.oauth_registry().create_client(provider)
    try:
        token = client.authorize_access_token()
        identity = providers.identity_from_token(provider, token)
        user = user_for_oauth_identity(identity, label)
        start_session(user)
    except (OAuthError, JoseError) as error:
        reason = getattr(error, "error", None) or type(error).__name__
        current_app.logger.warning("OAuth sign-in with %s failed: %s", provider, reason)
        flash(f"Sign-in with {label} failed ({reason}). Please try again.", "error")
        return redirect(url_for("auth.login"))
    except DiscuxError as error:
        flash(error.message, "error")  # e.g. an unverified email, or a disabled account
        return redirect(url_for("auth.login"))
    return redirect(safe_next(session.pop("login_next", None)), 303)


@bp.post("/logout")
@login_required
def logout():
    end_session()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"), 303)


@bp.cli.command("purge-tokens")
def purge_tokens_command() -> None:
    """Delete email sign-in links whose 24 hours have passed."""
    count = links.purge_expired_tokens()
    db.session.commit()
    click.echo(f"Deleted {count} expired sign-in link{'s' if count != 1 else ''}.")
