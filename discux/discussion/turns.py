"""The durable turn queue and the room lease: which agent turn runs next, and who may run it.

Turns are rows of `agent_turns`, in the room's order (their integer id). A room's turns run one
at a time on whichever worker holds the room's *lease*: with Redis (several workers or hosts)
a redis-py `Lock` with a timeout, which its holder renews while it runs and which expires by
itself when the holder dies; without Redis (one process) an in-process lock. The worker that
took a post tries for the lease at once; with Redis every worker also looks at the table every
POLL_SECONDS for rooms whose turns nobody is running. A worker that takes a room's lease and
finds a turn still `running` knows its owner died: that turn and its streaming reply are marked
`interrupted`, keeping what was written, and the room's queued turns run on in order.

A turn whose agent is at its rate limit goes back to the queue with a `not_before` time and
its worker lets go of the room: no thread waits for it, and nothing in its room starts before
it. The worker wakes the room at that time (and, with Redis, every worker's poll may).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import redis
import sqlalchemy as sa
from redis.exceptions import LockError, RedisError

from discux.extensions import db
from discux.ids import new_id, utcnow
from discux.messages.service import publish_message_completed, render_markdown
from discux.models import AgentGeneration, AgentTurn, Message
from discux.usage import settle_interrupted

log = logging.getLogger(__name__)
T = TypeVar("T")

# A lease outlives its holder by at most this long; the holder renews it every RENEW_SECONDS.
LEASE_SECONDS = 8
RENEW_SECONDS = 2
POLL_SECONDS = 1.0
LEASE_KEY = "discux:room-turn:{room_id}"
OPEN_STATES = ("queued", "running")


# ---- leases ----
class Lease(ABC):
    """The right to run one room's turns, until released (or, on Redis, until it expires)."""

    released = False

    def renew(self) -> bool:
        """Keep the lease; False when it was lost (the turn must stop)."""
        return True

    def release(self) -> None:
        """Give the lease back (once; later calls do nothing)."""
        if not self.released:
            self.released = True
            self._give_back()

    @abstractmethod
    def _give_back(self) -> None:
        """Hand the lease to whoever asks next (the lock's own release)."""


class LocalLease(Lease):
    def __init__(self, lock: threading.Lock):
        self.lock = lock

    def _give_back(self) -> None:
        self.lock.release()


class LocalLeases:
    """One process: a lock per room, shared by every app of the process on the same database
    (tests run several apps as workers of one process)."""

    _locks: dict[tuple[str, str], threading.Lock] = {}
    _guard = threading.Lock()

    def __init__(self, database_url: str):
        self.database_url = database_url

    def take(self, room_id: str) -> Lease | None:
        with self._guard:
            lock = self._locks.setdefault((self.database_url, room_id), threading.Lock())
        return LocalLease(lock) if lock.acquire(blocking=False) else None


class RedisLease(Lease):
    def __init__(self, lock: redis.lock.Lock):
        self.lock = lock

    def renew(self) -> bool:
        try:
            self.lock.reacquire()  # back to the full timeout
        except LockError:  # expired and maybe taken by another worker
            return False
        except RedisError as error:  # Redis away: the lease may still be ours, or may lapse
            log.warning("Could not renew a room lease in Redis (%s)", error)
        return True

    def _give_back(self) -> None:
        with contextlib.suppress(LockError, RedisError):  # lapsed already: nothing to give back
            self.lock.release()


class RedisLeases:
    """Several workers or hosts: a redis-py Lock per room with a timeout of LEASE_SECONDS."""

    def __init__(self, url: str):
        self.redis = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)

    def take(self, room_id: str) -> Lease | None:
        # Not thread-local: the engine's lease keeper renews what an agent thread took.
        lock = self.redis.lock(LEASE_KEY.format(room_id=room_id), timeout=LEASE_SECONDS,
                               thread_local=False)
        try:
            return RedisLease(lock) if lock.acquire(blocking=False) else None
        except RedisError as error:
            log.warning("Could not take a room lease in Redis (%s); the poll will retry", error)
            return None


