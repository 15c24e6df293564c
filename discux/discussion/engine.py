"""Running agent turns: one room at a time in order, off the request thread, within budgets.

Each user message that mentions agents starts a *generation*: its mentioned agents answer in
turn, each seeing the replies before it. A reply that @mentions another room agent hands the
turn over (at most MAX_HANDOVERS times, MAX_REPLIES replies per user message). A newer user
message, or Stop, cancels the generation: queued turns are dropped and a reply being streamed
stops where it is (kept, marked "stopped"). Rooms run in a bounded thread pool; turns of one
room never overlap, so two agents never interleave rows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

import sqlalchemy as sa
from flask import Flask, current_app, render_template

from discux.agents.styles import style_for
from discux.discussion.context import TurnAgent, build_prompt, estimate_tokens, read_turn
from discux.discussion.summaries import SummaryClock, maybe_auto_summarize, summarize_room
from discux.extensions import db
from discux.ids import new_id, utcnow
from discux.llm.base import Delta, LLMError, mean_probability
from discux.llm.registry import get_provider
from discux.logs import log_model_call
from discux.messages.mentions import resolve_mentions
from discux.messages.service import (
    post_system_message,
    publish_message_completed,
    publish_message_created,
    publish_message_delta,
    render_markdown,
    room_agents,
)
from discux.models import Agent, Message, Room
from discux.realtime import publish
from discux.realtime.hub import hub_for

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_HANDOVERS = 3
MAX_REPLIES = 10
CONTINUE_GRANT = 3
AGENT_REPLIES_PER_MINUTE = 10
DELTA_INTERVAL = 0.05  # ≤ 20 socket updates a second per streaming reply
# The words of the room notice left when a model failed before writing anything (the reply row
# is deleted): the admin figures count model errors by them.
COULD_NOT_ANSWER = "could not answer"
# How long a turn waits for its model request to be sent before announcing itself anyway
# (a slow connect must not hold the "answering" line and the reply row).
REQUEST_SEND_WAIT = 0.5
EXTENSION_KEY = "discux.discussion"
# Sent through the broker so a Stop (or a newer message) reaches whichever worker runs the room.
CANCEL_EVENT = "discussion.cancel"


@dataclass
class Generation:
    """The work one user message set off, with its budget and its cancel switch."""

    trigger_id: str
    cancel: threading.Event = field(default_factory=threading.Event)
    replies: int = 0
    handovers: int = 0
    handover_limit: int = MAX_HANDOVERS
    reply_limit: int = MAX_REPLIES
    planned: int = 0


@dataclass
class Turn:
    kind: str  # "reply" | "summary"
    generation: Generation
    agent_id: str | None = None
    handed_over_by: str | None = None
    requested_by: str | None = None


class RoomRunner:
    """The queue of one room: turns run one after another, never two at once."""

    def __init__(self, room_id: str):
        self.room_id = room_id
        self.lock = threading.Lock()
        self.queue: deque[Turn] = deque()
        self.generation: Generation | None = None
        self.active = False
        # Agents asked to answer after the budget ran out: "Continue" lets them.
        self.waiting: list[str] = []
        self.idle = threading.Event()
        self.idle.set()


class RequestThreads:
    """The threads that send turns' model requests, counting how many are taken."""

    def __init__(self, workers: int):
        self.workers = workers
        self.pool = ThreadPoolExecutor(max_workers=workers,
                                       thread_name_prefix="discux-llm-request")
        self.lock = threading.Lock()
        self.taken = 0  # running or queued

    def submit(self, fn: Callable[..., T], *args: object) -> tuple[Future[T], bool]:
        """Run `fn(*args)` on a request thread; True when a thread is free to start it now."""
        with self.lock:
            starts_now = self.taken < self.workers
            self.taken += 1
        future = self.pool.submit(fn, *args)
        future.add_done_callback(self._release)  # also when it is cancelled
        return future, starts_now

    def _release(self, _future: Future) -> None:
        with self.lock:
            self.taken -= 1


