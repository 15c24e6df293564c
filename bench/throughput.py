"""Messages accepted per second through the full path vs raw ORM INSERTs of the same rows.

Discux, per message, what `POST /rooms/<id>/messages` does after parsing the form, in-process and
one message after another: a fresh session (each request has its own), the poster loaded from
their sign-in cookie's token (`session_for_token`, as the request loader does), the room and the
poster's membership (`room_and_membership`, as the route does), then
`post_user_message` (validate, archived check, plan quota, mentions, Markdown render + sanitize,
store with one commit, publish) and `on_user_message` (the route's next step). The fan-out is
real: one member listens on a WebSocket of the room (a separate process, offering
permessage-deflate as browsers do) through the app's own server, so every post renders and
writes its HTML frame; the clock stops when that listener has received the last message, and the
bench checks it got every one. Baseline, same run, same engine and driver: the same Message rows
(content_html rendered beforehand), `db.session.add` + one commit each. The two take turns in
blocks of 100 messages, so both see the same machine load and the same table size.

    python -m bench.throughput [--messages 3000] [--engine both|sqlite|mariadb] [--quick]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

from bench import common

TARGETS = {"SQLite": 1500, "MariaDB": 600}


def contents(n: int, agent_name: str) -> list[str]:
    words = ["ship", "the", "beta", "on", "**Friday**", "AI", "UX", "review", "`code`", "plan"]
    out = []
    for i in range(n):
        body = " ".join(words[(i + k) % len(words)] for k in range(12))
        if i % 10 == 0:
            body = f"@{agent_name} {body}"  # one in ten mentions an agent (no LLM is configured)
        out.append(f"{body} #{i}")
    return out


BLOCK = 100  # messages per turn (see run_engine)
MARK = re.compile(r"#(\d+)</p>")  # every message ends with its number: "… #123"


def listen(port: int, path: str, cookie: str, last: int) -> int:
    """(Listener process) read the room's socket, saying which message arrived, until #`last`."""
    import select

    client = common.WSClient(port, path, cookie=cookie)
    print("ready", flush=True)
    seen: set[int] = set()
    deadline = time.monotonic() + 600
    while last not in seen and not client.eof and time.monotonic() < deadline:
        select.select([client.sock], [], [], 1.0)
        client.read_available()
        arrived = []
        for _, text in client.texts():
            arrived += [int(n) for n in MARK.findall(text) if int(n) not in seen]
            seen.update(arrived)
        if arrived:
            print("\n".join(f"at {n}" for n in arrived), flush=True)
    print(f"received {len(seen)}", flush=True)
    client.close()
    return 0


