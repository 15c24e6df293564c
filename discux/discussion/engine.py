"""Running agent turns: one room at a time in order, off the request thread, within budgets.

Each user message that mentions agents starts a *generation*: its mentioned agents answer in
turn, each seeing the replies before it. A reply that @mentions another room agent hands the
turn over (at most MAX_HANDOVERS times, MAX_REPLIES replies per user message). A newer user
message, or Stop, cancels the generation: queued turns are dropped and a reply being streamed
stops where it is (kept, marked "stopped"). Rooms run in a bounded thread pool; turns of one
room never overlap, so two agents never interleave rows. The turns themselves are stored, and
only the holder of the room's lease runs them (discux.discussion.turns). A turn whose agent is at
its rate limit holds no thread: it goes back to the queue until its agent may answer, and the
room is woken then.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for_futures
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

import sqlalchemy as sa
from flask import Flask, current_app

from discux import usage
from discux.agents.styles import style_for
from discux.discussion import progress, turns
from discux.discussion.context import TurnAgent, build_prompt, read_turn
from discux.discussion.status import publish_status
from discux.discussion.summaries import SummaryClock, maybe_auto_summarize, summarize_room
from discux.errors import DATABASE_UNAVAILABLE, DiscuxError
from discux.extensions import db
from discux.ids import new_id, utcnow
from discux.llm.base import Abort, Delta, LLMError, Usage, mean_probability
from discux.llm.registry import get_provider
from discux.logs import log_model_call
from discux.messages import versions
from discux.messages.mentions import resolve_mentions
from discux.messages.service import (
    post_system_message,
    publish_message_completed,
    publish_message_created,
    publish_message_delta,
    record_deletion,
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
# Seconds between two writes of a streaming reply's text so far to its row: a restart keeps
# it, and a socket reconnecting on another worker is sent it.
STORE_EVERY = 1.0
# People first: the next agent turn waits (at most this long) while someone in the room types.
PEOPLE_FIRST_WAIT = 5.0
# How long a turn waits for its model request to be sent before announcing itself anyway
# (a slow connect must not hold the "answering" line and the reply row).
REQUEST_SEND_WAIT = 0.5
# How long a stopped turn waits for its request thread to hand back a first piece it had.
FIRST_PIECE_AFTER_STOP = 0.3
EXTENSION_KEY = "discux.discussion"
# Sent through the broker so a Stop (or a newer message) reaches whichever worker runs the room.
CANCEL_EVENT = "discussion.cancel"


class CancelSwitch(threading.Event):
    """A generation's cancel switch: an Event that also calls back when set, so a model request
    in flight is aborted at once rather than waited out."""

    def __init__(self) -> None:
        super().__init__()
        self._callbacks: list[Callable[[], None]] = []
        self._callbacks_lock = threading.Lock()

    def set(self) -> None:
        with self._callbacks_lock:
            super().set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def when_set(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` once the switch is set (now, if it is); returns what unregisters it."""
        with self._callbacks_lock:
            if not self.is_set():
                self._callbacks.append(callback)
                return lambda: self._forget(callback)
        callback()
        return lambda: None

    def _forget(self, callback: Callable[[], None]) -> None:
        with self._callbacks_lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)


@dataclass
class Generation:
    """The work one user message set off, with its budget and its cancel switch.

    Stored as an AgentGeneration row; this is the running turn's copy, with the switch that
    Stop (or a newer message) flips on the worker running it."""

    trigger_id: str
    cancel: CancelSwitch = field(default_factory=CancelSwitch)
    replies: int = 0
    handovers: int = 0
    handover_limit: int = MAX_HANDOVERS
    reply_limit: int = MAX_REPLIES
    planned: int = 0
    # A regeneration: the agent reply its one reply replaces (discux.messages.versions).
    replaces_id: str | None = None


@dataclass
class Turn:
    kind: str  # "reply" | "summary"
    generation: Generation
    agent_id: str | None = None
    handed_over_by: str | None = None
    requested_by: str | None = None
    # Set when its agent is at its rate limit: the turn goes back to the queue until then.
    not_before: datetime | None = None


class RoomRunner:
    """What this process knows of one room: the turn it runs now, if it holds the lease."""

    def __init__(self, room_id: str):
        self.room_id = room_id
        self.lock = threading.Lock()
        self.generation: Generation | None = None  # of the reply running here now
        self.active = False  # a drain of this room is queued or running in this process
        self.lease: turns.Lease | None = None
        # Agents asked to answer after the budget ran out: "Continue" lets them.
        self.waiting: list[str] = []
        # The line saying why the chain stopped, shown instead of "idle" when the queue empties
        # (else "Continue" would vanish with it); a new generation or Stop clears it.
        self.chain_stopped: dict | None = None
        self.idle = threading.Event()
        self.idle.set()
        self.wake: threading.Timer | None = None  # kicks the room when its waiting turn may start


