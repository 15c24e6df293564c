"""What model calls use and cost, and the budgets that stop them: the one place that answers
"may this call start" and "what did it use".

Every model call (agent reply, summary, Try it, generator, connection test) gets one row of
`usage_ledger`. A call that some budget covers (the room's monthly budget, the user's monthly
allowance by plan, the instance's daily cap) is *reserved* before its request: under the
budgets' row locks (discux.locks.lock_row) the tokens already counted are summed, the call is
refused when even its prompt would pass what is left, and otherwise its prompt estimate plus
its `max_tokens` are counted at once. After the call the row is *settled* to what the provider
reported (or an estimate, marked). So turns started at once on several workers see each
other's reservations, and a budget is passed by at most one reply's `max_tokens`. A call no
budget covers writes its row once, settled, in the transaction that stores its result.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from discux.errors import DiscuxError, LimitReached
from discux.extensions import db
from discux.ids import utcnow
from discux.llm.base import Usage, estimate_tokens
from discux.locks import lock_row
from discux.models import (
    InstanceSettings,
    Message,
    ModelPrice,
    RoomSettings,
    UsageEntry,
    User,
)
from discux.plans import UNLIMITED_TOKENS, month_start
from discux.rooms.service import require_participant

INSTANCE_ROW = 1


class BudgetSpent(LimitReached):
    """A call would pass a token budget; the message names it, what is left and who can raise
    it."""

    code = "token_budget"

    LABELS = {"room": "room's monthly token budget", "user": "monthly token allowance",
              "instance": "instance's daily token cap"}

    def __init__(self, message: str, scope: str, left: int):
        super().__init__(message)
        self.scope = scope
        self.left = left

    @property
    def label(self) -> str:
        return self.LABELS[self.scope]


@dataclass(frozen=True)
class BudgetFacts:
    """The budgets that cover a call, as read before it (None: that budget does not apply)."""

    room_budget: int | None = None
    user_id: str | None = None
    user_name: str | None = None
    plan: str | None = None
    user_allowance: int | None = None
    daily_cap: int | None = None

    @property
    def any(self) -> bool:
        return (self.room_budget is not None or self.daily_cap is not None
                or (self.user_id is not None and self.user_allowance is not None
                    and self.user_allowance < UNLIMITED_TOKENS))


@dataclass
class Call:
    """A model call under way: what its ledger row will say; `entry_id` once reserved."""

    kind: str
    model: str | None
    prompt_estimate: int
    user_id: str | None = None
    room_id: str | None = None
    agent_id: str | None = None
    message_id: str | None = None
    entry_id: int | None = None


@dataclass(frozen=True)
class Figures:
    """What one call used: tokens, whether they were estimated, and cost (None: no price)."""

    prompt_tokens: int
    completion_tokens: int
    estimated: bool
    cost_usd: float | None

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def day_start(now: datetime | None = None) -> datetime:
    now = now or utcnow()
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


# ---- budgets: read, reserve, settle ----

def _facts_statement(by_trigger: bool) -> sa.Select:
    """The room's budget, the user's id, allowance and plan, and the instance's cap, in one
    statement of scalar subqueries (each NULL when its row is missing). `by_trigger`: the user
    is the author of the message `trigger_id` (a reply is billed to whoever asked for it)."""
    if by_trigger:
        user_id = sa.select(Message.sender_id).where(
            Message.id == sa.bindparam("trigger_id"), Message.type == "user").scalar_subquery()
    else:
        user_id = sa.bindparam("user_id")
    user = sa.select(User).where(User.id == user_id)
    return sa.select(
        sa.select(RoomSettings.monthly_token_budget)
        .where(RoomSettings.room_id == sa.bindparam("room_id")).scalar_subquery()
        .label("room_budget"),
        user.with_only_columns(User.id).scalar_subquery().label("user_id"),
        user.with_only_columns(User.max_tokens_per_month).scalar_subquery()
        .label("user_allowance"),
        user.with_only_columns(User.subscription).scalar_subquery().label("plan"),
        user.with_only_columns(sa.func.coalesce(User.name, User.email)).scalar_subquery()
        .label("user_name"),
        sa.select(InstanceSettings.daily_token_cap)
        .where(InstanceSettings.id == INSTANCE_ROW).scalar_subquery().label("daily_cap"),
    )


# Built once: a reply reads it before its model request.
FACTS = {False: _facts_statement(False), True: _facts_statement(True)}


def budget_facts(room_id: str | None, user_id: str | None = None, *,
                 trigger_id: str | None = None) -> BudgetFacts:
    """The budgets covering a call in `room_id` (may be None) set off by `user_id`, or by the
    author of the message `trigger_id`."""
    by_trigger = trigger_id is not None
    params = {"room_id": room_id or ""}
    params["trigger_id" if by_trigger else "user_id"] = (trigger_id if by_trigger
                                                          else user_id or "")
    row = db.session.execute(FACTS[by_trigger], params).one()
    return BudgetFacts(
        room_budget=row.room_budget if room_id else None, user_id=row.user_id,
        user_name=row.user_name, plan=row.plan, user_allowance=row.user_allowance,
        daily_cap=row.daily_cap)


def facts_of(budgets, payer) -> BudgetFacts:
    """BudgetFacts from the rows a turn reads with its prompt
    (discux.discussion.context.read_turn): the room's and instance's budgets, and who pays."""
    facts = BudgetFacts(room_budget=budgets.room_budget if budgets is not None else None,
                        daily_cap=budgets.daily_cap if budgets is not None else None)
    if payer is None:
        return facts
    return dataclasses.replace(facts, user_id=payer.sender_id, user_name=payer.name,
                               plan=payer.plan, user_allowance=payer.user_allowance)


def _used_statement(column: sa.ColumnElement | None, locking: bool) -> sa.Select:
    query = sa.select(sa.func.coalesce(sa.func.sum(UsageEntry.tokens), 0)).where(
        UsageEntry.created_at >= sa.bindparam("since"))
    if column is not None:
        query = query.where(column == sa.bindparam("value"))
    return query.with_for_update() if locking else query


# Built once (a reservation runs them ahead of its model request): tokens counted since a
# time, by room, by user, or on the whole instance; locking or not.
USED = {(scope, locking): _used_statement(column, locking)
        for scope, column in (("room", UsageEntry.room_id), ("user", UsageEntry.user_id),
                              ("instance", None))
        for locking in (False, True)}


def _used_since(scope: str, value: str | None, since: datetime, locking: bool = False) -> int:
    return int(db.session.scalar(USED[scope, locking], {"since": since, "value": value}) or 0)


def _refusal(scope: str, facts: BudgetFacts, left: int, who: str) -> BudgetSpent:
    left = max(0, left)
    if scope == "room":
        text = (f"this room's monthly token budget ({facts.room_budget:,} tokens) has "
                f"{left:,} left. The room's owner or an admin can raise it in the room "
                "settings; it renews on the 1st (UTC).")
    elif scope == "user":
        text = (f"{facts.user_name or 'the person who asked'}'s {facts.plan} plan allows "
                f"{facts.user_allowance:,} tokens a month, and {left:,} are left. An instance "
                "admin can change the plan; it renews on the 1st (UTC).")
    else:
        text = (f"this instance's daily token cap ({facts.daily_cap:,} tokens) has {left:,} "
                "left today. An instance admin can raise it in Admin; it renews at midnight "
                "(UTC).")
    return BudgetSpent(f"{who} did not start: {text}", scope, left)


def _check(facts: BudgetFacts, call: Call, need: int, who: str, locking: bool) -> None:
    """Raise BudgetSpent when `need` tokens would pass a budget covering the call."""
    now = utcnow()
    if facts.room_budget is not None and call.room_id is not None:
        left = facts.room_budget - _used_since("room", call.room_id,
                                               month_start(now), locking)
        if need > left:
            raise _refusal("room", facts, left, who)
    if (facts.user_id is not None and facts.user_allowance is not None
            and facts.user_allowance < UNLIMITED_TOKENS):
        left = facts.user_allowance - _used_since("user", facts.user_id,
                                                  month_start(now), locking)
        if need > left:
            raise _refusal("user", facts, left, who)
    if facts.daily_cap is not None:
        left = facts.daily_cap - _used_since("instance", None, day_start(now),
                                             locking)
        if need > left:
            raise _refusal("instance", facts, left, who)


INSERT_ENTRY = sa.insert(UsageEntry.__table__)


def reserve(call: Call, facts: BudgetFacts, max_tokens: int, who: str) -> Call:
    """Before the model request: refuse the call (BudgetSpent) when its prompt alone would pass
    a budget that covers it, else count its prompt estimate + `max_tokens` against them until
    it is settled. Commits. A call no budget covers costs no query here."""
    if not facts.any:
        return call
    db.session.rollback()  # a fresh transaction: the locks below come first in it
    # Always in this order, so two reservations never wait on each other's locks.
    if facts.room_budget is not None and call.room_id is not None:
        lock_row(RoomSettings, call.room_id)
    if facts.user_id is not None and (facts.user_allowance or 0) < UNLIMITED_TOKENS:
        lock_row(User, facts.user_id)
    if facts.daily_cap is not None:
        lock_row(InstanceSettings, INSTANCE_ROW)
    call.user_id = facts.user_id
    try:
        _check(facts, call, max(1, call.prompt_estimate), who, locking=True)
    except BudgetSpent:
        db.session.rollback()
        raise
    call.entry_id = db.session.execute(INSERT_ENTRY, {
        "created_at": utcnow(), "kind": call.kind, "state": "reserved",
        "user_id": facts.user_id, "room_id": call.room_id, "agent_id": call.agent_id,
        "message_id": call.message_id, "model": call.model,
        "prompt_tokens": call.prompt_estimate, "completion_tokens": 0,
        "tokens": call.prompt_estimate + max_tokens, "estimated": True, "cost_usd": None,
    }).inserted_primary_key[0]
    db.session.commit()
    return call


def check_can_start(room_id: str | None, *, user_id: str | None = None,
                    trigger_id: str | None = None, who: str) -> None:
    """Raise BudgetSpent when a budget covering a call here (set off by `user_id`, or by the
    author of `trigger_id`) has nothing left: Continue asks this before agents go on; the
    turn itself reserves."""
    facts = budget_facts(room_id, user_id, trigger_id=trigger_id)
    if facts.any:
        _check(facts, Call("reply", None, 0, room_id=room_id), 1, who, locking=False)


# ---- setting budgets and prices ----

BUDGET_MAX = UNLIMITED_TOKENS


def check_budget_value(value, what: str, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= BUDGET_MAX:
        raise DiscuxError(f"The {what} must be a whole number of tokens from 0 to "
                          f"{BUDGET_MAX:,}, or empty for none.", field)
    return value


def set_room_budget(actor: User, room, budget: int | None) -> None:
    """Set (or with None remove) the room's monthly token budget: its owner and admins only."""
    require_participant(actor, room, "edit_settings")
    room.settings.monthly_token_budget = check_budget_value(budget, "monthly token budget",
                                                       "monthly_token_budget")
    db.session.commit()


