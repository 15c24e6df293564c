"""Rate limits live in Redis when DISCUX_REDIS_URL is set; losing Redis must not turn every
limited route into a 500: limits count in memory meanwhile, and in Redis again once it is back."""

from __future__ import annotations

import logging
import time

import pytest
import redis

from tests.support.redis_server import PrivateRedis

LIMITED = "/login/email/verify?email=ana@example.com&token=not-a-token"  # 20/minute per client


def limit_counts(server: PrivateRedis) -> list[int]:
    client = redis.Redis.from_url(server.url)
    try:
        return [int(client.get(key)) for key in client.keys("LIMITS*")]
    finally:
        client.close()


class Kept(logging.Handler):
    """What the root logger (so any log the operator configured) receives."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def root_log():
    kept, root = Kept(), logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    root.addHandler(kept)
    yield kept
    root.removeHandler(kept)
    root.setLevel(level)


@pytest.fixture
def own_redis():
    """A redis-server of this test's own, which it stops and restarts on the same port."""
    server = PrivateRedis().start()
    yield server
    server.stop()


def test_limits_survive_losing_redis_and_return_to_it(make_app, own_redis, root_log):
    app = make_app(DISCUX_REDIS_URL=own_redis.url, RATELIMIT_ENABLED=True)
    client = app.test_client()

    assert client.get(LIMITED).status_code == 302  # the bad link is refused, back to sign-in
    assert limit_counts(own_redis) == [1]

    own_redis.stop()
    statuses = [client.get(LIMITED).status_code for _ in range(21)]
    # Never a 5xx; the limit still holds, counted afresh in this process's memory.
    assert statuses == [302] * 20 + [429]
    # One clear line says so, no traceback (the autouse fixture fails the test on any).
    fallbacks = [r for r in root_log.records if r.levelno == logging.WARNING
                 and "falling back to in-memory storage" in r.getMessage()]
    assert len(fallbacks) == 1

    own_redis.start()
    deadline = time.monotonic() + 90  # Flask-Limiter re-checks the storage with a backoff
    while not limit_counts(own_redis):
        assert client.get(LIMITED).status_code in {302, 429}
        assert time.monotonic() < deadline, "limits never went back to Redis"
        time.sleep(0.2)
    # Counted in Redis again: each request moves the shared counter.
    [before] = limit_counts(own_redis)
    assert client.get(LIMITED).status_code == 302
    assert limit_counts(own_redis) == [before + 1]
