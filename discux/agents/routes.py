from __future__ import annotations

import json
import time
from dataclasses import dataclass

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user, login_required
from wtforms.fields.choices import SelectChoice

from discux import plans, usage
from discux.agents import service, stats, suggestions
from discux.agents.forms import AddToRoomForm, AgentForm, CopyAgentForm, SuggestForm
from discux.agents.service import InvalidAgent
from discux.agents.styles import STYLE_TABLE, style_for
from discux.errors import DiscuxError, LimitReached, error_response
from discux.extensions import db, limiter
from discux.llm import LLMError, get_provider, mean_probability
from discux.llm.base import Usage, estimate_tokens
from discux.models import Agent, Room
from discux.rooms.service import add_agent_to_room

bp = Blueprint("agents", __name__, url_prefix="/agents")



def _per_user() -> str:
    return f"user:{current_user.get_id()}" if current_user.is_authenticated else request.remote_addr


# Each try costs a model call: one budget per person across new and existing agents.
try_limit = limiter.shared_limit("10/minute", scope="agents-try", key_func=_per_user)
# A suggestion is a long model call: fewer per person than tries.
suggest_limit = limiter.limit("6/minute", key_func=_per_user, methods=["POST"])


@bp.app_template_filter("agent_color")
def agent_color(value) -> str:
    """A colour safe for a style attribute: the agent's (or string's) when well formed."""
    color = getattr(value, "color", value)
    if isinstance(color, str) and service.COLOR_SHAPE.fullmatch(color):
        return color.upper()
    return service.DEFAULT_COLOR


def _own_or_404(agent_id: str) -> Agent:
    return service.own_agent(current_user, agent_id) or abort(404)


def _visible_or_404(agent_id: str) -> Agent:
    return service.visible_agent(current_user, agent_id) or abort(404)


def _model_options(provider) -> list[str]:
    if provider.is_demo:
        return []
    try:
        return provider.list_models()
    except LLMError:
        return []  # the form still works; the model field takes free text


def _form_page(template: str, form: AgentForm, status: int = 200, **context):
    provider = get_provider()
    return render_template(
        template,
        form=form,
        provider=provider,
        model_options=_model_options(provider),
        emoji_presets=service.EMOJI_PRESETS,
        color_presets=service.COLOR_PRESETS,
        styles=STYLE_TABLE,
        **context,
    ), status


def _agent_page(agent: Agent, form: AgentForm | None = None, status: int = 200, **context):
    """The agent page: stats for everyone who may see it, the edit form for its owner."""
    owner = agent.created_by == current_user.id
    if owner and form is None:
        form = AgentForm(obj=agent)
        form.color.data = agent.color or service.DEFAULT_COLOR
    return _form_page(
        "agents/show.html",
        form,
        status,
        agent=agent,
        owner=owner,
        stats=stats.agent_stats(agent, current_user),
        agent_usage=usage.agent_this_month(agent.id),
        **context,
    )


def _usage() -> dict:
    return {
        "used": plans.agents_used(current_user),
        "limit": current_user.max_agents,
        "unlimited": current_user.max_agents >= plans.UNLIMITED,
        "plan": current_user.subscription,
    }


@bp.get("")
@login_required
def index():
    return render_template(
        "agents/index.html", agents=service.agents_of(current_user), usage=_usage(),
        styles=STYLE_TABLE,
    )


@bp.route("/new", methods=["GET", "POST"])
@login_required
def new():
    form = AgentForm()
    usage = _usage()
    if request.method == "GET":
        return _form_page("agents/form.html", form, usage=usage)
    if not form.validate():
        return _form_page("agents/form.html", form, 422, usage=usage)
    try:
        agent = service.create_agent(current_user, form.fields())
    except InvalidAgent as error:
        form.show_problems(error.problems)
        return _form_page("agents/form.html", form, 422, usage=usage)
    except LimitReached as error:
        return _form_page("agents/form.html", form, error.status, usage=usage,
                          limit_message=error.message)
    flash(f"{agent.emoji} {agent.name} is ready. Add it to a room to hear from it.", "info")
    return redirect(url_for("agents.show", agent_id=agent.id), 303)


@bp.get("/gallery")
@login_required
def gallery():
    style = request.args.get("style") or None
    search = (request.args.get("q") or "").strip()[:100]
    return render_template(
        "agents/gallery.html",
        agents=service.public_agents(style=style, search=search),
        style=style if style in STYLE_TABLE else None,
        search=search,
        styles=STYLE_TABLE,
        limit=service.GALLERY_LIMIT,
    )


@bp.route("/<agent_id>", methods=["GET", "POST"])
@login_required
def show(agent_id: str):
    if request.method == "GET":
        return _agent_page(_visible_or_404(agent_id))
    agent = _own_or_404(agent_id)
    form = AgentForm()
    if not form.validate():
        return _agent_page(agent, form, 422)
    try:
        service.update_agent(agent, form.fields())
    except InvalidAgent as error:
        db.session.rollback()
        form.show_problems(error.problems)
        return _agent_page(agent, form, 422)
    flash("Changes saved. Past messages keep the name and look they were sent with.", "info")
    return redirect(url_for("agents.show", agent_id=agent.id), 303)


