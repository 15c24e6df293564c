"""Fan-out: 1 poster, N WebSocket listeners in one room; post → every listener has the message.

Discux: gunicorn gthread (1 worker), SQLite, a member posts over HTTP (`POST /rooms/<id>/messages`,
CSRF + cookie, as htmx does); N listeners on `/rooms/<id>/ws` (default HTML frames). Baseline in
the same invocation: a naive flask-sock app (`bench/naive_app.py`, a loop of `ws.send` per
socket) under the same gunicorn settings, broadcasting the same bytes (the HTML frame Discux
listeners received, message number changed) to the same number of listeners.

Listeners are raw-socket clients (`bench.common.WSClient`) offering
`permessage-deflate; client_max_window_bits` like Chromium; one epoll loop timestamps each
complete frame on arrival and inflates afterwards to check every listener got every message.
Latency per message = last listener's arrival − the moment the POST was sent.

Also: one stalled listener (never reads, 4 KiB receive buffer) among N must delay nobody else.

    python -m bench.fanout [--listeners 200 1000] [--messages 50] [--stall-listeners 200]
                           [--stall-fill 600] [--quick]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import urllib.parse

from bench import common

TARGET_P99 = {200: 0.008, 1000: 0.030}
TARGET_RATIO = 0.4
USERS = 20  # listeners are spread over this many people (presence events stay O(people))


def content(i: int, big: bool = False) -> str:
    text = (f"MARK{i:06d} Shall we ship the **beta** on Friday? The AI review found three "
            "issues in `auth.py`; QA wants one more pass on the UX of the composer.")
    if big:
        words = ["latency", "budget", "rollout", "pricing", "retention", "ticket", "mobile",
                 "schema", "backfill", "incident", "owner", "deadline", "review", "feedback"]
        text += " " + " ".join(f"{words[(i * 7 + k * 3) % len(words)]}{(i * 31 + k) % 997}"
                               for k in range(280))
    return text


class DiscuxRoom:
    def __init__(self, listeners: int, tag: str):
        from tests.support import chat_factories

        self.url = common.fresh_database("sqlite")
        app = common.make_app(self.url, migrate=True)
        self.people = common.people(app, min(USERS, max(2, listeners)))
        with app.app_context():
            from discux.extensions import db

            room = chat_factories.create_room(self.people[0][0], name=f"Fan-out {tag}")
            room.settings.auto_summarize = False
            for user_id, _ in self.people[1:]:
                chat_factories.add_member(room, user_id)
            self.room_id = room.id
            db.session.commit()
            db.engine.dispose()
        self.port = common.free_port()
        self.server = common.gunicorn(
            "bench.wsgi:app", self.port, threads=listeners + 40,
            worker_connections=listeners + 200,
            env_extra=common.server_env(self.url, DISCUX_MAX_SOCKETS=listeners + 10))
        import requests

        http = requests.Session()
        http.cookies.set("discux_session", self.people[0][1])
        page = http.get(f"http://127.0.0.1:{self.port}/rooms/{self.room_id}", timeout=10)
        self.csrf = re.search(r'"X-CSRFToken": "([^"]+)"', page.text).group(1)
        self.cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())

    def listener(self, n: int, rcvbuf: int | None = None) -> common.WSClient:
        token = self.people[n % len(self.people)][1]
        return common.WSClient(self.port, f"/rooms/{self.room_id}/ws",
                               cookie=common.cookie_for(token), rcvbuf=rcvbuf)

    def post(self, text: str) -> common.HTTPRequest:
        body = urllib.parse.urlencode({"content": text}).encode()
        return common.HTTPRequest(self.port, "POST", f"/rooms/{self.room_id}/messages", body, {
            "Content-Type": "application/x-www-form-urlencoded", "Cookie": self.cookie,
            "X-CSRFToken": self.csrf, "HX-Request": "true"})

    def stop(self) -> None:
        common.stop(self.server)


def measure(pool: common.ListenerPool, send, count: int, first: int = 0, warmup: int = 3,
            gap: float = 0.01, firsts: list | None = None) -> tuple[list[float], int]:
    """`send(i)` starts message i and returns its in-flight HTTP request; latencies (s), misses.
    `firsts` collects post → first listener (the rest of the latency is the fan-out spread)."""
    latencies, missed = [], 0
    for i in range(first, first + count + warmup):
        before = pool.counts()
        started = time.perf_counter()
        request = send(i)
        last = pool.wait_all(before, timeout=15.0, extra=request)
        if request.status != 200:
            raise RuntimeError(f"post {i} answered {request.status}: {request.data[:300]!r}")
        if last is None:
            missed += 1
        elif i >= first + warmup:
            latencies.append(last - started)
            if firsts is not None:
                firsts.append(pool.first_arrival - started)
        time.sleep(gap)
    return latencies, missed


def check_delivery(pool: common.ListenerPool, first: int, count: int) -> tuple[int, str]:
    """Listeners that missed a message (inflating everything they got), and a sample frame."""
    incomplete, sample = 0, ""
    for client in pool.clients.values():
        got = "".join(text for _, text in client.texts())
        if any(f"MARK{i:06d}" not in got for i in range(first, first + count)):
            incomplete += 1
    return incomplete, sample


def last_frame(client: common.WSClient) -> str:
    texts = client.texts()
    return texts[-1][1] if texts else ""


def run_discux(n: int, messages: int) -> dict:
    room = DiscuxRoom(n, str(n))
    pool = common.ListenerPool()
    opened = time.perf_counter()
    for k in range(n):
        pool.add(room.listener(k))
    opened = time.perf_counter() - opened
    pool.settle()
    ext = next(iter(pool.clients.values())).extensions or "(none)"
    # One message first to capture the exact frame listeners get (the baseline sends it).
    probe, _ = measure(pool, lambda i: room.post(content(i)), 0, first=900000, warmup=1)
    sample = last_frame(next(iter(pool.clients.values())))
    for client in pool.clients.values():
        client.texts()
    firsts: list[float] = []
    lat, missed = measure(pool, lambda i: room.post(content(i)), messages, firsts=firsts)
    incomplete, _ = check_delivery(pool, 3, messages)
    pool.close()
    room.stop()
    return {"lat": lat, "missed": missed, "incomplete": incomplete, "ext": ext, "firsts": firsts,
            "open_s": opened, "sample": sample}


def run_naive(n: int, messages: int, sample: str) -> dict:
    port = common.free_port()
    server = common.gunicorn("bench.naive_app:app", port, threads=n + 40,
                             worker_connections=n + 200)
    pool = common.ListenerPool()
    for _ in range(n):
        pool.add(common.WSClient(port, "/ws"))
    pool.settle(quiet=0.3)
    ext = next(iter(pool.clients.values())).extensions or "(none)"

    def send(i: int) -> common.HTTPRequest:
        body = sample.replace("MARK900000", f"MARK{i:06d}").encode()
        return common.HTTPRequest(port, "POST", "/broadcast", body,
                                  {"Content-Type": "text/html; charset=utf-8"})

    firsts: list[float] = []
    lat, missed = measure(pool, send, messages, firsts=firsts)
    incomplete, _ = check_delivery(pool, 3, messages)
    pool.close()
    common.stop(server)
    return {"lat": lat, "missed": missed, "incomplete": incomplete, "ext": ext, "firsts": firsts}


def run_stall(n: int, fill: int, messages: int) -> dict:
    """N readers + 1 listener that never reads: latency of the readers while it is stuck."""
    room = DiscuxRoom(n + 1, f"stall {n}")
    pool = common.ListenerPool()
    for k in range(n):
        pool.add(room.listener(k))
    stalled = room.listener(n, rcvbuf=4096)
    pool.settle()
    fill_lat, fill_missed = measure(pool, lambda i: room.post(content(i, big=True)), fill,
                                    first=100000, warmup=0, gap=0.0)
    lat, missed = measure(pool, lambda i: room.post(content(i)), messages)
    # Was the stalled socket cut by the server (it would reconnect and replay)?
    cut = False
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not stalled.eof:
        stalled.read_available()
        time.sleep(0.01)
    cut = stalled.eof
    received = stalled.data_frames
    pool.close()
    stalled.close()
    room.stop()
    return {"fill_lat": fill_lat, "fill_missed": fill_missed, "lat": lat, "missed": missed,
            "cut": cut, "stalled_frames": received}


def stats(lat: list[float]) -> tuple[float, float]:
    return common.percentile(lat, 50), common.percentile(lat, 99)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listeners", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--stall-listeners", type=int, default=200)
    parser.add_argument("--stall-fill", type=int, default=600,
                        help="large messages posted while one listener does not read")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.listeners, args.messages, args.stall_listeners, args.stall_fill = [20], 10, 20, 40
    common.raise_nofile(max(args.listeners) * 4 + 1000)
    common.header("fanout", engine="SQLite", listeners=args.listeners, messages=args.messages,
                  client="raw-socket WSClient offering 'permessage-deflate; "
                         "client_max_window_bits' (as Chromium), HTML frames",
                  server="gunicorn gthread, 1 worker, threads = listeners + 40")
    rows, ok, ratios, split = [], True, [], []
    for n in args.listeners:
        d = run_discux(n, args.messages)
        b = run_naive(n, args.messages, d["sample"])
        d50, d99 = stats(d["lat"])
        b50, b99 = stats(b["lat"])
        ratio = d99 / b99
        ratios.append(ratio)
        target = TARGET_P99.get(n)
        good = (target is None or d99 <= target) and ratio <= TARGET_RATIO \
            and not d["missed"] and not d["incomplete"]
        ok = ok and good
        rows.append([n, common.ms(d50), common.ms(d99), common.ms(b50), common.ms(b99),
                     f"{ratio:.2f}x", f"{d['missed']}/{d['incomplete']}",
                     f"{b['missed']}/{b['incomplete']}",
                     f"<= {target * 1000:.0f} ms" if target else "-", "PASS" if good else "MISS"])
        for label, r in (("Discux", d), ("naive", b)):
            spread = [last - first for last, first in zip(r["lat"], r["firsts"], strict=True)]
            split.append([n, label, common.ms(common.percentile(r["firsts"], 50)),
                          common.ms(common.percentile(r["firsts"], 99)),
                          common.ms(common.percentile(spread, 50)),
                          common.ms(common.percentile(spread, 99))])
        print(f"   N={n}: Discux negotiated {d['ext']!r}; naive negotiated {b['ext']!r}; "
              f"{n} Discux handshakes took {d['open_s']:.1f} s; frame {len(d['sample'])} chars",
              flush=True)
    common.table(f"post → all listeners have it ({args.messages} messages each)",
                 ["listeners", "Discux p50", "Discux p99", "naive p50", "naive p99",
                  "p99 ratio", "Discux lost/incomplete", "naive lost/incomplete", "target p99",
                  "verdict"], rows)
    common.table("where the time goes: post → first listener (request handling) and first → last "
                 "listener (the fan-out itself)",
                 ["listeners", "server", "→ first p50", "→ first p99", "spread p50",
                  "spread p99"], split)
    s = run_stall(args.stall_listeners, args.stall_fill, args.messages)
    f50, f99 = stats(s["fill_lat"]) if s["fill_lat"] else (float("nan"), float("nan"))
    s50, s99 = stats(s["lat"])
    stall_target = TARGET_P99.get(args.stall_listeners, 0.008)
    stall_ok = s99 <= stall_target and not s["missed"] and not s["fill_missed"]
    common.table(f"one stalled listener among {args.stall_listeners} (4 KiB receive buffer, "
                 "never reads)",
                 ["phase", "p50", "p99", "lost"],
                 [[f"{args.stall_fill} large posts (~5 KB) while stalled", common.ms(f50),
                   common.ms(f99), s["fill_missed"]],
                  [f"{args.messages} normal posts after", common.ms(s50), common.ms(s99),
                   s["missed"]]])
    print(f"   stalled socket: {s['stalled_frames']} frames readable; cut by the server: "
          f"{s['cut']}; readers' p99 {'within' if stall_ok else 'OUTSIDE'} "
          f"{stall_target * 1000:.0f} ms -> {'PASS' if stall_ok else 'MISS'}")
    ok = ok and stall_ok
    figure = ", ".join(f"N={r[0]} p99 {r[2]}" for r in rows)
    base = ", ".join(f"N={r[0]} p99 {r[4]}" for r in rows)
    common.verdict("fanout", figure + f"; stalled-listener p99 {common.ms(s99)}", base,
                   max(ratios), "200 p99 <= 8 ms, 1000 p99 <= 30 ms, ratio <= 0.4x naive, "
                   "a stalled listener delays nobody; ratio = worst N", ok)
    return 0


if __name__ == "__main__":
    sys.exit(main())