def leases_for(app) -> LocalLeases | RedisLeases:
    url = app.config.get("DISCUX_REDIS_URL")
    if url:
        return RedisLeases(url)
    return LocalLeases(app.config["SQLALCHEMY_DATABASE_URI"])


# ---- the queue ----
# MariaDB rolls one of two transactions back when they wait on each other's locks: a turn's
# bookkeeping meets a post storing its turns in the post's own transaction, and is retried.
DEADLOCK = 1213
DEADLOCK_RETRIES = 3


def committed_retrying(write: Callable[[], T]) -> T:
    """Run `write` in a fresh transaction and commit it, again when MariaDB chose it as the
    victim of a deadlock (it only ran statements of its own, so running them again is right)."""
    for attempt in range(DEADLOCK_RETRIES):
        db.session.rollback()
        try:
            result = write()
            db.session.commit()
            return result
        except sa.exc.OperationalError as error:
            db.session.rollback()
            code = (getattr(error.orig, "args", None) or (None,))[0]
            if code != DEADLOCK or attempt == DEADLOCK_RETRIES - 1:
                raise
            log.info("A turn's write met a post's in a deadlock; retrying")
    raise AssertionError("unreachable")
@dataclass
class Claimed:
    """A turn taken from the queue (now `running`), with its generation's budget so far; plain
    values, so another thread may run it."""

    turn_id: int
    room_id: str
    kind: str
    agent_id: str | None = None
    handed_over_by: str | None = None
    requested_by: str | None = None
    generation_id: str | None = None
    trigger_id: str | None = None
    replies: int = 0
    handovers: int = 0
    handover_limit: int = 0
    reply_limit: int = 0
    planned: int = 0
    replaces_id: str | None = None  # a regeneration: the reply its one reply replaces

    @classmethod
    def of(cls, turn: AgentTurn, generation: AgentGeneration | None) -> Claimed:
        claimed = cls(turn.id, turn.room_id, turn.kind, turn.agent_id, turn.handed_over_by,
                      turn.requested_by)
        if generation is not None:
            claimed.generation_id, claimed.trigger_id = generation.id, generation.trigger_id
            claimed.replies, claimed.handovers = generation.replies, generation.handovers
            claimed.handover_limit, claimed.reply_limit = (generation.handover_limit,
                                                           generation.reply_limit)
            claimed.planned = generation.planned
            claimed.replaces_id = generation.replaces_id
        return claimed


# Core statements on the tables, built once: a post runs them before its agent is asked, and
# the ORM's unit of work would cost more than the SQL.
TURNS = AgentTurn.__table__
CANCEL_QUEUED_REPLIES = (
    sa.update(TURNS)
    .where(TURNS.c.room_id == sa.bindparam("room"), TURNS.c.state == "queued",
           TURNS.c.kind == "reply")
    .values(state="cancelled", ended_at=sa.bindparam("now")))
OPEN_TURN_OF_ROOM = (
    sa.select(TURNS.c.id)
    .where(TURNS.c.room_id == sa.bindparam("room"), TURNS.c.state.in_(OPEN_STATES)).limit(1))
INSERT_GENERATION = sa.insert(AgentGeneration.__table__)
INSERT_TURN = sa.insert(TURNS)