def instance_settings() -> InstanceSettings:
    row = db.session.get(InstanceSettings, INSTANCE_ROW)
    if row is None:  # the migration writes it; a database made otherwise gets it here
        row = InstanceSettings(id=INSTANCE_ROW)
        db.session.add(row)
        db.session.flush()
    return row


def set_daily_cap(cap: int | None) -> None:
    """Set (or with None remove) the instance's daily token cap (instance admins call it)."""
    instance_settings().daily_token_cap = check_budget_value(cap, "daily token cap",
                                                        "daily_token_cap")
    db.session.commit()


PRICE_MAX = 1_000_000


def set_price(model: str, input_usd: float | None, output_usd: float | None) -> None:
    """Set a model's price in USD per million input and output tokens; both None removes it.
    Calls are costed at the price of their time: changing it rewrites no past cost."""
    model = (model or "").strip()
    if not model or len(model) > 255:
        raise DiscuxError("Name the model (at most 255 characters), as the provider spells it.",
                          "model")
    price = db.session.get(ModelPrice, model)
    if input_usd is None and output_usd is None:
        if price is not None:
            db.session.delete(price)
        db.session.commit()
        return
    for value, field in ((input_usd, "input_usd_per_million"),
                         (output_usd, "output_usd_per_million")):
        if value is None or not 0 <= value <= PRICE_MAX:
            raise DiscuxError(f"Give both prices in USD per million tokens, from 0 to "
                              f"{PRICE_MAX:,}.", field)
    if price is None:
        price = ModelPrice(model=model)
        db.session.add(price)
    price.input_usd_per_million = input_usd
    price.output_usd_per_million = output_usd
    db.session.commit()