@bp.route("/<agent_id>/delete", methods=["GET", "POST"])
@login_required
def delete(agent_id: str):
    agent = _own_or_404(agent_id)
    if request.method == "GET":
        return render_template(
            "agents/delete.html", agent=agent, form=CopyAgentForm(),
            stats=stats.agent_stats(agent, current_user),
        )
    name = agent.name
    service.delete_agent(agent)
    flash(f"Deleted {name}. Its past messages stay in their rooms under that name.", "info")
    return redirect(url_for("agents.index"), 303)


@bp.get("/<agent_id>/use")
@login_required
def use(agent_id: str):
    agent = _visible_or_404(agent_id)
    return _use_page(agent)


def _use_page(agent: Agent, status: int = 200, room_error: str | None = None,
              copy_error: str | None = None):
    choices = service.room_choices(current_user, agent)
    form = AddToRoomForm()
    form.room_id.choices = [SelectChoice(c.room.id, c.room.name) for c in choices if c.available]
    if room_error:
        form.room_id.errors = [room_error]
    return render_template(
        "agents/use.html", agent=agent, choices=choices, form=form, copy_form=CopyAgentForm(),
        usage=_usage(), copy_error=copy_error, styles=STYLE_TABLE,
    ), status


@bp.post("/<agent_id>/add-to-room")
@login_required
def add_to_room(agent_id: str):
    agent = _visible_or_404(agent_id)
    room = db.session.get(Room, request.form.get("room_id") or "")
    if room is None:
        abort(404)
    try:
        add_agent_to_room(current_user, room, agent)
    except DiscuxError as error:
        if error.status == 404:
            abort(404)
        return _use_page(agent, 403 if error.status == 403 else 422, room_error=error.message)
    flash(f"Added {agent.emoji} {agent.name} to {room.name}.", "info")
    if "rooms.show" in current_app.view_functions:
        return redirect(url_for("rooms.show", room_id=room.id), 303)
    return redirect(url_for("agents.use", agent_id=agent.id), 303)


@bp.post("/<agent_id>/copy")
@login_required
def copy(agent_id: str):
    source = _visible_or_404(agent_id)
    try:
        agent = service.copy_agent(current_user, source)
    except LimitReached as error:
        return _use_page(source, error.status, copy_error=error.message)
    flash(f"Copied {source.name} into your agents. The copy is yours to edit.", "info")
    return redirect(url_for("agents.show", agent_id=agent.id), 303)


# ---- Try it: a one-off reply from the unsaved persona and style ----

@dataclass(frozen=True)
class TryReply:
    text: str
    error: str | None
    seconds: float
    confidence: float | None
    figures: usage.Figures | None = None


