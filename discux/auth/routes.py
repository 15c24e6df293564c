"""Sign-in pages: demo, email link, OAuth/OIDC providers, and sign-out."""

from __future__ import annotations

from urllib.parse import urlsplit

from authlib.integrations.base_client.errors import OAuthError
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required
from joserfc.errors import JoseError

from discux.auth import links, mail, providers
from discux.auth.accounts import user_for_email, user_for_oauth_identity
from discux.auth.forms import DemoSignInForm, EmailLinkForm
from discux.auth.sessions import end_session, start_session
from discux.errors import DiscuxError
from discux.extensions import limiter
from discux.external import external_url

bp = Blueprint("auth", __name__)


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
    raw_token = links.issue_sign_in_token(form.email.data)
    link = external_url(
        "auth.email_verify", token=raw_token, email=form.email.data.strip().lower(),
        next=safe_next(form.next.data),
    )
    try:
        mail.send_sign_in_link(form.email.data, link)
    except OSError:
        current_app.logger.exception("Could not send the sign-in email")
        form.email.errors.append("We could not send the email right now. Try again shortly.")
        return _render_login(email_form=form, status=503)
    return render_template("auth/check_email.html", email=form.email.data)


@bp.get("/login/email/verify")
@limiter.limit("20/minute")
def email_verify():
    try:
        email = links.consume_sign_in_token(
            request.args.get("email", ""), request.args.get("token", "")
        )
    except DiscuxError as error:
        flash(error.message, "error")
        return redirect(url_for("auth.login"))
    user = user_for_email(email, verified=True)
    start_session(user)
    return redirect(safe_next(request.args.get("next")), 303)


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
    except (OAuthError, JoseError) as error:
        reason = getattr(error, "error", None) or type(error).__name__
        current_app.logger.warning("OAuth sign-in with %s failed: %s", provider, reason)
        flash(f"Sign-in with {label} failed ({reason}). Please try again.", "error")
        return redirect(url_for("auth.login"))
    except DiscuxError as error:
        flash(error.message, "error")
        return redirect(url_for("auth.login"))
    start_session(user)
    return redirect(safe_next(session.pop("login_next", None)), 303)


@bp.post("/logout")
@login_required
def logout():
    end_session()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"), 303)
