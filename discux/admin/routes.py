"""The admin page: instance figures, the users list, plans, disabling and enabling users."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from discux import usage
from discux.admin import service
from discux.admin.forms import DailyCapForm, PlanForm, PriceForm
from discux.errors import DiscuxError
from discux.extensions import login_manager
from discux.models import PLANS

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def admins_only():
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if not service.is_admin(current_user):
        abort(404)  # to anyone else, /admin does not exist
    return None


@bp.app_context_processor
def admin_link():
    return {"show_admin_link": service.is_admin(current_user)}


def _list_args() -> dict:
    """The search and page the admin was looking at, to come back to after a change."""
    return {"q": request.args.get("q") or None,
            "page": request.args.get("page", type=int) or None}


@bp.get("")
def index():
    return _admin_page()


def _admin_page(status: int = 200, plan_errors: dict[str, list[str]] | None = None,
                cap_form: DailyCapForm | None = None, price_form: PriceForm | None = None):
    args = _list_args()
    cap = usage.instance_settings().daily_token_cap
    return render_template(
        "admin/index.html",
        users=service.user_page(args["q"] or "", args["page"] or 1),
        figures=service.figures(),
        plans=PLANS,
        plan_errors=plan_errors or {},
        daily_cap=cap,
        cap_form=cap_form or DailyCapForm(formdata=None, daily_token_cap=cap),
        price_form=price_form or PriceForm(formdata=None),
        prices=usage.prices(),
        usage_today=usage.instance_today(),
        usage_by_day=usage.instance_by_day(),
        usage_by_model=usage.instance_by_model(),
    ), status


@bp.post("/usage/cap")
def set_daily_cap():
    form = DailyCapForm()
    if not form.validate_on_submit():
        return _admin_page(422, cap_form=form)
    usage.set_daily_cap(form.daily_token_cap.data)
    flash("Daily token cap removed." if form.daily_token_cap.data is None else
          f"Agents may use {form.daily_token_cap.data:,} tokens a day (UTC) on this instance.",
          "info")
    return redirect(url_for("admin.index", _anchor="usage"), 303)


@bp.post("/usage/prices")
def set_price():
    form = PriceForm()
    if not form.validate_on_submit():
        return _admin_page(422, price_form=form)
    prices = (form.input_usd_per_million.data, form.output_usd_per_million.data)
    try:
        usage.set_price(form.model.data, *(None if p is None else float(p) for p in prices))
    except DiscuxError as error:
        getattr(form, error.field or "model").errors = [error.message]
        return _admin_page(422, price_form=form)
    model = form.model.data.strip()
    flash(f"{model} has no price now: its calls show tokens only." if prices == (None, None)
          else f"{model} is priced from now on.", "info")
    return redirect(url_for("admin.index", _anchor="usage"), 303)


@bp.post("/users/<user_id>/plan")
def change_plan(user_id: str):
    form = PlanForm()
    if not form.validate_on_submit():
        service.user_by_id(user_id)  # 404 for a user that is not there
        return _admin_page(422, plan_errors={user_id: form.plan.errors})
    user = service.change_plan(current_user, user_id, form.plan.data)
    flash(f"{user.email} is now on the {user.subscription} plan.", "info")
    return redirect(url_for("admin.index", **_list_args()), 303)


@bp.get("/users/<user_id>/disable")
def confirm_disable(user_id: str):
    return _disable_page(service.user_by_id(user_id))


def _disable_page(user, status: int = 200, refusal: str | None = None):
    if refusal is None:
        try:
            service.check_may_disable(current_user, user)
        except DiscuxError as error:
            refusal = error.message
    return render_template("admin/disable.html", user=user, refusal=refusal), status


@bp.post("/users/<user_id>/disable")
def disable(user_id: str):
    user = service.user_by_id(user_id)
    try:
        service.disable_user(current_user, user_id)
    except DiscuxError as error:
        return _disable_page(user, 403, error.message)
    flash(f"{user.email} is disabled: their sessions and API tokens are refused from now on.",
          "info")
    return redirect(url_for("admin.index"), 303)


@bp.post("/users/<user_id>/enable")
def enable(user_id: str):
    user = service.enable_user(user_id, current_user)
    flash(f"{user.email} is enabled again and may sign in.", "info")
    return redirect(url_for("admin.index", **_list_args()), 303)