class Engine:
    """One per app: the room runners and the worker pool they share."""

    def __init__(self, app: Flask):
        self.app = app
        workers = int(app.config.get("DISCUX_AGENT_WORKERS", 4))
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="discux-agent")
        # Sends a turn's model request while its runner stores the reply row (one per runner).
        self.requests = RequestThreads(workers)
        self.summary_clock = SummaryClock()
        self.runners: dict[str, RoomRunner] = {}
        self.lock = threading.Lock()
        self.hub = hub_for(app)
        self.hub.control_handlers[CANCEL_EVENT] = self._on_cancel_event

    def runner(self, room_id: str) -> RoomRunner:
        with self.lock:
            if room_id not in self.runners:
                self.runners[room_id] = RoomRunner(room_id)
            return self.runners[room_id]

    # ---- entry points (called on request threads) ----
    def start_generation(self, room_id: str, trigger_id: str, agent_ids: list[str],
                         handover_limit: int = MAX_HANDOVERS, cancel_current: bool = True) -> None:
        runner = self.runner(room_id)
        with runner.lock:
            if cancel_current:
                self._cancel_locked(runner)
            if agent_ids:
                runner.waiting = agent_ids[MAX_REPLIES:]
                agent_ids = agent_ids[:MAX_REPLIES]
                generation = Generation(trigger_id=trigger_id, handover_limit=handover_limit,
                                        planned=len(agent_ids))
                runner.generation = generation
                runner.queue.extend(Turn("reply", generation, agent_id=a) for a in agent_ids)
                self._ensure_running_locked(runner)
        if cancel_current:
            # Other workers may be running this room's older generation: tell them too, once
            # this worker's turn is on its way (its own newer generation ignores the event).
            self.hub.publish({"type": CANCEL_EVENT, "room_id": room_id, "html": None,
                              "data": {"before": trigger_id}})

    def cancel(self, room_id: str) -> None:
        """Stop the room's agents on whichever worker runs them; that worker says so."""
        self.hub.publish({"type": CANCEL_EVENT, "room_id": room_id, "html": None,
                          "data": {"announce": True}})

    def _on_cancel_event(self, event: dict) -> None:
        """Cancel this process's generation of the room if it is older than `before`."""
        data = event.get("data") or {}
        with self.lock:
            runner = self.runners.get(event.get("room_id", ""))
        if runner is None:
            return
        before = data.get("before")
        with runner.lock:
            generation = runner.generation
            if generation is None or generation.cancel.is_set():
                return
            if before and generation.trigger_id >= before:
                return
            busy = runner.active or bool(runner.queue)
            self._cancel_locked(runner)
        if busy and data.get("announce"):
            with self.app.app_context():
                publish_status(runner.room_id, {"state": "stopped"})

    def queue_summary(self, room_id: str, requested_by: str | None) -> None:
        runner = self.runner(room_id)
        with runner.lock:
            generation = runner.generation or Generation(trigger_id="summary")
            runner.queue.append(Turn("summary", generation, requested_by=requested_by))
            self._ensure_running_locked(runner)

    def wait_idle(self, room_id: str | None = None, timeout: float = 10.0) -> bool:
        """Block until the room (or every room) has nothing running or queued."""
        deadline = time.monotonic() + timeout
        runners = [self.runner(room_id)] if room_id else list(self.runners.values())
        return all(r.idle.wait(max(0.0, deadline - time.monotonic())) for r in runners)

    def _cancel_locked(self, runner: RoomRunner) -> None:
        if runner.generation is not None:
            runner.generation.cancel.set()
        runner.queue = deque(t for t in runner.queue if t.kind == "summary")

    def _ensure_running_locked(self, runner: RoomRunner) -> None:
        if not runner.active and runner.queue:
            runner.active = True
            runner.idle.clear()
            self.pool.submit(self._drain, runner)

    # ---- the worker side ----
    def _drain(self, runner: RoomRunner) -> None:
        with self.app.app_context():
            try:
                while True:
                    with runner.lock:
                        if not runner.queue:
                            runner.active = False
                            runner.idle.set()
                            break
                        turn = runner.queue.popleft()
                    if turn.generation.cancel.is_set() and turn.kind == "reply":
                        continue
                    try:
                        # A turn re-reads nothing it committed itself, and its session ends
                        # with it: keep its rows loaded across commits instead of re-selecting.
                        db.session().expire_on_commit = False
                        self._run(runner, turn)
                    except Exception:  # one broken turn must not stop the room's queue
                        log.exception("Agent turn failed in room %s", runner.room_id)
                        db.session.rollback()
                    finally:
                        db.session.remove()
            finally:
                with runner.lock:
                    if runner.active and not runner.queue:
                        runner.active = False
                        runner.idle.set()
                publish_status(runner.room_id, {"state": "idle"})

    def _run(self, runner: RoomRunner, turn: Turn) -> None:
        if turn.kind == "summary":
            summarize_room(runner.room_id, turn.requested_by)
            return
        handed_to = run_reply(runner, turn)
        generation = turn.generation
        if not handed_to or generation.cancel.is_set():
            return
        with runner.lock:
            queued = {t.agent_id for t in runner.queue if t.generation is generation}
            wanted = [a for a in handed_to if a.id not in queued]
            granted = []
            for agent in wanted:
                if (generation.handovers >= generation.handover_limit
                        or generation.replies + len(granted) + len(queued) >= generation.reply_limit):
                    break
                generation.handovers += 1
                granted.append(agent)
            runner.queue.extend(
                Turn("reply", generation, agent_id=a.id, handed_over_by=turn.agent_id)
                for a in granted
            )
            generation.planned += len(granted)
            refused = wanted[len(granted):]
            runner.waiting = [a.id for a in refused]
        if refused:
            names = ", ".join(a.name for a in refused)
            publish_status(runner.room_id, {
                "state": "budget_spent", "replies": generation.replies,
                "handovers": generation.handovers, "waiting": names,
                "continue": CONTINUE_GRANT,
            })