def queue_generation(room_id: str, trigger_id: str, agent_ids: Iterable[str], *,
                     handover_limit: int, reply_limit: int, cancel_queued: bool,
                     start_first: bool = False, replaces_id: str | None = None,
                     commit: bool = True) -> Claimed | None:
    """Store a generation and its agents' turns, in order; with `cancel_queued`, the room's
    queued replies are cancelled in the same transaction.

    With `start_first` (the caller holds the room's lease), the first turn is stored already
    running when nothing is ahead of it, and returned: one commit instead of two before the
    model is asked. Without `commit` the rows go with the caller's transaction (a post's own:
    the turns are stored with the message that sets them off, in its one commit)."""
    now = utcnow()
    if cancel_queued:
        db.session.execute(CANCEL_QUEUED_REPLIES, {"room": room_id, "now": now})
    agent_ids = list(agent_ids)
    start_first = start_first and bool(agent_ids) and db.session.scalar(
        OPEN_TURN_OF_ROOM, {"room": room_id}) is None
    generation_id = new_id()
    db.session.execute(INSERT_GENERATION, {
        "id": generation_id, "room_id": room_id, "trigger_id": trigger_id, "replies": 0,
        "handovers": 0, "handover_limit": handover_limit, "reply_limit": reply_limit,
        "planned": len(agent_ids), "created_at": now, "replaces_id": replaces_id})
    rows = [{"room_id": room_id, "generation_id": generation_id, "kind": "reply",
             "agent_id": agent_id, "handed_over_by": None, "requested_by": None,
             "state": "queued", "created_at": now, "started_at": None}
            for agent_id in agent_ids]
    claimed = None
    if start_first:
        first = rows.pop(0)
        first.update(state="running", started_at=now)
        turn_id = db.session.execute(INSERT_TURN, first).inserted_primary_key[0]
        claimed = Claimed(turn_id, room_id, "reply", agent_id=first["agent_id"],
                          generation_id=generation_id, trigger_id=trigger_id,
                          handover_limit=handover_limit, reply_limit=reply_limit,
                          planned=len(agent_ids), replaces_id=replaces_id)
    if rows:
        db.session.execute(INSERT_TURN, rows)  # one executemany, in order
    if commit:
        db.session.commit()
    return claimed


def queue_summary(room_id: str, requested_by: str | None) -> None:
    db.session.add(AgentTurn(room_id=room_id, kind="summary", requested_by=requested_by))
    db.session.commit()


def queue_handovers(claimed: Claimed, agent_ids: list[str]) -> None:
    db.session.add_all(AgentTurn(room_id=claimed.room_id, generation_id=claimed.generation_id,
                                 kind="reply", agent_id=agent_id,
                                 handed_over_by=claimed.agent_id)
                       for agent_id in agent_ids)


def cancel_queued_replies(room_id: str, commit: bool = True) -> int:
    """Cancel the room's replies that have not started (summaries still run)."""
    result = db.session.execute(CANCEL_QUEUED_REPLIES, {"room": room_id, "now": utcnow()})
    if commit:
        db.session.commit()
    return result.rowcount


def queued_agent_ids(generation_id: str) -> set[str]:
    return set(db.session.scalars(
        sa.select(AgentTurn.agent_id).where(AgentTurn.generation_id == generation_id,
                                            AgentTurn.state == "queued")))


def is_queued(room_id: str, agent_id: str, trigger_id: str) -> bool:
    """Whether the agent has a turn not yet ended for that trigger."""
    return db.session.scalar(
        sa.select(AgentTurn.id).join(AgentGeneration)
        .where(AgentTurn.room_id == room_id, AgentTurn.agent_id == agent_id,
               AgentTurn.state.in_(OPEN_STATES), AgentGeneration.trigger_id == trigger_id)
        .limit(1)) is not None


def claim_next(room_id: str) -> Claimed | None:
    """Mark the room's first queued turn running and return it (the caller holds the lease).

    A turn still `running` here lost its worker (this one holds the lease): it comes first in
    the room's order, as turns start in order, and is settled (settle_abandoned) on the way."""
    while True:
        db.session.rollback()  # a fresh read: MariaDB would answer from the last snapshot
        found = db.session.execute(
            sa.select(AgentTurn, AgentGeneration).outerjoin(AgentGeneration)
            .where(AgentTurn.room_id == room_id, AgentTurn.state.in_(OPEN_STATES))
            .order_by(AgentTurn.id).limit(1)).first()
        if found is None:
            return None
        turn, generation = found
        if turn.state == "running":
            settle_abandoned(room_id)
            continue
        if turn.not_before is not None and turn.not_before > utcnow():
            db.session.rollback()
            return None  # it waits for its agent's rate limit, and the room with it
        claimed = Claimed.of(turn, generation)
        taken = committed_retrying(lambda turn_id=turn.id: db.session.execute(
            sa.update(TURNS).where(TURNS.c.id == turn_id, TURNS.c.state == "queued")
            .values(state="running", started_at=utcnow())).rowcount)
        if taken:  # else Stop cancelled it between the two statements: take the next
            return claimed


