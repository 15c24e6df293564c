"""A busy room: N people post M messages each at once into one room that L sockets listen to.

Discux as deployed: gunicorn with `gunicorn.conf.py` (W gthread workers, DISCUX_HTTP_THREADS
threads for requests on top of the socket threads), rate limits on and counted in a Redis of the
bench's own (also the broker that carries every post to the sockets held by the other worker).
Each poster is a thread with its own keep-alive HTTP connection and API token, posting
`POST /api/v1/rooms/<id>/messages` one message after the other (the next once the last got its
201), all of them in one process apart from the L listeners, which are raw-socket clients
(`bench.common.WSClient`, offering permessage-deflate like Chromium) read by one epoll loop in
the bench's own process.

Figures: posts/s (N×M over the time from the first post sent to the last answered) and, per
message, post → all sockets (the last listener's arrival − the moment the poster sent it), p50
and p99. Then the checks that must hold: every socket got every message exactly once, all
sockets in the same order, each poster's messages in the order they were posted, and the room
holds N×M rows.

Baseline, same run, same engine, same database afterwards: the same N threads making the same
M INSERTs each (the ORM, one commit per message, a pool of N connections) without the app.

    python -m bench.concurrency [--posters 20] [--messages 50] [--listeners 20] [--workers 2]
                                [--engine both|sqlite|mariadb] [--profile DIR] [--quick]

`--profile DIR` samples every worker with py-spy while the posters run, writes the raw stacks
to DIR and prints the functions most samples are spent in.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench import common

TARGET_POSTS = 300.0  # per second, 20 × 50 on 2 workers
TARGET_P99 = 0.100  # seconds, post → all sockets
MARK = re.compile(r"BUSY(\d{3})-(\d{4})")


def text_of(poster: int, n: int) -> str:
    return (f"BUSY{poster:03d}-{n:04d} Shall we ship the **beta** on Friday? The review found "
            "three issues in `auth.py`; QA wants one more pass on the composer.")


# ---------------------------------------------------------------- posters (their own process)


def post_all(port: int, room_id: str, tokens: list[str], messages: int) -> int:
    """(Poster process) one thread per token, `messages` posts each; one JSON line of results."""
    results: list[list] = []
    lock = threading.Lock()
    go = threading.Barrier(len(tokens) + 1)

    def poster(index: int, token: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        mine = []
        go.wait()
        for n in range(messages):
            body = json.dumps({"content": text_of(index, n)})
            sent = time.perf_counter()
            try:
                conn.request("POST", f"/api/v1/rooms/{room_id}/messages", body, headers)
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                status = 0
            mine.append([index, n, sent, time.perf_counter(), status])
        conn.close()
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=poster, args=(i, t)) for i, t in enumerate(tokens)]
    for thread in threads:
        thread.start()
    print("ready", flush=True)
    sys.stdin.readline()  # "go"
    go.wait()
    for thread in threads:
        thread.join()
    print(json.dumps(results), flush=True)
    return 0


# ---------------------------------------------------------------- the room and its server


class BusyRoom:
    """A room with N posting members, L listening members, served by gunicorn.conf.py."""

    def __init__(self, kind: str, posters: int, listeners: int, workers: int, redis_url: str,
                 server_env: dict):
        from discux.api import tokens as api_tokens
        from discux.extensions import db
        from discux.models import User
        from tests.support import chat_factories

        self.url = common.fresh_database(kind)
        app = common.make_app(self.url, migrate=True)
        self.people = common.people(app, max(posters, listeners))
        with app.app_context():
            room = chat_factories.create_room(self.people[0][0], name="Workshop")
            room.settings.auto_summarize = False
            for user_id, _ in self.people[1:]:
                chat_factories.add_member(room, user_id)
            self.room_id = room.id
            db.session.commit()
            self.tokens = [api_tokens.create_token(db.session.get(User, user_id), "bench")[1]
                           for user_id, _ in self.people[:posters]]
            db.session.remove()
            db.engine.dispose()
        self.port = common.free_port()
        env = dict(os.environ)
        env.update(common.server_env(self.url), DISCUX_REDIS_URL=redis_url,
                   DISCUX_BASE_URL=f"http://127.0.0.1:{self.port}",
                   DISCUX_BIND=f"127.0.0.1:{self.port}", WEB_CONCURRENCY=str(workers),
                   **server_env)
        # The app logs a line per request, as in production: into a file, not over the figures.
        self.log = os.path.join(common.temp_dir("discux-bench-log-"), "gunicorn.log")
        with open(self.log, "ab") as log:
            self.server = common.spawn(
                [common.PYTHON, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--no-control-socket"],
                env=env, stdout=log, stderr=log)
        common.wait_http(self.port, proc=self.server)
        self.workers = self._worker_pids(workers)

    def _worker_pids(self, count: int, timeout: float = 30.0) -> list[int]:
        deadline = time.monotonic() + timeout
        task = Path(f"/proc/{self.server.pid}/task/{self.server.pid}/children")
        while time.monotonic() < deadline:
            kids = [int(pid) for pid in task.read_text().split()]
            if len(kids) >= count:
                return kids
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn started fewer than {count} workers")

    def listener(self, n: int) -> common.WSClient:
        token = self.people[n % len(self.people)][1]
        return common.WSClient(self.port, f"/rooms/{self.room_id}/ws",
                               cookie=common.cookie_for(token))

    def stored(self) -> int:
        import sqlalchemy as sa

        engine = sa.create_engine(self.url)
        try:
            with engine.connect() as conn:
                return conn.execute(sa.text("SELECT COUNT(*) FROM messages WHERE room_id = :r"),
                                    {"r": self.room_id}).scalar_one()
        finally:
            engine.dispose()

    def stop(self) -> None:
        common.stop(self.server, timeout=15)


# ---------------------------------------------------------------- profiles


def row_lock_waits(url: str) -> tuple[int, int]:
    """MariaDB's (row lock waits, ms spent in them) so far, server-wide; (0, 0) on SQLite."""
    if url.startswith("sqlite"):
        return 0, 0
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", ssl_disabled=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS WHERE Variable_name IN "
                        "('Innodb_row_lock_waits', 'Innodb_row_lock_time')")
            status = dict(cur.fetchall())
    finally:
        conn.close()
    return int(status["Innodb_row_lock_waits"]), int(status["Innodb_row_lock_time"])


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process (all its threads) has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")