def engine_for(app: Flask | None = None) -> Engine:
    app = app or current_app._get_current_object()
    engine = app.extensions.get(EXTENSION_KEY)
    if engine is None:
        engine = app.extensions[EXTENSION_KEY] = Engine(app)
    return engine


def publish_status(room_id: str, status: dict) -> None:
    """Tell the room what the agents are doing (the "N of M answering" line)."""
    html = render_template("discussion/_status.html", status=status, room_id=room_id, oob=True,
                           csrf=None)
    publish(room_id, "agent.status", status, html=html)


def on_user_message(message: Message) -> None:
    """Start the agents a just-posted message mentions, in mention order.

    A message that addresses agents cancels whatever agents were still doing in the room; one
    that addresses none (or is humans-only) lets them carry on. This runs on every post: it
    reads only what the message already holds and, unless a summary is due, queries nothing.
    """
    agent_ids = [] if message.humans_only else [
        m.mentioned_agent_id for m in sorted(message.mentions, key=lambda m: m.id)]
    if agent_ids:
        engine_for().start_generation(message.room_id, message.id, agent_ids)
    maybe_auto_summarize(message.room_id)


def continue_discussion(room: Room) -> list[Agent]:
    """Let the agents the last reply handed over to answer: CONTINUE_GRANT more replies in all
    (the waiting agent's, then at most CONTINUE_GRANT - 1 further hand-overs)."""
    last = db.session.scalar(
        sa.select(Message).where(Message.room_id == room.id, Message.type == "agent",
                                 Message.status == "complete")
        .order_by(Message.id.desc()).limit(1)
    )
    if last is None:
        return []
    in_room = room_agents(room.id)
    runner = engine_for().runner(room.id)
    with runner.lock:
        waiting = list(runner.waiting)
    if waiting:  # this worker knows who was left waiting
        agents = [a for a in in_room if a.id in waiting]
        agents.sort(key=lambda a: waiting.index(a.id))
    else:  # another worker ran the turn: the last reply's mentions say who was asked
        agents = [a for a in resolve_mentions(last.content, in_room) if a.id != last.sender_id]
    if agents:
        engine_for().start_generation(room.id, last.reply_to_id or last.id,
                                      [a.id for a in agents][:CONTINUE_GRANT],
                                      handover_limit=CONTINUE_GRANT - 1)
    return agents


# Built once: it runs before a reply whose agent is at its limit.
AGENT_REPLY_TIMES = (
    sa.select(Message.timestamp)
    .where(Message.sender_id == sa.bindparam("agent_id"), Message.type == "agent",
           Message.timestamp >= sa.bindparam("since"))
    .order_by(Message.timestamp)
)

COUNT_AGENT_USE = (
    sa.update(Agent).where(Agent.id == sa.bindparam("agent_id"))
    .values(usage_count=sa.func.coalesce(Agent.usage_count, 0) + 1)
)