def _wants_stream() -> bool:
    return request.accept_mimetypes.best == "text/event-stream"


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def _run_try(form: AgentForm, agent: Agent | None, template: str, **context):
    fields = form.fields().cleaned()
    message = form.try_message.data or ""
    problems = service.try_problems(message, fields.model)
    if problems:
        if _wants_stream():
            field, text = next(iter(problems.items()))
            return error_response(422, text, code="invalid", field=field)
        form.show_problems(problems)
        return _try_page(form, agent, template, 422, **context)
    provider = get_provider()
    style = style_for(fields.style)
    chat = service.try_messages(fields, message)
    call = usage.Call("try", fields.model or provider.default_model,
                      sum(estimate_tokens(m["content"]) for m in chat), user_id=current_user.id,
                      agent_id=agent.id if agent is not None else None)
    try:
        usage.reserve(call, usage.budget_facts(None, current_user.id), style.max_tokens,
                      who="Try it")
    except usage.BudgetSpent as refusal:
        if _wants_stream():
            return error_response(refusal.status, refusal.message, code=refusal.code,
                                  field="try_message")
        form.show_problems({"try_message": refusal.message})
        return _try_page(form, agent, template, refusal.status, **context)
    reported = Usage()
    stream_args = {
        "model": fields.model, "temperature": style.temperature, "max_tokens": style.max_tokens,
        "usage": reported,
    }
    if _wants_stream():
        # The stream can take a while: give the database connection back first.
        db.session.close()

        def events():
            started = time.monotonic()
            logprobs: list[float] = []
            pieces: list[str] = []
            yield _sse("start", {"provider": provider.label, "demo": provider.is_demo})
            try:
                for delta in provider.stream_chat(chat, **stream_args):
                    logprobs.extend(delta.logprobs)
                    if delta.text:
                        pieces.append(delta.text)
                        yield _sse("delta", {"text": delta.text})
            except LLMError as error:
                settle_try(call, reported, "".join(pieces), logprobs, failed=not pieces)
                yield _sse("error", {"message": f"No reply: {error.message}."})
                return
            figures = settle_try(call, reported, "".join(pieces), logprobs)
            yield _sse("done", {
                "seconds": round(time.monotonic() - started, 2),
                "confidence": mean_probability(logprobs),
                "usage": usage.figures_shape(figures),
            })

        return Response(
            stream_with_context(events()),
            mimetype="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    started = time.monotonic()
    pieces: list[str] = []
    logprobs: list[float] = []
    error_text = None
    try:
        for delta in provider.stream_chat(chat, **stream_args):
            pieces.append(delta.text)
            logprobs.extend(delta.logprobs)
    except LLMError as error:
        error_text = f"No reply: {error.message}."
    figures = settle_try(call, reported, "".join(pieces), logprobs,
                         failed=bool(error_text) and not "".join(pieces))
    reply = TryReply("".join(pieces), error_text, round(time.monotonic() - started, 2),
                     mean_probability(logprobs), figures)
    return _try_page(form, agent, template, 200, try_reply=reply, **context)


def settle_try(call: usage.Call, reported: Usage, text: str, logprobs: list[float],
               failed: bool = False) -> usage.Figures:
    """Count what Try it used (the provider's figures, or an estimate) and commit it."""
    figures = usage.figures_of(call, reported, text, len(logprobs) or None,
                               prompt_sent=not failed)
    usage.settle(call, figures)
    db.session.commit()
    return figures


def _try_page(form, agent, template, status, **context):
    if agent is not None:
        return _agent_page(agent, form, status, **context)
    return _form_page(template, form, status, usage=_usage(), **context)


@bp.post("/new/try")
@login_required
@try_limit
def try_new():
    return _run_try(AgentForm(), None, "agents/form.html")


@bp.post("/<agent_id>/try")
@login_required
@try_limit
def try_existing(agent_id: str):
    agent = _own_or_404(agent_id)
    return _run_try(AgentForm(), agent, "agents/show.html")


# ---- Suggest agents: three proposals from a stated goal, each kept with one click ----

def _suggestion_card(index: int, fields: service.AgentFields) -> AgentForm:
    """The editable form of proposal `index`; its fields are prefixed so three fit a page."""
    return AgentForm(prefix=f"s{index}", formdata=None, data={
        "name": fields.name, "prompt": fields.prompt, "emoji": fields.emoji,
        "color": fields.color, "style": fields.style,
    })


def _suggest_page(form: SuggestForm, status: int = 200, **context):
    return render_template("agents/suggest.html", form=form, usage=_usage(), styles=STYLE_TABLE,
                           provider=get_provider(), **context), status


def _count_suggestion_call(provider):
    """Each model call of a suggestion goes in the usage ledger, for the person who asked."""
    user_id = current_user.id

    def count(messages, text: str, reported: Usage) -> None:
        call = usage.Call("generator", provider.default_model,
                          sum(estimate_tokens(m["content"]) for m in messages), user_id=user_id)
        usage.settle(call, usage.figures_of(call, reported, text))
        db.session.commit()

    return count


@bp.route("/suggest", methods=["GET", "POST"])
@login_required
@suggest_limit
def suggest():
    form = SuggestForm()
    if request.method == "GET":
        return _suggest_page(form)
    if not form.validate_on_submit():
        return _suggest_page(form, 422)
    if problem := suggestions.goal_problem(form.goal.data or ""):
        form.goal.errors = [problem]
        return _suggest_page(form, 422)
    try:
        usage.check_can_start(None, user_id=current_user.id, who="Suggest agents")
    except usage.BudgetSpent as refusal:
        form.goal.errors = [refusal.message]
        return _suggest_page(form, refusal.status)
    db.session.rollback()  # end the read transaction: the model may take a while
    provider = get_provider()
    try:
        proposals = suggestions.suggest_agents(form.goal.data, provider,
                                               on_call=_count_suggestion_call(provider))
    except LLMError as error:
        return _suggest_page(form, model_error=f"No suggestions: {error.message}.")
    cards = [(index, _suggestion_card(index, fields)) for index, fields in enumerate(proposals)]
    return _suggest_page(form, cards=cards)


@bp.post("/suggest/create")
@login_required
def create_suggested():
    index = request.form.get("card", "")
    if index not in {str(i) for i in range(suggestions.SUGGESTIONS)}:
        return error_response(400, "That suggestion is not on the page any more: ask again.")
    index = int(index)
    card = AgentForm(prefix=f"s{index}")
    htmx = request.headers.get("HX-Request") == "true"

    def refused(status: int, **context):
        if htmx:  # the card alone, in place, with the reasons beside its fields
            return render_template("agents/_suggestion_card.html", index=index, card=card,
                                   styles=STYLE_TABLE, **context), 422
        return _suggest_page(SuggestForm(goal=request.form.get("goal", "")), status,
                             cards=[(index, card)], **context)

    if not card.validate():
        return refused(422)
    try:
        agent = service.create_agent(current_user, card.fields())
    except InvalidAgent as error:
        card.show_problems(error.problems)
        return refused(422)
    except LimitReached as error:
        return refused(error.status, limit_message=error.message)
    if htmx:
        return render_template("agents/_suggestion_created.html", index=index, agent=agent,
                               styles=STYLE_TABLE)
    flash(f"{agent.emoji} {agent.name} is ready. Add it to a room to hear from it.", "info")
    return redirect(url_for("agents.show", agent_id=agent.id), 303)