def finish(claimed: Claimed, replies: int, handovers: int, planned: int) -> None:
    """The turn ended (however it ended); its generation keeps the budget it used."""
    def write() -> None:
        db.session.execute(sa.update(TURNS).where(TURNS.c.id == claimed.turn_id,
                                                  TURNS.c.state == "running")
                           .values(state="done", ended_at=utcnow()))
        if claimed.generation_id is not None:
            generations = AgentGeneration.__table__
            db.session.execute(
                sa.update(generations).where(generations.c.id == claimed.generation_id)
                .values(replies=replies, handovers=handovers, planned=planned))
    committed_retrying(write)


def defer(claimed: Claimed, until: datetime) -> None:
    """Put a running turn back in the queue, still first in its room, not to start before
    `until`."""
    committed_retrying(lambda: db.session.execute(
        sa.update(TURNS).where(TURNS.c.id == claimed.turn_id, TURNS.c.state == "running")
        .values(state="queued", started_at=None, not_before=until)))


def cancel(claimed: Claimed) -> None:
    """Cancel a turn that is queued (Stop came while it was being put back)."""
    committed_retrying(lambda: db.session.execute(
        sa.update(TURNS).where(TURNS.c.id == claimed.turn_id, TURNS.c.state == "queued")
        .values(state="cancelled", ended_at=utcnow())))


def next_start(room_id: str) -> datetime | None:
    """When the room's next turn may start (now, unless it waits for a rate limit); None when
    the room has no turn queued or running."""
    db.session.rollback()
    found = db.session.execute(
        sa.select(TURNS.c.not_before)
        .where(TURNS.c.room_id == room_id, TURNS.c.state.in_(OPEN_STATES))
        .order_by(TURNS.c.id).limit(1)).first()
    db.session.rollback()
    if found is None:
        return None
    return found.not_before or utcnow()


def settle_abandoned(room_id: str) -> list[Message]:
    """With the room's lease in hand: turns still `running` lost their worker. Mark them and
    the room's streaming replies `interrupted`, keeping what was written; returns the replies."""
    db.session.rollback()
    abandoned = db.session.execute(
        sa.update(AgentTurn).where(AgentTurn.room_id == room_id, AgentTurn.state == "running")
        .values(state="interrupted", ended_at=utcnow())).rowcount
    replies = list(db.session.scalars(
        sa.select(Message).where(Message.room_id == room_id, Message.type == "agent",
                                 Message.status == "streaming")))
    for reply in replies:
        reply.status = "interrupted"
        reply.content = (reply.content or "").strip()
        reply.content_html = render_markdown(reply.content) if reply.content else ""
    settle_interrupted([reply.id for reply in replies])
    db.session.commit()
    if abandoned or replies:
        log.warning("Room %s: %d turn(s) lost their worker; %d reply(s) marked interrupted",
                    room_id, abandoned, len(replies))
    for reply in replies:
        publish_message_completed(reply)
    return replies


def rooms_with_open_turns(waiting_too: bool = True) -> list[str]:
    """Rooms with turns queued or running; without `waiting_too`, not those whose next turn
    waits for a rate limit."""
    db.session.rollback()
    query = sa.select(TURNS.c.room_id).where(TURNS.c.state.in_(OPEN_STATES)).distinct()
    if not waiting_too:
        query = query.where(TURNS.c.room_id.not_in(
            sa.select(TURNS.c.room_id).where(TURNS.c.state == "queued",
                                             TURNS.c.not_before > utcnow())))
    rooms = list(db.session.scalars(query))
    db.session.rollback()
    return rooms


def has_open_turns(room_id: str | None = None, fresh: bool = True) -> bool:
    """Whether the room (or any room) has turns queued or running; `fresh` reads in a
    transaction of its own."""
    if fresh:
        db.session.rollback()
    query = sa.select(AgentTurn.id).where(AgentTurn.state.in_(OPEN_STATES)).limit(1)
    if room_id is not None:
        query = query.where(AgentTurn.room_id == room_id)
    found = db.session.scalar(query) is not None
    if fresh:
        db.session.rollback()
    return found