def profile(pids: list[int], directory: str, kind: str, gil: bool) -> list[subprocess.Popen]:
    """py-spy on every worker: all threads not idle, or (`gil`) only the one running Python."""
    spy = str(Path(common.PYTHON).parent / "py-spy")
    return [common.spawn([spy, "record", "-p", str(pid), "-f", "raw", "-r", "250", "--nonblocking",
                          *(["--gil"] if gil else []),
                          "-o", os.path.join(directory, f"concurrency-{kind}-{pid}.txt")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for pid in pids]


def summarize_profile(path: str, top: int = 12) -> list[list]:
    """The leaf functions and the app/library frames most samples are in, from raw stacks."""
    leaves: collections.Counter = collections.Counter()
    inside: collections.Counter = collections.Counter()
    total = 0
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = [f.split(" (")[0] for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        n = int(count)
        total += n
        leaves[frames[-1]] += n
        for name in set(frames):
            inside[name] += n
    # Idle threads waiting on sockets and the thread pool dominate a gthread worker: say so.
    rows = [["leaf", name, f"{100 * n / total:.1f} %"] for name, n in leaves.most_common(top)]
    rows += [["in", name, f"{100 * n / total:.1f} %"] for name, n in inside.most_common(top * 3)
             if name in INTERESTING][:top]
    return rows


INTERESTING = {
    "_do_get", "_create_connection", "_create_ssl_ctx", "load_default_certs", "connect",
    "post_message", "post_user_message", "take_message_quota", "_insert_posted",
    "commit_keeping_loaded", "render_markdown", "publish", "hit", "_check_request_limit",
    "authenticate", "require_token", "room_for", "message_payload", "on_user_message",
    "_read_packet", "_execute_command", "execute", "commit", "full_dispatch_request",
}


# ---------------------------------------------------------------- baseline


def raw_inserts(url: str, room_id: str, posters: int, messages: int, people) -> float:
    """The same N×M rows, N threads, one INSERT + commit each, no app: messages per second."""
    from discux.extensions import db
    from discux.ids import new_id
    from discux.messages.rendering import render_markdown
    from discux.models import Message

    app = common.make_app(url, SQLALCHEMY_ENGINE_OPTIONS={"pool_size": posters,
                                                          "max_overflow": 0})
    html = render_markdown(text_of(0, 0))
    go = threading.Barrier(posters + 1)

    def poster(index: int) -> None:
        user_id = people[index][0]
        with app.app_context():
            go.wait()
            for n in range(messages):
                db.session.add(Message(id=new_id(), room_id=room_id, content=text_of(index, n),
                                       content_html=html, type="user", sender_id=user_id,
                                       sender_name="Bench", status="complete",
                                       humans_only=False))
                db.session.commit()
            db.session.remove()

    threads = [threading.Thread(target=poster, args=(i,)) for i in range(posters)]
    for thread in threads:
        thread.start()
    go.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    with app.app_context():
        db.engine.dispose()
    return posters * messages / elapsed


# ---------------------------------------------------------------- one engine


def check_sockets(pool: common.ListenerPool, posters: int, messages: int,
                  sent: dict) -> tuple[list[float], int, int, int]:
    """Latencies post → all sockets, and (lost-or-duplicated sockets, sockets out of order
    with the others, sockets where a poster's messages came out of posted order)."""
    last_arrival: dict[tuple[int, int], float] = {}
    orders = []
    damaged = 0
    for client in pool.clients.values():
        order = []
        for at, text in client.texts():
            for poster, n in dict.fromkeys(MARK.findall(text)):
                key = (int(poster), int(n))
                order.append(key)
                last_arrival[key] = max(last_arrival.get(key, 0.0), at)
        if len(order) != posters * messages or len(set(order)) != len(order):
            damaged += 1
        orders.append(order)
    reordered = sum(1 for order in orders if order != orders[0])
    per_poster = 0
    for order in orders:
        seen: dict[int, int] = {}
        for poster, n in order:
            if n <= seen.get(poster, -1):
                per_poster += 1
                break
            seen[poster] = n
    latencies = [last_arrival[key] - sent[key] for key in sent if key in last_arrival]
    return latencies, damaged, reordered, per_poster


def run_engine(kind: str, args) -> dict:
    from tests.support.redis_server import PrivateRedis

    redis = PrivateRedis().start()
    room = BusyRoom(kind, args.posters, args.listeners, args.workers, redis.url,
                    dict(setting.split("=", 1) for setting in args.set))
    engine = common.engine_name(room.url)
    try:
        pool = common.ListenerPool()
        for k in range(args.listeners):
            pool.add(room.listener(k))
        pool.settle(quiet=0.5)
        for client in pool.clients.values():
            client.texts()  # presence frames from the others connecting
        posters = common.spawn(
            [common.PYTHON, "-m", "bench.concurrency", "--post", str(room.port), room.room_id,
             str(args.messages), *room.tokens],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if posters.stdout.readline().strip() != "ready":
            raise RuntimeError("the posters did not start")
        spies = profile(room.workers, args.profile, kind, args.gil) if args.profile else []
        if spies:
            time.sleep(1.0)
        total = args.posters * args.messages
        processes = {"workers": room.workers, "posters": [posters.pid],
                     "listeners": [os.getpid()], "redis": [redis.process.pid]}
        cpu_before = {name: sum(map(cpu_seconds, pids)) for name, pids in processes.items()}
        locks_before = row_lock_waits(room.url)
        started = time.perf_counter()
        posters.stdin.write("go\n")
        posters.stdin.flush()
        # Read the sockets while the posters run; they answer with one line when all are done.
        import select

        pool.ep.register(posters.stdout.fileno(), select.EPOLLIN)
        answered = False
        deadline = time.monotonic() + 600
        while not answered and time.monotonic() < deadline:
            events = pool.ep.poll(0.5)
            now = time.perf_counter()
            for fd, _ in events:
                client = pool.clients.get(fd)
                if client is not None:
                    client.read_available(now)
                else:
                    answered = True
        pool.ep.unregister(posters.stdout.fileno())
        results = json.loads(posters.stdout.readline())
        posters_cpu = cpu_seconds(posters.pid) - cpu_before["posters"]  # before it is reaped
        posters.wait(30)
        locks = [after - before for after, before in zip(row_lock_waits(room.url), locks_before,
                                                         strict=True)]
        pool.settle(quiet=1.0, limit=20)  # the last posts' frames still on their way
        cpu = {name: sum(map(cpu_seconds, pids)) - cpu_before[name]
               for name, pids in processes.items() if name != "posters"}
        cpu["posters"] = posters_cpu
        for spy in spies:
            spy.send_signal(2)  # py-spy writes its file on SIGINT
        first_sent = min(r[2] for r in results)
        last_answered = max(r[3] for r in results)
        failed = collections.Counter(r[4] for r in results if r[4] != 201)
        sent = {(r[0], r[1]): r[2] for r in results if r[4] == 201}
        response_times = [r[3] - r[2] for r in results if r[4] == 201]
        latencies, damaged, reordered, per_poster = check_sockets(
            pool, args.posters, args.messages, sent)
        pool.close()
        for spy in spies:
            spy.wait(30)
        stored = room.stored()
    finally:
        room.stop()
        redis.stop()
    tracebacks = Path(room.log).read_text(errors="replace").count("Traceback")
    if tracebacks:
        print(f"   the server logged {tracebacks} traceback(s): see {room.log}")
    baseline = raw_inserts(room.url, room.room_id, args.posters, args.messages, room.people)
    profiles = []
    if args.profile:
        profiles = sorted(Path(args.profile).glob(f"concurrency-{kind}-*.txt"))
    return {"engine": engine, "posts": total / (last_answered - first_sent), "raw": baseline,
            "lat": latencies, "answered": response_times, "failed": dict(failed), "damaged": damaged,
            "reordered": reordered, "per_poster": per_poster, "stored": stored,
            "expected": total, "wall": time.perf_counter() - started,
            "profiles": [str(p) for p in profiles],
            "tracebacks": tracebacks, "lock_waits": locks[0], "lock_ms": locks[1],
            "cpu_ms": {name: 1000 * seconds / total for name, seconds in cpu.items()}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posters", type=int, default=20)
    parser.add_argument("--messages", type=int, default=50, help="per poster")
    parser.add_argument("--listeners", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--engine", choices=["both", "sqlite", "mariadb"], default="both")
    parser.add_argument("--profile", metavar="DIR", help="py-spy every worker into DIR")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for the server, e.g. DISCUX_HTTP_THREADS=8 (repeatable)")
    parser.add_argument("--gil", action="store_true",
                        help="profile only the thread holding the GIL (where the CPU goes)")
    parser.add_argument("--quick", action="store_true", help="5 × 10, 5 listeners (smoke test)")
    parser.add_argument("--post", nargs="+", help=argparse.SUPPRESS)  # the posters' process
    args = parser.parse_args(argv)
    if args.post:
        port, room_id, messages, *tokens = args.post
        return post_all(int(port), room_id, tokens, int(messages))
    if args.quick:
        args.posters, args.messages, args.listeners = 5, 10, 5
    if args.messages > 60:
        parser.error("--messages above 60 would meet the API's 60 posts per minute per person")
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
    common.raise_nofile(args.listeners * 4 + 1000)
    common.header("concurrency", posters=args.posters, messages=f"{args.messages} each",
                  listeners=args.listeners,
                  server=f"gunicorn -c gunicorn.conf.py, {args.workers} workers, Redis, "
                         "rate limits on",
                  client="poster threads in one process (keep-alive HTTP, API tokens); "
                         "listeners in one epoll loop")
    results = [run_engine(kind, args) for kind in common.database_urls(args.engine)]
    rows = []
    for r in results:
        good = (r["posts"] >= TARGET_POSTS and common.percentile(r["lat"], 99) <= TARGET_P99
                and not r["failed"] and not r["damaged"] and not r["reordered"]
                and not r["per_poster"] and r["stored"] == r["expected"]
                and not r["tracebacks"])
        r["ok"] = good
        rows.append([r["engine"], f"{r['posts']:.0f}", f"{r['raw']:.0f}",
                     f"{r['posts'] / r['raw']:.2f}x",
                     common.ms(common.percentile(r["answered"], 50)),
                     common.ms(common.percentile(r["answered"], 99)),
                     common.ms(common.percentile(r["lat"], 50)),
                     common.ms(common.percentile(r["lat"], 99)),
                     f"{r['stored']}/{r['expected']}", r["failed"] or "-",
                     f"{r['damaged']}/{r['reordered']}/{r['per_poster']}",
                     "PASS" if good else "MISS"])
    common.table(f"{args.posters} posters × {args.messages} messages, {args.listeners} sockets, "
                 f"{args.workers} workers",
                 ["engine", "posts/s", "raw INSERT/s", "ratio", "post→201 p50", "p99",
                  "post→all sockets p50", "p99",
                  "stored", "failed posts", "sockets lost/reordered/poster-order", "verdict"],
                 rows)
    common.table("CPU per post (ms, every thread of each process; 2 cores = 2,000 ms/s)",
                 ["engine", *results[0]["cpu_ms"]] if results else ["engine"],
                 [[r["engine"], *(f"{v:.2f}" for v in r["cpu_ms"].values())] for r in results])
    for r in results:
        if r["engine"] == "MariaDB":
            print(f"   MariaDB row lock waits during the posts: {r['lock_waits']} "
                  f"({r['lock_ms']} ms in all; server-wide)")
        for path in r["profiles"]:
            common.table(f"py-spy {r['engine']} {Path(path).name} (% of the worker's samples)",
                         ["kind", "function", "samples"], summarize_profile(path))
    figure = ", ".join(f"{r['engine']} {r['posts']:.0f} posts/s p99 "
                       f"{common.ms(common.percentile(r['lat'], 99))}" for r in results)
    base = ", ".join(f"{r['engine']} {r['raw']:.0f} INSERT/s" for r in results)
    ratio = min(r["posts"] / r["raw"] for r in results) if results else 0.0
    common.verdict("concurrency", figure, base, ratio,
                   ">= 300 posts/s, p99 <= 100 ms, nothing lost or reordered; ratio = worst "
                   "engine's posts/raw", all(r["ok"] for r in results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