@dataclass
class StagedGeneration:
    """A generation whose turns are written in a transaction not yet committed (a post's own),
    holding the room's lease if this process took it."""

    engine: Engine
    runner: RoomRunner
    agent_ids: list[str]
    cancel_current: bool
    lease: turns.Lease | None
    trigger_id: str = ""
    first: turns.Claimed | None = None

    @property
    def has_agents(self) -> bool:
        return bool(self.agent_ids)

    def write(self, trigger_id: str, handover_limit: int = MAX_HANDOVERS,
              replaces_id: str | None = None) -> None:
        """Write the generation's rows in the session's transaction (not committed);
        `replaces_id`: the reply a regeneration replaces."""
        self.trigger_id = trigger_id
        room_id = self.runner.room_id
        if self.agent_ids:
            self.first = turns.queue_generation(
                room_id, trigger_id, self.agent_ids[:MAX_REPLIES],
                handover_limit=handover_limit, reply_limit=MAX_REPLIES,
                cancel_queued=self.cancel_current, start_first=self.lease is not None,
                replaces_id=replaces_id, commit=False)
        elif self.cancel_current:
            turns.cancel_queued_replies(room_id, commit=False)

    def start(self) -> None:
        """The transaction committed: run the turns."""
        self.engine._start_staged(self)

    def abandon(self) -> None:
        """The transaction was rolled back: nothing was stored, let go of the lease."""
        if self.lease is not None:
            self.engine._hand_back(self.runner, self.lease)


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
    """One per app: runs the rooms whose lease this process takes, from the stored queue."""

    def __init__(self, app: Flask):
        self.app = app
        workers = int(app.config.get("DISCUX_AGENT_WORKERS", 4))
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="discux-agent")
        # Sends a turn's model request while its runner stores the reply row (one per runner).
        self.requests = RequestThreads(workers)
        self.summary_clock = SummaryClock()
        self.runners: dict[str, RoomRunner] = {}
        self.lock = threading.Lock()
        self.leases = turns.leases_for(app)
        self.shared = isinstance(self.leases, turns.RedisLeases)
        self.stopping = threading.Event()
        self.started = False
        self.hub = hub_for(app)
        self.hub.control_handlers[CANCEL_EVENT] = self._on_cancel_event

    def runner(self, room_id: str) -> RoomRunner:
        with self.lock:
            if room_id not in self.runners:
                self.runners[room_id] = RoomRunner(room_id)
            return self.runners[room_id]

    def start(self) -> None:
        """Pick up what an earlier process left: at once, then (with Redis) every POLL_SECONDS,
        with the leases this process holds renewed all along."""
        if self.started:
            return
        with self.lock:
            if self.started:
                return
            self.started = True
        threading.Thread(target=self._keep_leases, name="discux-turn-leases",
                         daemon=True).start()
        threading.Thread(target=self._poll, name="discux-turn-poll", daemon=True).start()

    def close(self) -> None:
        """Stop polling, renewing and waking rooms (tests end an app's engine with it)."""
        self.stopping.set()
        with self.lock:
            runners = list(self.runners.values())
        for runner in runners:
            if runner.wake is not None:
                runner.wake.cancel()

    # ---- entry points (called on request threads) ----
    def start_generation(self, room_id: str, trigger_id: str, agent_ids: list[str],
                         handover_limit: int = MAX_HANDOVERS, cancel_current: bool = True,
                         replaces_id: str | None = None) -> None:
        staged = self.stage_generation(room_id, trigger_id, agent_ids, handover_limit,
                                       cancel_current, replaces_id=replaces_id)
        try:
            db.session.commit()
        except BaseException:
            staged.abandon()
            raise
        staged.start()

    def stage_generation(self, room_id: str, trigger_id: str, agent_ids: list[str],
                         handover_limit: int = MAX_HANDOVERS, cancel_current: bool = True,
                         replaces_id: str | None = None) -> StagedGeneration:
        """Write a generation's turns in the session's transaction (the caller commits, then
        calls `start()`, or `abandon()` when the commit failed)."""
        staged = self.prepare_generation(room_id, agent_ids, cancel_current, before=trigger_id)
        try:
            staged.write(trigger_id, handover_limit, replaces_id=replaces_id)
        except BaseException:
            staged.abandon()
            raise
        return staged

    def prepare_generation(self, room_id: str, agent_ids: list[str],
                           cancel_current: bool = True,
                           before: str | None = None) -> StagedGeneration:
        """What a generation needs of this process's locks, taken before the caller's first
        database write: a thread waiting here must not hold a row or SQLite's write lock that
        the room's drain, holding the runner's lock, waits for."""
        runner = self.runner(room_id)
        lease = None
        if cancel_current:
            # Before the rows are written: a turn of this room deciding now whether to go back
            # to the queue for its rate limit must see that it was cancelled. Without `before`
            # (a post whose id is not made yet) whatever runs here is older.
            self._cancel_here(runner, before=before)
        if agent_ids:
            with runner.lock:
                runner.waiting = agent_ids[MAX_REPLIES:]
                runner.chain_stopped = None
                # Nothing runs the room here: take its lease now, so the first turn is stored
                # already running and goes straight to an agent thread.
                lease = None if runner.active else self.leases.take(room_id)
                if lease is not None:
                    runner.active = True
                    runner.idle.clear()
        return StagedGeneration(self, runner, list(agent_ids), cancel_current, lease)

    def _start_staged(self, staged: StagedGeneration) -> None:
        runner, trigger_id = staged.runner, staged.trigger_id
        room_id = runner.room_id
        if staged.first is not None:
            turn = turn_of(staged.first)
            with runner.lock:  # before any Stop can look for it
                runner.generation = turn.generation
        if staged.lease is not None:
            # Handed to an agent thread before the cancel event goes out: the turn's first
            # token waits for nothing else.
            self.pool.submit(self._drain, runner, staged.lease, staged.first)
        elif staged.has_agents:
            self.kick(room_id)
        if staged.cancel_current:
            # The reply running now (on this worker or another) is older: it stops, and its
            # worker, still holding the room's lease, goes on with this generation.
            self.hub.publish({"type": CANCEL_EVENT, "room_id": room_id, "html": None,
                              "data": {"before": trigger_id}})

    def _hand_back(self, runner: RoomRunner, lease: turns.Lease) -> None:
        lease.release()
        with runner.lock:
            runner.active = False
            runner.idle.set()

    def cancel(self, room_id: str) -> None:
        """Stop the room's agents on whichever worker runs them; that worker says so (this one
        too when a queued turn was cancelled: it may have been waiting for a rate limit)."""
        cancelled = turns.cancel_queued_replies(room_id)
        runner = self.runner(room_id)
        with runner.lock:
            runner.chain_stopped = None
        if self._cancel_here(runner) or cancelled:
            publish_status(room_id, {"state": "stopped"})
        self.hub.publish({"type": CANCEL_EVENT, "room_id": room_id, "html": None,
                          "data": {"announce": True}})

    def _cancel_here(self, runner: RoomRunner, before: str | None = None) -> bool:
        """Cancel the reply this process runs in the room (if older than `before`): at once,
        without waiting for the event to come back through the broker. True if one was."""
        with runner.lock:
            generation = runner.generation
            if generation is None or generation.cancel.is_set():
                return False
            if before and generation.trigger_id >= before:
                return False
            generation.cancel.set()
            return True

    def _on_cancel_event(self, event: dict) -> None:
        """Cancel the reply this process runs in the room if it is older than `before`."""
        data = event.get("data") or {}
        with self.lock:
            runner = self.runners.get(event.get("room_id", ""))
        if runner is None:
            return
        if self._cancel_here(runner, data.get("before")) and data.get("announce"):
            with self.app.app_context():
                publish_status(runner.room_id, {"state": "stopped"})

    def queue_summary(self, room_id: str, requested_by: str | None) -> None:
        turns.queue_summary(room_id, requested_by)
        self.kick(room_id)

    def wait_idle(self, room_id: str | None = None, timeout: float = 10.0) -> bool:
        """Block until the room (or every room) has nothing running or queued."""
        deadline = time.monotonic() + timeout
        while True:
            runners = [self.runner(room_id)] if room_id else list(self.runners.values())
            if not all(r.idle.wait(max(0.0, deadline - time.monotonic())) for r in runners):
                return False
            with self.app.app_context():
                try:
                    if not turns.has_open_turns(room_id):
                        return True
                finally:
                    db.session.remove()
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def kick(self, room_id: str) -> None:
        """Try for the room's lease on an agent thread, and run its queue if it is free."""
        runner = self.runner(room_id)
        with runner.lock:
            if runner.active:  # a drain here takes the new turns too (it re-reads the table)
                return
            runner.active = True
            runner.idle.clear()
        self.pool.submit(self._drain, runner)

    def _kick_at(self, runner: RoomRunner, when: datetime) -> None:
        """Kick the room when its waiting turn may start; no thread waits for it meanwhile."""
        timer = threading.Timer(max(0.0, (when - utcnow()).total_seconds()), self._wake,
                                [runner.room_id])
        timer.daemon = True
        with runner.lock:
            if runner.wake is not None:
                runner.wake.cancel()
            runner.wake = timer
        timer.start()

    def _wake(self, room_id: str) -> None:
        if not self.stopping.is_set():
            self.kick(room_id)

    # ---- the worker side ----
    def _drain(self, runner: RoomRunner, lease: turns.Lease | None = None,
               first: turns.Claimed | None = None) -> None:
        starts = None  # when the room's next turn may start, if this drain had the lease
        lease = lease or self.leases.take(runner.room_id)
        with self.app.app_context():
            try:
                if lease is not None:
                    with runner.lock:
                        runner.lease = lease
                    db.session().expire_on_commit = False
                    self._run_queue(runner, first)
            except Exception:  # the room stays queued: the next kick or poll takes it again
                log.exception("Agent turns failed in room %s", runner.room_id)
            finally:
                with runner.lock:
                    # Unless _run_queue let go already (then a newer drain may own the room).
                    if lease is None or not lease.released:
                        if lease is not None:
                            lease.release()
                        runner.lease, runner.active = None, False
                # A post that found the lease taken just before it was released left its turn
                # to this drain: look once more, now that anyone may take the lease.
                try:
                    starts = turns.next_start(runner.room_id) if lease is not None else None
                except Exception:
                    log.exception("Could not read the turns of room %s", runner.room_id)
                db.session.remove()
                waits = starts is not None and starts > utcnow()
                if lease is not None and not waits:  # a waiting turn's status line stays
                    with runner.lock:  # not over a newer drain's "answering"
                        if not runner.active:
                            publish_status(runner.room_id,
                                           runner.chain_stopped or {"state": "idle"})
        if starts is not None and not self.stopping.is_set():
            if waits:
                self._kick_at(runner, starts)
                self._settle_idle(runner)
            else:
                self.kick(runner.room_id)
        else:
            self._settle_idle(runner)

    def _settle_idle(self, runner: RoomRunner) -> None:
        with runner.lock:
            if not runner.active:
                runner.idle.set()

    def _run_queue(self, runner: RoomRunner, first: turns.Claimed | None = None) -> None:
        """Run the room's turns in order while this process holds its lease; `first` was
        claimed already (start_generation)."""
        while not self.stopping.is_set():
            with runner.lock:  # a cancel event sees the claimed turn's generation, or none
                if runner.lease is None:
                    return
                if first is not None:
                    claimed, first = first, None
                    turn = Turn("reply", runner.generation or turn_of(claimed).generation,
                                agent_id=claimed.agent_id)
                else:
                    claimed = turns.claim_next(runner.room_id)
                    if claimed is None:
                        # Let go at once, still under the runner's lock: a post from now on
                        # takes the lease itself and starts its turn without waiting for this
                        # drain to wind down.
                        runner.lease.release()
                        runner.lease, runner.active = None, False
                        return
                    turn = turn_of(claimed)
                runner.generation = turn.generation if turn.kind == "reply" else None
            generation = turn.generation
            try:
                # A turn re-reads nothing it committed itself, and its session ends with it:
                # keep its rows loaded across commits instead of re-selecting.
                db.session().expire_on_commit = False
                self._run(runner, turn, claimed)
            except Exception:  # one broken turn must not stop the room's queue
                log.exception("Agent turn failed in room %s", runner.room_id)
                db.session.rollback()
                # Its reply, if it had one, would read "writing…" forever.
                turns.settle_abandoned(runner.room_id)
            finally:
                # Its agent is at its rate limit: back to the queue, and the next claim finds
                # the room waiting for it (the drain lets go and wakes the room in time).
                deferred = turn.not_before is not None and not generation.cancel.is_set()
                if deferred:
                    turns.defer(claimed, turn.not_before)
                with runner.lock:
                    runner.generation = None
                    stopped = generation.cancel.is_set()
                if not deferred:
                    turns.finish(claimed, generation.replies, generation.handovers,
                                 generation.planned)
                elif stopped:  # Stop came while it went back to the queue
                    turns.cancel(claimed)
                db.session.remove()

    def _run(self, runner: RoomRunner, turn: Turn, claimed: turns.Claimed) -> None:
        if turn.kind == "summary":
            summarize_room(runner.room_id, turn.requested_by)
            return
        handed_to = run_reply(runner, turn)
        generation = turn.generation
        if not handed_to or generation.cancel.is_set():
            return
        queued = turns.queued_agent_ids(claimed.generation_id)
        wanted = [a for a in handed_to if a.id not in queued]
        stall = progress.generation_stall(runner.room_id, claimed.generation_id,
                                          claimed.trigger_id) if wanted else None
        granted = []
        for agent in wanted if stall is None else []:
            if (generation.handovers >= generation.handover_limit
                    or generation.replies + len(granted) + len(queued) >= generation.reply_limit):
                break
            generation.handovers += 1
            granted.append(agent)
        turns.queue_handovers(claimed, [a.id for a in granted])
        generation.planned += len(granted)
        refused = wanted[len(granted):]
        stopped = chain_stopped_status(generation, refused, stall) if refused else None
        with runner.lock:
            runner.waiting = [a.id for a in refused]
            runner.chain_stopped = stopped
        db.session.commit()
        if stopped:
            publish_status(runner.room_id, stopped)

    # ---- background: leases and the poll ----
    def _keep_leases(self) -> None:
        """Renew the leases this process holds; a lost one stops its room's reply."""
        while not self.stopping.wait(turns.RENEW_SECONDS):
            with self.lock:
                runners = list(self.runners.values())
            for runner in runners:
                lease = runner.lease
                try:
                    if lease is None or lease.renew():
                        continue
                except Exception:  # the others' leases must still be renewed
                    log.exception("Could not renew the lease of room %s", runner.room_id)
                    continue
                log.warning("Room %s: the lease lapsed; its reply stops here", runner.room_id)
                with runner.lock:
                    runner.lease = None
                    if runner.generation is not None:
                        runner.generation.cancel.set()

    def _poll(self) -> None:
        """Find rooms with turns nobody runs: at start, then (with Redis) every POLL_SECONDS."""
        first = True
        while not self.stopping.is_set():
            try:
                with self.app.app_context():
                    try:
                        # At start, also the rooms that wait: their drain sets them a wake-up.
                        rooms = turns.rooms_with_open_turns(waiting_too=first)
                    finally:
                        db.session.remove()
                for room_id in rooms:
                    self.kick(room_id)
            except DATABASE_UNAVAILABLE as error:  # a fault outside the app: say it, look again
                log.warning("Could not look for agent turns to run: database unavailable (%s)",
                            type(error).__name__)
            except Exception:
                log.exception("Could not look for agent turns to run")
            first = False
            if not self.shared or self.stopping.wait(turns.POLL_SECONDS):
                return


