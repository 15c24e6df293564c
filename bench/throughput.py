"""Messages accepted per second through the full path vs raw ORM INSERTs of the same rows.

Discux: `post_user_message` (validate, plan quota, mentions, Markdown render + sanitize, store with
one commit, publish to the room's sockets through the in-process broker) followed by
`on_user_message` (what the HTTP route does next), in-process, one message after another,
room with no listeners. Baseline: the same Message rows (content_html rendered beforehand),
`db.session.add` + one commit each, through the same SQLAlchemy engine and driver.

    python -m bench.throughput [--messages 3000] [--engine both|sqlite|mariadb] [--quick]
"""

from __future__ import annotations

import argparse
import sys
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


def run_engine(kind: str, count: int, warmup: int) -> dict:
    from discux.extensions import db
    from discux.ids import new_id
    from discux.messages.rendering import render_markdown
    from discux.messages.service import post_user_message
    from discux.models import Message, Room, User
    from tests.support import chat_factories, factories

    url = common.fresh_database(kind)
    app = common.make_app(url, migrate=True)
    engine = common.engine_name(url)
    with app.app_context():
        user = factories.create_user(plan="pro")
        room = chat_factories.create_room(user, name="Throughput")
        agent = chat_factories.create_agent(user, name="Nova")
        chat_factories.add_agent(room, agent, user)
        user_id, room_id = user.id, room.id
        texts = contents(count + warmup, "Nova")

        # Discux: the full message path.
        from discux.discussion.engine import on_user_message

        def post(text: str) -> None:
            u = db.session.get(User, user_id)
            r = db.session.get(Room, room_id)
            message = post_user_message(u, r, text)
            # The route's next step, minus starting the mentioned agent (no LLM here: an agent
            # reply would run in the background and steal CPU from the figure).
            on_user_message(SimpleNamespace(room_id=message.room_id, humans_only=True,
                                            mentions=[]))

        for text in texts[:warmup]:
            post(text)
        started = time.perf_counter()
        for text in texts[warmup:]:
            post(text)
        discux_s = time.perf_counter() - started
        db.session.remove()

        # Baseline: the same rows through the ORM, one commit each.
        rows = [(text, render_markdown(text)) for text in texts]
        name = db.session.get(User, user_id).display_name

        def insert(text: str, html: str) -> None:
            db.session.add(Message(id=new_id(), room_id=room_id, content=text, content_html=html,
                                   type="user", sender_id=user_id, sender_name=name,
                                   status="complete", humans_only=False))
            db.session.commit()

        for text, html in rows[:warmup]:
            insert(text, html)
        started = time.perf_counter()
        for text, html in rows[warmup:]:
            insert(text, html)
        raw_s = time.perf_counter() - started
        db.session.remove()
        db.engine.dispose()
    return {"engine": engine, "discux": count / discux_s, "raw": count / raw_s,
            "per_msg_ms": discux_s / count * 1000, "raw_per_msg_ms": raw_s / count * 1000}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--engine", choices=["both", "sqlite", "mariadb"], default="both")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    args = parser.parse_args(argv)
    count = 100 if args.quick else args.messages
    warmup = 10 if args.quick else 100
    common.header("throughput", messages=count, warmup=warmup,
                  path="post_user_message + on_user_message, in-process, no listeners")
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
