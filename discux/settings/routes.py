from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, url_for
from flask_login import current_user, login_required

from discux import plans, usage
from discux.api import tokens as api_tokens
from discux.api.forms import ApiTokenForm
from discux.auth.sessions import sessions_of, sign_out_other_sessions
from discux.errors import DiscuxError
from discux.extensions import db, limiter
from discux.llm.base import LLMError, Usage, estimate_tokens
from discux.llm.registry import get_provider
from discux.notifications.routes import notification_settings

bp = Blueprint("settings", __name__, url_prefix="/settings")


@bp.get("")
@login_required
def index():
    return _settings_page()


def _settings_page(status: int = 200, token_form: ApiTokenForm | None = None,
                   new_api_token: str | None = None):
    return render_template(
        "settings/index.html",
        api_tokens=api_tokens.tokens_of(current_user),
        token_form=token_form or ApiTokenForm(formdata=None),
        new_api_token=new_api_token,
        sessions=sessions_of(current_user),
        current_session=getattr(g, "current_session", None),
        usage={
            "agents": plans.agents_used(current_user),
            "rooms": plans.active_rooms_used(current_user),
            "messages": plans.messages_used_this_month(current_user),
        },
        unlimited=plans.UNLIMITED,
        token_usage=usage.user_this_month(current_user.id),
        unlimited_tokens=plans.UNLIMITED_TOKENS,
        provider=get_provider(),
        notifications=notification_settings(current_user),
    ), status


@bp.post("/llm/test")
@login_required
@limiter.limit("6/minute")
def test_connection():
    """Ask the active provider for a one-word answer and say how it went."""
    provider = get_provider()
    prompt = [{"role": "user", "content": "Reply with the single word: ready"}]
    call = usage.Call("test", provider.default_model, estimate_tokens(prompt[0]["content"]),
                      user_id=current_user.id)
    reported = Usage()
    try:
        answer = provider.complete(prompt, model=None, temperature=0.0, max_tokens=5,
                                   usage=reported)
    except LLMError as error:
        flash(f"{provider.label} did not answer: {error.message}.", "error")
    else:
        usage.settle(call, usage.figures_of(call, reported, answer))
        db.session.commit()
        flash(f"{provider.label} answered: {answer.strip()[:80] or '(an empty reply)'}", "info")
    return redirect(url_for("settings.index") + "#model", 303)


@bp.post("/sessions/sign-out-others")
@login_required
def sign_out_others():
    count = sign_out_other_sessions(current_user)
    flash(
        f"Signed out {count} other session{'s' if count != 1 else ''}." if count
        else "There were no other sessions to sign out.",
        "info",
    )
    return redirect(url_for("settings.index"), 303)


@bp.post("/tokens")
@login_required
@limiter.limit("20/hour")
def create_api_token():
    form = ApiTokenForm()
    if not form.validate_on_submit():
        return _settings_page(400, token_form=form)
    try:
        _, raw_token = api_tokens.create_token(current_user, form.name.data)
    except DiscuxError as error:
        form.name.errors = [error.message]
        return _settings_page(422, token_form=form)
    # Only the hash is stored: this page is the one time the token can be seen.
    return _settings_page(201, new_api_token=raw_token)


@bp.post("/tokens/<token_id>/revoke")
@login_required
def revoke_api_token(token_id: str):
    token = api_tokens.revoke_token(current_user, token_id)
    flash(f"Token “{token.name}” revoked: anything still using it is refused from now on.",
          "info")
    return redirect(url_for("settings.index", _anchor="api-tokens"), 303)