def chain_stopped_status(generation: Generation, refused: list[TurnAgent],
                         stall: progress.Stall | None) -> dict:
    """The status line of a chain stopped with agents left waiting: by the count budget, or
    (with `stall`) by the loop guard, saying why; both offer "Continue"."""
    status = {"state": "budget_spent", "replies": generation.replies,
              "handovers": generation.handovers,
              "waiting": ", ".join(a.name for a in refused), "continue": CONTINUE_GRANT}
    if stall is not None:
        status.update(state="no_progress", reason=stall.reason, why=stall.why)
    return status


def turn_of(claimed: turns.Claimed) -> Turn:
    """The running copy of a claimed turn, with its generation's budget so far."""
    if claimed.generation_id is None:
        return Turn(claimed.kind, Generation(trigger_id="summary"),
                    requested_by=claimed.requested_by)
    generation = Generation(trigger_id=claimed.trigger_id, replies=claimed.replies,
                            handovers=claimed.handovers, handover_limit=claimed.handover_limit,
                            reply_limit=claimed.reply_limit, planned=claimed.planned,
                            replaces_id=claimed.replaces_id)
    return Turn(claimed.kind, generation, agent_id=claimed.agent_id,
                handed_over_by=claimed.handed_over_by, requested_by=claimed.requested_by)


