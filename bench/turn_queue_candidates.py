"""Turn queue candidates: how long each takes to hand a stored agent turn to whoever runs it.

The part of `bench.agent_overhead` that a task queue would replace is the hand-off between the
request that stored a post and the thread that starts its agent's turn. Measured here alone,
with Redis, from "the post's transaction is about to commit" to "the turn's code runs":

- **lease + row** (what Discux does): take the room's redis-py `Lock`, write the turn row in
  the post's transaction (SQLite), commit, hand it to a thread of the same process.
- **RQ** (`rq.SimpleWorker` in a process of its own, no fork per job; the default `Worker`
  forks for every job): write the row, commit, `Queue.enqueue`.
- **Huey** (`RedisHuey`, a consumer process with 4 threads, blocking dequeue): write the row,
  commit, call the task.

    python -m bench.turn_queue_candidates [--turns 300]

RQ and Huey are not Discux dependencies: install them anywhere on PYTHONPATH
(`pip install --target DIR rq huey`) and pass `PYTHONPATH=DIR`.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from bench import common

STARTED_KEY = "bench:turn-started"


def turn_started(turn_id: int, url: str) -> None:
    """The job: say when it started (the turn's first line of code)."""
    import redis

    redis.Redis.from_url(url).rpush(STARTED_KEY, f"{turn_id} {time.time()}")


def store_turn(db: sqlite3.Connection, turn_id: int, state: str) -> None:
    db.execute("INSERT INTO turns (id, room_id, state) VALUES (?, 'room', ?)", (turn_id, state))
    db.commit()


def measure(name, turns, url, hand_off) -> list[float]:
    import redis

    client = redis.Redis.from_url(url)
    client.delete(STARTED_KEY)
    path = os.path.join(tempfile.mkdtemp(), "turns.db")
    db = sqlite3.connect(path, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE turns (id INTEGER PRIMARY KEY, room_id TEXT, state TEXT)")
    waits = []
    for turn_id in range(turns + 5):
        sent = time.time()
        hand_off(db, turn_id)
        _, raw = client.blpop(STARTED_KEY, timeout=10)
        done_id, started = raw.decode().split()
        assert int(done_id) == turn_id
        if turn_id >= 5:  # warm-up
            waits.append(float(started) - sent)
        time.sleep(0.01)
    db.close()
    print(f"   {name}: {len(waits)} turns")
    return waits


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=300)
    args = parser.parse_args(argv)

    import redis

    from tests.support.redis_server import PrivateRedis

    server = PrivateRedis().start()
    url = server.url
    common.header("turn_queue_candidates", turns=args.turns, redis=url)
    results = {}

    # Discux: the lease, the row, a thread of this process.
    leases = redis.Redis.from_url(url)
    pool = ThreadPoolExecutor(max_workers=4)

    def lease_and_thread(db, turn_id):
        lock = leases.lock(f"bench:room-lease:{turn_id}", timeout=8, thread_local=False)
        assert lock.acquire(blocking=False)
        store_turn(db, turn_id, "running")

        def run():
            turn_started(turn_id, url)
            lock.release()
        pool.submit(run)
    results["lease + row (Discux)"] = measure("lease + row", args.turns, url, lease_and_thread)

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    # RQ: a worker process of its own.
    import rq

    queue = rq.Queue("turns", connection=redis.Redis.from_url(url))
    worker = subprocess.Popen([sys.executable, "-c", (
        "import redis, rq, sys; q = rq.Queue('turns', connection=redis.Redis.from_url(sys.argv[1]));"
        "rq.SimpleWorker([q], connection=q.connection).work(logging_level='WARNING')"), url],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2)

    def rq_enqueue(db, turn_id):
        store_turn(db, turn_id, "queued")
        queue.enqueue("bench.turn_queue_candidates.turn_started", turn_id, url)
    results["RQ (SimpleWorker)"] = measure("RQ", args.turns, url, rq_enqueue)
    worker.terminate()
    worker.wait()

    # Huey: a consumer process of its own, 4 threads.
    consumer = subprocess.Popen([sys.executable, "-m", "bench.turn_queue_candidates",
                                 "--huey-consumer", url], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2)
    huey_app = huey_for(url)
    task = huey_app.task(name="turn_started")(turn_started)

    def huey_enqueue(db, turn_id):
        store_turn(db, turn_id, "queued")
        task(turn_id, url)
    results["Huey (RedisHuey, threads)"] = measure("Huey", args.turns, url, huey_enqueue)
    consumer.terminate()
    consumer.wait()
    server.stop()

    rows = [[name, common.ms(common.percentile(v, 50)), common.ms(common.percentile(v, 99))]
            for name, v in results.items()]
    common.table(f"commit → turn starts ({args.turns} turns, Redis)", ["queue", "p50", "p99"],
                 rows)
    return 0


def huey_for(url: str):
    from huey import RedisHuey

    return RedisHuey("discux-bench", url=url, blocking=True)


def huey_consumer(url: str) -> None:
    from huey.consumer import Consumer

    huey_app = huey_for(url)
    huey_app.task(name="turn_started")(turn_started)
    Consumer(huey_app, workers=4, worker_type="thread", periodic=False).run()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--huey-consumer"]:
        threading.current_thread().name = "huey-consumer"
        huey_consumer(sys.argv[2])
    else:
        sys.exit(main())