class Listener:
    """A member with the room open: a WebSocket client in its own process, like a browser."""

    def __init__(self, port: int, room_id: str, token: str, last: int):
        self.proc = common.spawn(
            [sys.executable, "-m", "bench.throughput", "--listen", str(port),
             f"/rooms/{room_id}/ws", common.cookie_for(token), str(last)],
            stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the listener could not open the room's socket")

    def wait_for(self, number: int) -> None:
        """Block until message #`number` has reached the listener."""
        for line in self.proc.stdout:
            if line.strip() == f"at {number}":
                return
            if not line.startswith("at "):
                break
        raise RuntimeError(f"the listener stopped before message #{number} arrived")

    def received(self) -> int:
        """How many distinct messages the socket got (after the last one arrived)."""
        line = self.proc.stdout.readline().strip()
        self.proc.wait(timeout=30)
        return int(line.split()[1]) if line.startswith("received") else 0


def serve(app):
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run_engine(kind: str, count: int, warmup: int) -> dict:
    from discux.auth.sessions import session_for_token
    from discux.extensions import db
    from discux.ids import new_id
    from discux.messages.rendering import render_markdown
    from discux.messages.service import post_user_message
    from discux.models import Message, User
    from discux.rooms.permissions import room_and_membership
    from tests.support import chat_factories, factories

    url = common.fresh_database(kind)
    app = common.make_app(url, migrate=True)
    engine = common.engine_name(url)
    with app.app_context():
        user = factories.create_user(plan="pro")
        reader = factories.create_user(plan="pro")
        room = chat_factories.create_room(user, name="Throughput")
        chat_factories.add_member(room, reader.id)
        agent = chat_factories.create_agent(user, name="Nova")
        chat_factories.add_agent(room, agent, user)
        user_id, room_id = user.id, room.id
        poster_token = factories.create_session_token(user.id)
        reader_token = factories.create_session_token(reader.id)
        texts = contents(count + warmup, "Nova")
        db.session.remove()

    server = serve(app)
    listener = Listener(server.server_port, room_id, reader_token, count + warmup - 1)
    with app.app_context():
        # Discux: the full message path.
        from discux.discussion.engine import on_user_message

        def post(text: str) -> None:
            poster = session_for_token(poster_token).user
            room, participant = room_and_membership(poster, room_id)
            message = post_user_message(poster, room, text, participant=participant)
            # The route's next step, minus starting the mentioned agent (no LLM here: an agent
            # reply would run in the background and steal CPU from the figure).
            on_user_message(SimpleNamespace(room_id=message.room_id, humans_only=True,
                                            mentions=[]))
            db.session.remove()  # the request ends

        # Baseline: the same rows through the ORM, one commit each.
        rows = [(text, render_markdown(text)) for text in texts]
        name = db.session.get(User, user_id).display_name
        db.session.remove()

        def insert(text: str, html: str) -> None:
            db.session.add(Message(id=new_id(), room_id=room_id, content=text, content_html=html,
                                   type="user", sender_id=user_id, sender_name=name,
                                   status="complete", humans_only=False))
            db.session.commit()

        for n in range(warmup):
            post(texts[n])
            insert(*rows[n])
        listener.wait_for(warmup - 1)
        # Blocks of Discux and baseline take turns, so both see the same load on a shared machine
        # and the same table size. A Discux block ends when the listener has its last message.
        discux_s = raw_s = 0.0
        for first in range(warmup, warmup + count, BLOCK):
            block = range(first, min(first + BLOCK, warmup + count))
            started = time.perf_counter()
            for n in block:
                post(texts[n])
            listener.wait_for(block[-1])
            discux_s += time.perf_counter() - started
            started = time.perf_counter()
            for n in block:
                insert(*rows[n])
            raw_s += time.perf_counter() - started
        delivered = listener.received()
        server.shutdown()
        if delivered != count + warmup:
            raise RuntimeError(f"the listener got {delivered} of {count + warmup} messages")
        db.session.remove()
        db.engine.dispose()
    return {"engine": engine, "discux": count / discux_s, "raw": count / raw_s,
            "per_msg_ms": discux_s / count * 1000, "raw_per_msg_ms": raw_s / count * 1000}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--engine", choices=["both", "sqlite", "mariadb"], default="both")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--listen", nargs=4, metavar=("PORT", "PATH", "COOKIE", "LAST"),
                        help=argparse.SUPPRESS)  # the listener process (see Listener)
    args = parser.parse_args(argv)
    if args.listen:
        port, path, cookie, last = args.listen
        return listen(int(port), path, cookie, int(last))
    count = 100 if args.quick else args.messages
    warmup = 10 if args.quick else 100
    common.header("throughput", messages=count, warmup=warmup,
                  path="route steps + post_user_message + on_user_message, in-process, "
                  "one WebSocket listener (own process)")
    results = [run_engine(kind, count, warmup) for kind in common.database_urls(args.engine)]
    common.table("messages per second (one commit per message)",
                 ["engine", "Discux msg/s", "ms/msg", "raw ORM INSERT msg/s", "ms/msg",
                  "Discux/raw", "target"],
                 [[r["engine"], f"{r['discux']:.0f}", f"{r['per_msg_ms']:.3f}", f"{r['raw']:.0f}",
                   f"{r['raw_per_msg_ms']:.3f}", f"{r['discux'] / r['raw']:.2f}x",
                   f">= {TARGETS[r['engine']]}/s"] for r in results])
    ok = all(r["discux"] >= TARGETS[r["engine"]] for r in results)
    figure = ", ".join(f"{r['engine']} {r['discux']:.0f} msg/s" for r in results)
    base = ", ".join(f"{r['engine']} {r['raw']:.0f} msg/s" for r in results)
    ratio = min(r["discux"] / r["raw"] for r in results) if results else 0.0
    common.verdict("throughput", figure, base, ratio,
                   "SQLite >= 1500 msg/s, MariaDB >= 600 msg/s; ratio = worst engine", ok)
    return 0


if __name__ == "__main__":
    sys.exit(main())