_engine_lock = threading.Lock()


def engine_for(app: Flask | None = None) -> Engine:
    app = app or current_app._get_current_object()
    engine = app.extensions.get(EXTENSION_KEY)
    if engine is None:
        with _engine_lock:  # two first requests at once must not build two
            engine = app.extensions.get(EXTENSION_KEY)
            if engine is None:
                engine = app.extensions[EXTENSION_KEY] = Engine(app)
    engine.start()
    return engine


_apps: weakref.WeakSet[Flask] = weakref.WeakSet()


def init_app(app: Flask) -> None:
    """Start the app's engine with its first request (or its worker's boot, start_engines): it
    settles what an earlier process left (a reply cut off by a crash is marked interrupted) and
    runs the turns still queued."""
    _apps.add(app)

    def start_engine() -> None:
        if EXTENSION_KEY not in app.extensions:
            engine_for(app)

    app.before_request(start_engine)


def start_engines() -> None:
    """Start the engine of every app of this process (gunicorn calls it as a worker boots, so a
    worker that has had no request yet still takes over rooms whose worker died)."""
    for app in list(_apps):
        engine_for(app)


def on_user_message(message: Message) -> None:
    """Start the agents a just-posted (committed) message mentions; see agent_turns_for."""
    agent_ids = [] if message.humans_only else [
        m.mentioned_agent_id for m in sorted(message.mentions, key=lambda m: m.id)]
    staged = agent_turns_for(message.room_id, agent_ids)
    try:
        staged.write(message)
        if staged.staged is not None:
            db.session.commit()
    except BaseException:
        staged.abandon()
        raise
    staged.start()


