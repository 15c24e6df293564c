"""The search page: the form, a page of highlighted results, and links into each room."""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request
from flask_login import current_user

from discux.errors import DiscuxError
from discux.rooms.access import sign_in_required
from discux.search import service
from discux.search.forms import SearchForm

bp = Blueprint("search", __name__)


@bp.get("/search")
@sign_in_required
def index():
    form = SearchForm(request.args, service.searchable_rooms(current_user))
    results = None
    if "q" in request.args:
        try:
            results = service.search_messages(
                current_user,
                form.q.data or "",
                room_id=form.room.data or None,
                order=form.order.data or "relevance",
                before=request.args.get("before") or None,
                page=request.args.get("page", 1, type=int),
            )
        except service.RoomNotFound:
            abort(404)
        except DiscuxError as error:
            field = form[error.field] if error.field in ("q", "order") else form.q
            field.errors = [error.message]
    return render_template("search/index.html", form=form, results=results)