def wait_for_rate_limit(agent: TurnAgent, generation: Generation, room_id: str) -> bool:
    """Hold the room's queue while the agent has used its replies for this minute (it waits,
    it is not dropped). False when the generation was cancelled while waiting."""
    while True:
        now = utcnow()
        recent = list(db.session.scalars(AGENT_REPLY_TIMES, {
            "agent_id": agent.id, "since": now - timedelta(seconds=60)}))
        if len(recent) < AGENT_REPLIES_PER_MINUTE:
            return True
        db.session.rollback()  # end the read so the next look sees new rows
        frees_at = recent[-AGENT_REPLIES_PER_MINUTE] + timedelta(seconds=60)
        wait = max(0.2, (frees_at - now).total_seconds())
        publish_status(room_id, {"state": "waiting", "agent": agent.name,
                                 "seconds": round(wait)})
        if generation.cancel.wait(min(wait, 5.0)):
            return False


def run_reply(runner: RoomRunner, turn: Turn) -> list[TurnAgent]:
    """Stream one agent's reply into a message row; returns the agents it hands over to.

    The model is asked as early as possible: the few reads the prompt needs come first, then the
    request goes out on another thread while this one announces the turn and the reply row and
    stores the row. The thread that receives the first piece publishes it as soon as the row has
    been announced, so neither the row's write nor a thread hand-off delays the first token."""
    generation = turn.generation
    room_id = runner.room_id
    # Everything the prompt needs in one round trip, with the room's agents as rows (a deleted
    # room, or an agent removed from it, has none here) and whether the replying agent may
    # answer now: the count is read from the messages, so the limit holds whichever worker
    # wrote them.
    reads = read_turn(room_id, turn.agent_id, utcnow() - timedelta(seconds=60))
    in_room = {a.id: a for a in reads.agents}
    agent = in_room.get(turn.agent_id)
    if agent is None:
        return []
    if agent.recent_replies >= AGENT_REPLIES_PER_MINUTE:
        if not wait_for_rate_limit(agent, generation, room_id):
            return []
        # The room went on while the agent waited: its prompt is read afresh.
        reads = read_turn(room_id, turn.agent_id, utcnow() - timedelta(seconds=60))
        in_room = {a.id: a for a in reads.agents}
        agent = in_room.get(turn.agent_id)
        if agent is None:
            return []

    provider = get_provider()
    prompt = build_prompt(agent, reads, provider_label=provider.label, is_demo=provider.is_demo)
    style = style_for(agent.style)
    started = time.monotonic()
    reply = Message(
        id=new_id(), room_id=room_id, content="", type="agent", sender_id=agent.id,
        sender_name=agent.name, sender_emoji=agent.emoji, sender_color=agent.color,
        status="streaming", reply_to_id=generation.trigger_id if generation.trigger_id
        != "summary" else None, context_length=prompt.context_length,
        context_receipt=prompt.receipt_json(), timestamp=utcnow(), mentions=[],
    )
    first_piece = FirstPiece(current_app._get_current_object(), reply, generation)
    deltas = iter(provider.stream_chat(
        prompt.messages, model=agent.model, temperature=style.temperature,
        max_tokens=style.max_tokens, on_sent=first_piece.request_sent.set,
    ))
    first_delta, sending_now = engine_for().requests.submit(first_piece.fetch, deltas)
    # Stand aside while the request thread sends the request: this thread would otherwise hold
    # the interpreter lock for the turn's status, row and commit first (up to the 5 ms switch
    # interval), and the request would leave that much later. A request queued behind busy
    # threads is not being sent: waiting for it would only hold back "answering" and the row.
    if sending_now:
        first_piece.request_sent.wait(REQUEST_SEND_WAIT)
    try:
        generation.replies += 1
        publish_status(room_id, {
            "state": "answering", "agent": agent.name, "agent_id": agent.id,
            "emoji": agent.emoji, "position": generation.replies,
            "total": max(generation.planned, generation.replies),
            "replies": generation.replies, "handovers": generation.handovers,
        })
        # Announced before its commit: the placeholder is only ever filled by this turn, and
        # the commit (an fsync on MariaDB) overlaps the model's first token instead of
        # preceding it. message.completed follows the final commit as usual.
        publish_message_created(reply)
        first_piece.announce_row()
        db.session.add(reply)
        try:
            db.session.commit()
        except Exception:
            publish(room_id, "message.deleted", {"id": reply.id})
            raise
        text, logprobs, failure = stream_into(reply, deltas, first_delta, generation)
    finally:
        # The request thread must be done with the stream before it is closed.
        first_piece.give_up()
        if not first_delta.cancel():
            first_delta.exception()
        deltas.close()
    elapsed = time.monotonic() - started

    content = "".join(text).strip()
    log_model_call(
        room_id=room_id, agent_id=agent.id, model=agent.model or provider.default_model,
        prompt_tokens=prompt.receipt.get("token_estimate"),
        reply_tokens=len(logprobs) or (estimate_tokens(content) if content else 0),
        seconds=elapsed, outcome="failed" if failure else
        "stopped" if generation.cancel.is_set() else "complete")
    if failure and not content:
        db.session.delete(reply)
        db.session.commit()
        publish(room_id, "message.deleted", {"id": reply.id})
        tell_room(room_id, f"⚠️ **{agent.name}** {COULD_NOT_ANSWER}: {failure}.")
        return []

    reply.content = content
    reply.content_html = render_markdown(content) if content else ""
    reply.processing_time = round(elapsed, 3)
    confidence = mean_probability(logprobs)
    reply.agent_confidence = round(confidence, 2) if confidence is not None else None
    if failure:
        reply.status = "failed"
    elif generation.cancel.is_set():
        reply.status = "stopped"
    else:
        reply.status = "complete"
        db.session.execute(COUNT_AGENT_USE, {"agent_id": agent.id})
    db.session.commit()
    publish_message_completed(reply)
    if failure:
        tell_room(room_id, f"⚠️ **{agent.name}** was cut off: {failure}.")
        return []
    if reply.status != "complete":
        return []
    maybe_auto_summarize(room_id)
    mentioned = resolve_mentions(content, list(in_room.values()))
    return [a for a in mentioned if a.id != agent.id]