class PostTurns:
    """What a post sets off in the engine: its agents' turns, stored in the post's own
    transaction (so they are durable the moment the message is), started after its commit."""

    def __init__(self, room_id: str, staged: StagedGeneration | None):
        self.room_id = room_id
        self.staged = staged

    def write(self, message: Message) -> None:
        if self.staged is not None:
            self.staged.write(message.id)

    def start(self) -> None:
        if self.staged is not None:
            self.staged.start()
        maybe_auto_summarize(self.room_id)

    def abandon(self) -> None:
        if self.staged is not None:
            self.staged.abandon()


def agent_turns_for(room_id: str, agent_ids: list[str]) -> PostTurns:
    """The turns of the agents a post mentions, in mention order (post_user_message's
    `along`): called before the post's first write, written in its transaction.

    A message that addresses agents cancels whatever agents were still doing in the room; one
    that addresses none (or is humans-only) lets them carry on. This runs on every post and,
    unless a summary is due, queries nothing when no agent is mentioned.
    """
    staged = engine_for().prepare_generation(room_id, agent_ids) if agent_ids else None
    return PostTurns(room_id, staged)


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
        refuse_continue_over_budget(room, last.reply_to_id or last.id, agents[0])
        engine_for().start_generation(room.id, last.reply_to_id or last.id,
                                      [a.id for a in agents][:CONTINUE_GRANT],
                                      handover_limit=CONTINUE_GRANT - 1)
    return agents


