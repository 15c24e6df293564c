"""Fan-out between processes: one interface, an in-process broker (default) and Redis pub/sub.

Every event published anywhere is handed exactly once to `deliver` in every process that holds
sockets, which pushes it to its own sockets. With Redis, a process's own events also come back
through Redis, so all processes (and all their listeners) see the same order.

The broker also keeps presence per process (who has a socket open in which room, and whether it
is active), so a user with tabs on two workers is online while either is.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import redis

log = logging.getLogger("discux.realtime")

Deliver = Callable[[dict], None]
STATE_RANK = {"offline": 0, "away": 1, "online": 2}


def best_state(states) -> str:
    """A user with several sockets is as present as the most present one."""
    return max(states, key=STATE_RANK.__getitem__, default="offline")


class Broker(ABC):
    """Carries `{"type", "room_id", "data", "html"}` events to every process."""

    def __init__(self, deliver: Deliver):
        self._deliver = deliver

    @abstractmethod
    def publish(self, event: dict) -> None:
        """Hand the event to every process's `deliver` (this one's included)."""

    @abstractmethod
    def set_presence(self, room_id: str, user_id: str, state: str) -> None:
        """Record this process's view of a user in a room ("offline" forgets it)."""

    @abstractmethod
    def presence(self, room_id: str) -> dict[str, str]:
        """Every user's state in the room across all processes (users not listed are offline)."""

    def refresh_presence(self, entries: dict[tuple[str, str], str]) -> None:  # noqa: B027
        """Heartbeat: this process's entries are still true."""

    def close(self) -> None:  # noqa: B027 (an optional hook: nothing to release by default)
        """Release what the broker holds."""


class InProcessBroker(Broker):
    """One process: publishing is delivering."""

    def __init__(self, deliver: Deliver):
        super().__init__(deliver)
        self._presence: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def publish(self, event: dict) -> None:
        self._deliver(event)

    def set_presence(self, room_id: str, user_id: str, state: str) -> None:
        with self._lock:
            room = self._presence.setdefault(room_id, {})
            if state == "offline":
                room.pop(user_id, None)
                if not room:
                    self._presence.pop(room_id, None)
            else:
                room[user_id] = state

    def presence(self, room_id: str) -> dict[str, str]:
        with self._lock:
            return dict(self._presence.get(room_id, {}))


def redacted(url: str) -> str:
    """The URL without its password, fit for a log line."""
    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}" + (
            f":{parts.port}" if parts.port else "")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


class RedisBroker(Broker):
    """Redis pub/sub on one channel, with a listener thread that reconnects with backoff."""

    CHANNEL = "discux:room-events"
    PRESENCE_KEY = "discux:presence:{room_id}"
    PRESENCE_TTL = 90  # seconds an entry stays true without a heartbeat (a worker that died)
    MAX_BACKOFF = 30.0

    def __init__(self, url: str, deliver: Deliver, on_reconnect: Callable[[], None] | None = None):
        super().__init__(deliver)
        self.url = url
        self._client = redis.Redis.from_url(
            url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=15
        )
        self._process = f"{os.getpid()}-{secrets.token_hex(4)}"
        # This process's own presence, what is shown while Redis is away.
        self._local = InProcessBroker(deliver)
        self._on_reconnect = on_reconnect
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="discux-redis-listener",
                                        daemon=True)
        self._thread.start()
        # Sockets registered before the subscription exists would miss events: wait a moment.
        self._subscribed.wait(timeout=2)

    # ---- events ----
    def publish(self, event: dict) -> None:
        try:
            self._client.publish(self.CHANNEL, json.dumps(event, separators=(",", ":")))
        except redis.RedisError as error:
            log.error("Redis at %s is unreachable (%s): event %s for room %s reaches only this "
                      "process's sockets; the others replay it when they reconnect",
                      redacted(self.url), error, event.get("type"), event.get("room_id"))
            self._deliver(event)

    def _listen(self) -> None:
        backoff = 0.5
        failed = False
        while not self._stop.is_set():
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.CHANNEL)
                self._subscribed.set()
                if failed:
                    log.warning("Redis at %s is back: fan-out across workers resumed",
                                redacted(self.url))
                    if self._on_reconnect:
                        self._on_reconnect()
                failed = False
                backoff = 0.5
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message and message.get("type") == "message":
                        self._hand_over(message["data"])
            except (redis.RedisError, OSError) as error:
                self._subscribed.clear()
                failed = True
                log.error("Redis at %s is unreachable (%s): messages posted on other workers "
                          "will not reach this worker's sockets; retrying in %.1f s",
                          redacted(self.url), error, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.MAX_BACKOFF)
            finally:
                with contextlib.suppress(Exception):  # closing a dead connection may fail
                    pubsub.close()

    def _hand_over(self, raw: bytes) -> None:
        try:
            event = json.loads(raw)
        except ValueError:
            log.warning("ignored a malformed event on %s", self.CHANNEL)
            return
        try:
            self._deliver(event)
        except Exception:  # one bad event must not stop the listener
            log.exception("delivering %s failed", event.get("type"))

    # ---- presence ----
    def _key(self, room_id: str) -> str:
        return self.PRESENCE_KEY.format(room_id=room_id)

    def set_presence(self, room_id: str, user_id: str, state: str) -> None:
        self._local.set_presence(room_id, user_id, state)
        field = f"{user_id}|{self._process}"
        try:
            if state == "offline":
                self._client.hdel(self._key(room_id), field)
            else:
                pipe = self._client.pipeline()
                pipe.hset(self._key(room_id), field, f"{state}|{int(time.time())}")
                pipe.expire(self._key(room_id), self.PRESENCE_TTL * 2)
                pipe.execute()
        except redis.RedisError as error:
            log.error("Redis at %s is unreachable (%s): presence not shared",
                      redacted(self.url), error)

    def presence(self, room_id: str) -> dict[str, str]:
        try:
            entries = self._client.hgetall(self._key(room_id))
        except redis.RedisError as error:
            log.error("Redis at %s is unreachable (%s): showing this worker's presence only",
                      redacted(self.url), error)
            return self._local.presence(room_id)
        cutoff = time.time() - self.PRESENCE_TTL
        states: dict[str, list[str]] = {}
        for field, value in entries.items():
            user_id = field.decode().split("|", 1)[0]
            state, _, stamp = value.decode().partition("|")
            if state in STATE_RANK and stamp.isdigit() and int(stamp) >= cutoff:
                states.setdefault(user_id, []).append(state)
        return {user_id: best_state(found) for user_id, found in states.items()}

    def refresh_presence(self, entries: dict[tuple[str, str], str]) -> None:
        if not entries:
            return
        now = int(time.time())
        try:
            pipe = self._client.pipeline()
            for (room_id, user_id), state in entries.items():
                pipe.hset(self._key(room_id), f"{user_id}|{self._process}", f"{state}|{now}")
                pipe.expire(self._key(room_id), self.PRESENCE_TTL * 2)
            pipe.execute()
        except redis.RedisError as error:
            log.error("Redis at %s is unreachable (%s): presence heartbeat skipped",
                      redacted(self.url), error)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)
        self._client.close()


def make_broker(config, deliver: Deliver, on_reconnect: Callable[[], None] | None = None) -> Broker:
    """Redis when DISCUX_REDIS_URL is set, else in-process."""
    url = config.get("DISCUX_REDIS_URL")
    if url:
        return RedisBroker(url, deliver, on_reconnect)
    return InProcessBroker(deliver)
