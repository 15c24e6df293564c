"""Sockets per worker: open 2,000 WebSockets to one gunicorn gthread worker, memory per socket,
fan-out still reaching all of them, and socket 2,001 (beyond DISCUX_MAX_SOCKETS) refused at once.

Baseline in the same invocation: the naive flask-sock app (`bench/naive_app.py`) holding the same
number of sockets (memory per socket, one broadcast). Memory = worker VmRSS (/proc/<pid>/status)
after opening the sockets minus before, divided by the count.

    python -m bench.sockets [--sockets 2000] [--messages 10] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time

from bench import common
from bench.fanout import DiscuxRoom, content, measure

TARGET_KIB = 64


def open_all(pool: common.ListenerPool, make, count: int) -> float:
    started = time.perf_counter()
    for k in range(count):
        pool.add(make(k))
        if k % 200 == 199:
            pool.pump(0)  # keep presence frames from piling up in kernel buffers
    return time.perf_counter() - started


def refused(room: DiscuxRoom, n: int) -> tuple[float | None, int | None]:
    """Open one socket beyond the cap: (seconds until its close frame, close code)."""
    started = time.perf_counter()
    try:
        client = room.listener(n)
    except ConnectionError as error:  # refused at the HTTP level would also be "at once"
        print(f"   socket beyond the cap refused during the handshake: {error}")
        return time.perf_counter() - started, None
    deadline = time.monotonic() + 10
    import select

    poller = select.poll()  # select() cannot watch descriptors above 1024
    poller.register(client.sock.fileno(), select.POLLIN)
    while time.monotonic() < deadline and client.closed_code is None and not client.eof:
        poller.poll(200)
        client.read_available()
    elapsed = time.perf_counter() - started
    code = client.closed_code
    client.close()
    return (elapsed if code is not None else None), code


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.sockets, args.messages = 50, 3
    n = args.sockets
    common.raise_nofile(n * 3 + 1000)
    common.header("sockets", engine="SQLite", sockets=n, cap=f"DISCUX_MAX_SOCKETS={n}",
                  server=f"gunicorn gthread, 1 worker, {n + 40} threads",
                  client="raw-socket WSClient offering permessage-deflate (as Chromium)")

    # ---- Discux
    room = DiscuxRoom(n, f"sockets {n}")
    # DiscuxRoom sizes the cap at n + 10; restart it with the cap exactly at n.
    room.stop()
    room.server = common.gunicorn(
        "bench.wsgi:app", room.port, threads=n + 40, worker_connections=n + 200,
        env_extra=common.server_env(room.url, DISCUX_MAX_SOCKETS=n))
    pid = common.worker_pid(room.server)
    pool = common.ListenerPool()
    pool.add(room.listener(0))  # warm: imports, templates, connection pool
    pool.settle(quiet=0.5)
    before = common.rss_kib(pid)
    open_s = open_all(pool, lambda k: room.listener(k + 1), n - 1)
    pool.settle(quiet=1.0, limit=120)
    after = common.rss_kib(pid)
    per_socket = (after - before) / (n - 1)
    try:
        lat, missed = measure(pool, lambda i: room.post(content(i)), args.messages, warmup=1)
    except RuntimeError as error:  # the post itself did not complete in 15 s: report it
        print(f"   Discux fan-out to {n}: {error}")
        lat, missed = [float("nan")], args.messages
    over_s, over_code = refused(room, n)
    still = len(pool)
    pool.close()
    room.stop()

    # ---- naive baseline
    port = common.free_port()
    server = common.gunicorn("bench.naive_app:app", port, threads=n + 40,
                             worker_connections=n + 200)
    npid = common.worker_pid(server)
    npool = common.ListenerPool()
    npool.add(common.WSClient(port, "/ws"))
    npool.settle(quiet=0.3)
    nbefore = common.rss_kib(npid)
    nopen_s = open_all(npool, lambda k: common.WSClient(port, "/ws"), n - 1)
    npool.settle(quiet=0.5)
    nafter = common.rss_kib(npid)
    nper = (nafter - nbefore) / (n - 1)
    frame = "<div>" + content(0) + "</div>"

    def send(i):
        return common.HTTPRequest(port, "POST", "/broadcast", frame.encode(),
                                  {"Content-Type": "text/html"})

    try:
        nlat, nmissed = measure(npool, send, args.messages, warmup=1)
    except RuntimeError as error:
        print(f"   naive fan-out to {n}: {error}")
        nlat, nmissed = [float("nan")], args.messages
    npool.close()
    common.stop(server)

    d50, d99 = common.percentile(lat, 50), common.percentile(lat, 99)
    b50, b99 = common.percentile(nlat, 50), common.percentile(nlat, 99)
    common.table(f"{n} sockets on one worker",
                 ["server", "open all", "RSS before", "RSS after", "per socket",
                  f"fan-out to {n} p50", "p99", "lost"],
                 [["Discux", f"{open_s:.1f} s", f"{before / 1024:.1f} MiB",
                   f"{after / 1024:.1f} MiB", f"{per_socket:.1f} KiB", common.ms(d50),
                   common.ms(d99), missed],
                  ["naive flask-sock", f"{nopen_s:.1f} s", f"{nbefore / 1024:.1f} MiB",
                   f"{nafter / 1024:.1f} MiB", f"{nper:.1f} KiB", common.ms(b50),
                   common.ms(b99), nmissed]])
    at_once = over_s is not None and over_s < 0.5 and over_code == 1013
    print(f"   socket {n + 1} (beyond the cap): close code {over_code}, "
          f"{'after ' + common.ms(over_s) if over_s is not None else 'no close within 10 s'}"
          f" -> {'refused at once' if at_once else 'NOT refused at once'}; "
          f"{still} sockets were open")
    ok = per_socket <= TARGET_KIB and at_once and not missed
    common.verdict("sockets", f"{per_socket:.1f} KiB/socket, fan-out p99 {common.ms(d99)}, "
                   f"socket {n + 1} → {over_code}",
                   f"naive {nper:.1f} KiB/socket, p99 {common.ms(b99)}",
                   per_socket / nper if nper > 0 else float("nan"),
                   "<= 64 KiB/socket, fan-out reaches all, over the cap 1013 at once; "
                   "ratio = memory per socket", ok)
    return 0


if __name__ == "__main__":
    sys.exit(main())