def refuse_continue_over_budget(room: Room, trigger_id: str, agent: Agent) -> None:
    """Continue is refused like a turn when a budget covering it is spent: the room is told
    and BudgetSpent raised for the person who asked."""
    try:
        usage.check_can_start(room.id, trigger_id=trigger_id, who=f"**{agent.name}**")
    except usage.BudgetSpent as refusal:
        post_system_message(room, f"⚠️ {refusal.message}")
        raise


class CannotRetry(DiscuxError):
    status = 409
    code = "cannot_retry"


def _reply_to_ask_again(room: Room, message_id: str) -> Message:
    """The room's agent reply `message_id`, or CannotRetry saying why there is none."""
    reply = db.session.scalar(
        sa.select(Message).where(Message.id == message_id, Message.room_id == room.id))
    if reply is None or reply.type != "agent":
        raise CannotRetry("There is no agent reply with that id in this room.")
    return reply


def _agent_to_ask_again(room: Room, reply: Message) -> Agent:
    """The agent that wrote `reply`, free to answer its trigger again (else CannotRetry)."""
    agent = next((a for a in room_agents(room.id) if a.id == reply.sender_id), None)
    if agent is None:
        raise CannotRetry(f"{reply.sender_name or 'This agent'} is no longer in the room.")
    if reply.reply_to_id is None:
        raise CannotRetry("The message this reply answered was deleted: ask the agent again.")
    if turns.is_queued(room.id, agent.id, reply.reply_to_id):
        raise CannotRetry(f"{agent.name} is already about to answer that message again.")
    return agent


def retry_reply(room: Room, message_id: str) -> Agent:
    """Ask the agent of an interrupted reply again, for the message it was answering."""
    reply = _reply_to_ask_again(room, message_id)
    if reply.status != "interrupted":
        raise CannotRetry("Only a reply that was interrupted can be retried.")
    agent = _agent_to_ask_again(room, reply)
    engine_for().start_generation(room.id, reply.reply_to_id, [agent.id], cancel_current=False)
    return agent


def regenerate_reply(room: Room, message_id: str) -> Agent:
    """Ask the agent of a reply to answer its trigger again, through the turn queue; its new
    reply replaces this one in the room (which stays readable as an earlier version). The
    regeneration hands over to nobody: whom the reply mentions waits for Continue."""
    reply = _reply_to_ask_again(room, message_id)
    if reply.replaced_by_id is not None:
        raise CannotRetry("This reply was regenerated already: regenerate its newest version.")
    if reply.status == "streaming":
        raise CannotRetry(f"{reply.sender_name or 'The agent'} is still writing this reply.")
    agent = _agent_to_ask_again(room, reply)
    engine_for().start_generation(room.id, reply.reply_to_id, [agent.id], handover_limit=0,
                                  cancel_current=False, replaces_id=reply.id)
    return agent


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


def rate_limit_frees_at(agent: TurnAgent) -> datetime:
    """When the agent, having used its replies for this minute, may answer again: once the
    oldest reply that counts has left the window (read from the messages, so the limit holds
    whichever worker wrote them)."""
    now = utcnow()
    recent = list(db.session.scalars(AGENT_REPLY_TIMES, {
        "agent_id": agent.id, "since": now - timedelta(seconds=60)}))
    db.session.rollback()  # end the read: the turn's next look must see new rows
    if len(recent) < AGENT_REPLIES_PER_MINUTE:
        return now
    # The window includes its first instant: the reply must be a little older than a minute.
    return recent[-AGENT_REPLIES_PER_MINUTE] + timedelta(seconds=60, milliseconds=50)


def wait_while_people_type(room_id: str, generation: Generation) -> bool:
    """People first: hold the turn while someone in the room (not the trigger's author, who
    just sent it) is typing, PEOPLE_FIRST_WAIT seconds at most, saying so on the status line.
    False when the generation was cancelled meanwhile. Costs one dict lookup when nobody types."""
    hub = hub_for()
    typing = hub.typing(room_id)
    if not typing:
        return True
    author = db.session.scalar(sa.select(Message.sender_id).where(
        Message.id == generation.trigger_id))
    db.session.rollback()  # end the read: the turn's own reads must see what comes meanwhile
    deadline = time.monotonic() + PEOPLE_FIRST_WAIT
    shown = None
    while True:
        names = sorted(name for user_id, name in hub.typing(room_id).items() if user_id != author)
        left = deadline - time.monotonic()
        if not names or left <= 0:
            return True
        if names != shown:
            shown = names
            publish_status(room_id, {"state": "people_typing", "names": " and ".join(names)})
        if generation.cancel.wait(min(0.2, left)):
            return False