class FirstPiece:
    """Receives a reply's first piece on the request thread and publishes it right there, once
    the reply row has been announced (a reply's pieces must follow its row)."""

    def __init__(self, app: Flask, reply: Message, generation: Generation):
        self.app = app
        self.room_id = reply.room_id
        self.reply_id = reply.id
        self.generation = generation
        self.row_announced = False
        self._runner_done = threading.Event()  # the row was announced, or never will be
        self.request_sent = threading.Event()  # the model has the request, or it failed

    def announce_row(self) -> None:
        self.row_announced = True
        self._runner_done.set()

    def give_up(self) -> None:
        """The turn ends early (or is already streaming): nothing left to wait for."""
        self._runner_done.set()

    def fetch(self, deltas: Iterator[Delta]) -> tuple[Delta | None, bool]:
        """The first piece (None when the reply is empty) and whether it was published; raises
        LLMError when the model fails."""
        try:
            delta = next(deltas, None)
        finally:
            self.request_sent.set()
        if delta is None or not delta.text:
            return delta, False
        self._runner_done.wait()
        if not self.row_announced or self.generation.cancel.is_set():
            return delta, False
        with self.app.app_context():
            publish_message_delta(self.room_id, self.reply_id, delta.text)
        return delta, True


def stream_into(reply: Message, deltas: Iterator[Delta], first_delta: Future,
                generation: Generation) -> tuple[list[str], list[float], str | None]:
    """Publish the reply's pieces as they come: the first at once, then at most one socket
    update per DELTA_INTERVAL. Returns the text pieces, token log-probabilities and the
    failure (None when the stream ended normally)."""
    text: list[str] = []
    logprobs: list[float] = []
    pending: list[str] = []
    last_push = 0.0  # so the first piece goes out the moment it arrives
    try:
        delta, published = first_delta.result()
        if published:
            text.append(delta.text)
            logprobs.extend(delta.logprobs)
            last_push = time.monotonic()
            delta = next(deltas, None)
        while delta is not None:
            if generation.cancel.is_set():
                break
            text.append(delta.text)
            pending.append(delta.text)
            logprobs.extend(delta.logprobs)
            now = time.monotonic()
            if now - last_push >= DELTA_INTERVAL:
                publish_message_delta(reply.room_id, reply.id, "".join(pending))
                pending.clear()
                last_push = now
            delta = next(deltas, None)
    except LLMError as error:
        return text, logprobs, error.message
    finally:
        if pending and not generation.cancel.is_set():
            publish_message_delta(reply.room_id, reply.id, "".join(pending))
    return text, logprobs, None


def tell_room(room_id: str, text: str) -> None:
    """Post a notice from Discux in the room, unless the room is gone."""
    room = db.session.get(Room, room_id)
    if room is not None:
        post_system_message(room, text)