def prices() -> list[ModelPrice]:
    return list(db.session.scalars(sa.select(ModelPrice).order_by(ModelPrice.model)))


# ---- figures and settling ----

PRICE_OF = sa.select(ModelPrice.input_usd_per_million, ModelPrice.output_usd_per_million) \
    .where(ModelPrice.model == sa.bindparam("model"))


def cost_of(model: str | None, prompt_tokens: int, completion_tokens: int) -> float | None:
    """USD for the tokens at the admin's price for `model`; None when it has no price."""
    if not model:
        return None
    price = db.session.execute(PRICE_OF, {"model": model}).first()
    if price is None:
        return None
    return round((prompt_tokens * float(price.input_usd_per_million)
                  + completion_tokens * float(price.output_usd_per_million)) / 1_000_000, 6)


def figures_of(call: Call, reported: Usage | None, completion_text: str,
               completion_count: int | None = None, prompt_sent: bool = True) -> Figures:
    """The provider's figures when it reported them; else an estimate (the prompt's, when the
    model got it, and the reply's tokens counted or estimated from its text)."""
    if reported is not None and reported.reported:
        prompt, completion, estimated = reported.prompt_tokens, reported.completion_tokens, False
    else:
        prompt = call.prompt_estimate if prompt_sent else 0
        completion = completion_count or (estimate_tokens(completion_text)
                                          if completion_text else 0)
        estimated = True
    return Figures(prompt, completion, estimated, cost_of(call.model, prompt, completion))