def run_reply(runner: RoomRunner, turn: Turn) -> list[TurnAgent]:
    """Stream one agent's reply into a message row; returns the agents it hands over to.

    The model is asked as early as possible: the few reads the prompt needs come first, then the
    request goes out on another thread while this one announces the turn and the reply row and
    stores the row. The thread that receives the first piece publishes it as soon as the row has
    been announced, so neither the row's write nor a thread hand-off delays the first token."""
    generation = turn.generation
    room_id = runner.room_id
    if not wait_while_people_type(room_id, generation):
        return []
    # Everything the prompt needs in one round trip, with the room's agents as rows (a deleted
    # room, or an agent removed from it, has none here) and whether the replying agent may
    # answer now: the count is read from the messages, so the limit holds whichever worker
    # wrote them.
    # A regenerated reply is written from the history its earlier version saw.
    reads = read_turn(room_id, turn.agent_id, utcnow() - timedelta(seconds=60),
                      trigger_id=generation.trigger_id, before=generation.replaces_id)
    in_room = {a.id: a for a in reads.agents}
    agent = in_room.get(turn.agent_id)
    if agent is None:
        return []
    if agent.recent_replies >= AGENT_REPLIES_PER_MINUTE:
        # It waits in the queue, not on this thread; its prompt is read when it runs.
        turn.not_before = rate_limit_frees_at(agent)
        publish_status(room_id, {"state": "waiting", "agent": agent.name, "seconds": round(
            max(0.0, (turn.not_before - utcnow()).total_seconds()))})
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
        replaces_id=generation.replaces_id,
    )
    call = start_reply_call(runner, agent, reads, reply.id, prompt, style.max_tokens,
                            agent.model or provider.default_model)
    if call is None:
        return []
    reported = Usage()
    first_piece = FirstPiece(current_app._get_current_object(), reply, generation)
    # Stop (or a newer message) cuts the model request off, waiting for its first token or not.
    abort = Abort()
    forget_abort = generation.cancel.when_set(abort.abort)
    deltas = iter(provider.stream_chat(
        prompt.messages, model=agent.model, temperature=style.temperature,
        max_tokens=style.max_tokens, on_sent=first_piece.request_sent.set, abort=abort,
        usage=reported,
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
        forget_abort()
        first_piece.give_up()
        abort.abort()  # a request still running is not needed any more (a no-op once done)
        # The stream is closed by whichever thread is done with it last: the request thread
        # may still be inside its first read (it returns at once, aborted).
        if first_delta.cancel() or first_delta.done():
            deltas.close()
        else:
            first_delta.add_done_callback(lambda _: deltas.close())
    elapsed = time.monotonic() - started

    content = "".join(text).strip()
    said_nothing = not content and (failure or generation.cancel.is_set())
    figures = usage.figures_of(call, reported, content, len(logprobs) or None,
                               prompt_sent=not (said_nothing and failure))
    log_model_call(
        room_id=room_id, agent_id=agent.id, model=call.model,
        prompt_tokens=figures.prompt_tokens, reply_tokens=figures.completion_tokens,
        seconds=elapsed, outcome="failed" if failure else
        "stopped" if generation.cancel.is_set() else "complete")
    usage.settle(call, figures)
    if said_nothing:
        # Nothing was said: the placeholder goes (stopped before the first token, or failed).
        db.session.delete(reply)
        record_deletion(room_id, reply.id)
        db.session.commit()
        publish(room_id, "message.deleted", {"id": reply.id})
        if failure:
            tell_room(room_id, f"⚠️ **{agent.name}** {COULD_NOT_ANSWER}: {failure}.")
        return []

    reply.content = content
    reply.content_html = render_markdown(content) if content else ""
    reply.processing_time = round(elapsed, 3)
    confidence = mean_probability(logprobs)
    reply.agent_confidence = round(confidence, 2) if confidence is not None else None
    reply.prompt_tokens, reply.completion_tokens = figures.prompt_tokens, figures.completion_tokens
    reply.usage_estimated, reply.cost_usd = figures.estimated, figures.cost_usd
    if failure:
        reply.status = "failed"
    elif generation.cancel.is_set():
        reply.status = "stopped"
    else:
        reply.status = "complete"
        db.session.execute(COUNT_AGENT_USE, {"agent_id": agent.id})
    replaced = versions.retire_replaced(reply) if reply.replaces_id else None
    db.session.commit()
    publish_message_completed(reply)
    if replaced is not None:
        versions.publish_replaced(replaced)
    if failure:
        tell_room(room_id, f"⚠️ **{agent.name}** was cut off: {failure}.")
        return []
    if reply.status != "complete":
        return []
    maybe_auto_summarize(room_id)
    mentioned = resolve_mentions(content, list(in_room.values()))
    return [a for a in mentioned if a.id != agent.id]


def start_reply_call(runner: RoomRunner, agent: TurnAgent, reads, reply_id: str, prompt,
                     max_tokens: int, model: str | None) -> usage.Call | None:
    """The reply's usage, reserved against the budgets that cover it (the room's, the asking
    person's plan, the instance's: read with the prompt); None when one would be passed: the
    room is told why and the room's other queued replies wait for Continue."""
    call = usage.Call("reply", model, prompt.receipt.get("token_estimate") or 0,
                      room_id=runner.room_id, agent_id=agent.id, message_id=reply_id)
    facts = usage.facts_of(reads.budgets, reads.payer)
    call.user_id = facts.user_id
    try:
        return usage.reserve(call, facts, max_tokens, who=f"**{agent.name}**")
    except usage.BudgetSpent as refusal:
        refuse_for_budget(runner, agent, refusal)
        return None


def refuse_for_budget(runner: RoomRunner, agent: TurnAgent, refusal: usage.BudgetSpent) -> None:
    """A turn that would pass a budget: the room's queued replies wait (Continue asks again),
    and a system message says which budget, what is left and who can raise it."""
    turns.cancel_queued_replies(runner.room_id)
    with runner.lock:
        runner.waiting = [agent.id]
    tell_room(runner.room_id, f"⚠️ {refusal.message}")
    publish_status(runner.room_id, {"state": "token_budget", "budget": refusal.label,
                                    "waiting": agent.name, "continue": CONTINUE_GRANT})


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
            publish_message_delta(self.room_id, self.reply_id, delta.text, 0)
        return delta, True


def first_piece_or_stop(first_delta: Future, generation: Generation) -> bool:
    """Wait for the request thread's first piece; False when the turn was stopped before it came
    (the turn ends now: its aborted request returns on its own)."""
    woken = threading.Event()
    first_delta.add_done_callback(lambda _: woken.set())
    forget = generation.cancel.when_set(woken.set)
    try:
        woken.wait()
    finally:
        forget()
    if not first_delta.done():
        # Stopped: the aborted request returns at once, or it is publishing the first piece,
        # which the reply then keeps (the room saw it).
        wait_for_futures([first_delta], timeout=FIRST_PIECE_AFTER_STOP)
    return first_delta.done()


# Built once: the text of a streaming reply so far, written every STORE_EVERY seconds.
STORE_STREAMED_TEXT = (
    sa.update(Message).where(Message.id == sa.bindparam("reply_id"))
    .values(content=sa.bindparam("text"))
    .execution_options(synchronize_session=False)
)


def store_streamed_text(reply: Message, text: str) -> None:
    """Write the reply's text so far to its row (its changed_at moves with it)."""
    db.session.execute(STORE_STREAMED_TEXT, {"reply_id": reply.id, "text": text})
    db.session.commit()


def stream_into(reply: Message, deltas: Iterator[Delta], first_delta: Future,
                generation: Generation) -> tuple[list[str], list[float], str | None]:
    """Publish the reply's pieces as they come: the first at once, then at most one socket
    update per DELTA_INTERVAL; what was published is stored every STORE_EVERY seconds. Returns
    the text pieces, token log-probabilities and the failure (None when the stream ended
    normally or was stopped)."""
    text: list[str] = []
    logprobs: list[float] = []
    pending: list[str] = []
    last_push = 0.0  # so the first piece goes out the moment it arrives
    last_store = time.monotonic()
    published = 0  # characters of the text sent so far: the next piece's offset
    try:
        if not first_piece_or_stop(first_delta, generation):
            return text, logprobs, None
        delta, first_published = first_delta.result()
        if first_published:
            text.append(delta.text)
            logprobs.extend(delta.logprobs)
            last_push = time.monotonic()
            published = len(delta.text)
            delta = next(deltas, None)
        while delta is not None:
            if generation.cancel.is_set():
                break
            text.append(delta.text)
            pending.append(delta.text)
            logprobs.extend(delta.logprobs)
            now = time.monotonic()
            if now - last_push >= DELTA_INTERVAL:
                piece = "".join(pending)
                publish_message_delta(reply.room_id, reply.id, piece, published)
                published += len(piece)
                pending.clear()
                last_push = now
                if now - last_store >= STORE_EVERY:
                    store_streamed_text(reply, "".join(text))
                    last_store = now
            delta = next(deltas, None)
    except LLMError as error:
        if generation.cancel.is_set():
            return text, logprobs, None  # the aborted request: stopped, not failed
        return text, logprobs, error.message
    finally:
        if pending and not generation.cancel.is_set():
            publish_message_delta(reply.room_id, reply.id, "".join(pending), published)
    return text, logprobs, None


def tell_room(room_id: str, text: str) -> None:
    """Post a notice from Discux in the room, unless the room is gone."""
    room = db.session.get(Room, room_id)
    if room is not None:
        post_system_message(room, text)
