from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, url_for
from flask_login import current_user, login_required

from discux import plans
from discux.auth.sessions import sessions_of, sign_out_other_sessions

bp = Blueprint("settings", __name__, url_prefix="/settings")


@bp.get("")
@login_required
def index():
    return render_template(
        "settings/index.html",
        sessions=sessions_of(current_user),
        current_session=getattr(g, "current_session", None),
        usage={
            "agents": plans.agents_used(current_user),
            "rooms": plans.active_rooms_used(current_user),
            "messages": plans.messages_used_this_month(current_user),
        },
        unlimited=plans.UNLIMITED,
    )


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