def settle(call: Call, figures: Figures) -> None:
    """Write the call's real usage to its ledger row (adds to the caller's transaction, which
    commits it with the call's result)."""
    values = {"state": "settled", "prompt_tokens": figures.prompt_tokens,
              "completion_tokens": figures.completion_tokens, "tokens": figures.tokens,
              "estimated": figures.estimated, "cost_usd": figures.cost_usd}
    if call.entry_id is not None:
        db.session.execute(sa.update(UsageEntry).where(UsageEntry.id == call.entry_id)
                           .values(**values))
        return
    db.session.add(UsageEntry(kind=call.kind, user_id=call.user_id, room_id=call.room_id,
                              agent_id=call.agent_id, message_id=call.message_id,
                              model=call.model, **values))


def settle_interrupted(message_ids: list[str]) -> None:
    """Reservations of replies whose worker died: settled to an estimate from what was kept
    (in the caller's transaction)."""
    if not message_ids:
        return
    kept = dict(db.session.execute(sa.select(Message.id, Message.content)
                                   .where(Message.id.in_(message_ids))).all())
    for entry in db.session.scalars(sa.select(UsageEntry).where(
            UsageEntry.message_id.in_(message_ids), UsageEntry.state == "reserved")):
        text = kept.get(entry.message_id) or ""
        completion = estimate_tokens(text) if text else 0
        entry.state, entry.estimated = "settled", True
        # The prompt tokens stay the reservation's estimate: nothing better is known.
        entry.completion_tokens = completion
        entry.tokens = entry.prompt_tokens + completion
        entry.cost_usd = cost_of(entry.model, entry.prompt_tokens, completion)


# ---- meters ----

@dataclass(frozen=True)
class Meter:
    """Tokens used (and their cost, over the calls that had a price) over some span."""

    tokens: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    calls: int = 0
    estimated_calls: int = 0

    @property
    def any_estimated(self) -> bool:
        return self.estimated_calls > 0


def _meter(*conditions: sa.ColumnElement[bool]) -> Meter:
    row = db.session.execute(sa.select(
        sa.func.coalesce(sa.func.sum(UsageEntry.tokens), 0),
        sa.func.coalesce(sa.func.sum(UsageEntry.prompt_tokens), 0),
        sa.func.coalesce(sa.func.sum(UsageEntry.completion_tokens), 0),
        sa.func.sum(UsageEntry.cost_usd),
        sa.func.count(),
        sa.func.coalesce(sa.func.sum(sa.case((UsageEntry.estimated.is_(True), 1), else_=0)), 0),
    ).where(*conditions)).one()
    return Meter(int(row[0]), int(row[1]), int(row[2]),
                 round(float(row[3]), 6) if row[3] is not None else None, int(row[4]),
                 int(row[5]))


def room_this_month(room_id: str) -> Meter:
    return _meter(UsageEntry.room_id == room_id, UsageEntry.created_at >= month_start())


def user_this_month(user_id: str) -> Meter:
    return _meter(UsageEntry.user_id == user_id, UsageEntry.created_at >= month_start())


def agent_this_month(agent_id: str) -> Meter:
    return _meter(UsageEntry.agent_id == agent_id, UsageEntry.created_at >= month_start())


def instance_today() -> Meter:
    return _meter(UsageEntry.created_at >= day_start())


@dataclass(frozen=True)
class MeterRow:
    label: str
    meter: Meter


def instance_by_day(days: int = 30) -> list[MeterRow]:
    """The instance's usage per UTC day, newest first, for the last `days` days (days without
    calls left out)."""
    since = day_start() - timedelta(days=days - 1)
    rows = db.session.execute(
        sa.select(UsageEntry.created_at, UsageEntry.tokens, UsageEntry.prompt_tokens,
                  UsageEntry.completion_tokens, UsageEntry.cost_usd, UsageEntry.estimated)
        .where(UsageEntry.created_at >= since)).all()
    return _grouped(rows, lambda row: row.created_at.strftime("%Y-%m-%d"), reverse=True)


def instance_by_model(since: datetime | None = None) -> list[MeterRow]:
    """The instance's usage per model since `since` (this month by default), most tokens
    first."""
    rows = db.session.execute(
        sa.select(UsageEntry.model, UsageEntry.tokens, UsageEntry.prompt_tokens,
                  UsageEntry.completion_tokens, UsageEntry.cost_usd, UsageEntry.estimated)
        .where(UsageEntry.created_at >= (since or month_start()))).all()
    grouped = _grouped(rows, lambda row: row.model or "(default model)")
    return sorted(grouped, key=lambda row: -row.meter.tokens)


def _grouped(rows, key, reverse: bool = False) -> list[MeterRow]:
    totals: dict[str, list] = {}
    for row in rows:
        total = totals.setdefault(key(row), [0, 0, 0, None, 0, 0])
        total[0] += row.tokens
        total[1] += row.prompt_tokens
        total[2] += row.completion_tokens
        if row.cost_usd is not None:
            total[3] = (total[3] or 0.0) + float(row.cost_usd)
        total[4] += 1
        total[5] += 1 if row.estimated else 0
    return [MeterRow(label, Meter(t[0], t[1], t[2],
                                  round(t[3], 6) if t[3] is not None else None, t[4], t[5]))
            for label, t in sorted(totals.items(), reverse=reverse)]


def usage_shape(message) -> dict | None:
    """An agent message's `usage` as the API and exports give it (None before it was counted)."""
    if message.prompt_tokens is None and message.completion_tokens is None:
        return None
    return {"prompt_tokens": message.prompt_tokens or 0,
            "completion_tokens": message.completion_tokens or 0,
            "estimated": bool(message.usage_estimated),
            "cost_usd": message.cost_usd}


def figures_shape(figures: Figures) -> dict:
    return {"prompt_tokens": figures.prompt_tokens,
            "completion_tokens": figures.completion_tokens, "estimated": figures.estimated,
            "cost_usd": figures.cost_usd}


def meter_shape(meter: Meter) -> dict:
    return {"prompt_tokens": meter.prompt_tokens, "completion_tokens": meter.completion_tokens,
            "tokens": meter.tokens, "cost_usd": meter.cost_usd,
            "estimated": meter.any_estimated}
