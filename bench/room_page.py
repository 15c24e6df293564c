"""Server time for GET /rooms/<id> with 100,000 messages vs the same page with 100 messages.

In-process through Flask's test client (server time, no network), a signed-in member, SQLite
or MariaDB. Messages are bulk-inserted with their sanitized HTML already stored, as posting does.
The figure is a page viewed again (the usual case: every member, every reload); the server keeps
each message's rendered article, so "first view" also times the page with none kept.

    python -m bench.room_page [--big 100000] [--small 100] [--requests 200]
                              [--engine both|sqlite|mariadb] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time

from bench import common

TARGET_RATIO = 1.1
TARGET_P50 = 0.010
TARGET_KIB = 60


def seed(app, count: int, owner_id: str, name: str) -> str:
    from discux.extensions import db
    from discux.messages.rendering import render_markdown
    from tests.support import search_factories

    samples = [
        "Ship the **beta** on Friday? The AI review found 3 issues in `auth.py`.",
        "I think the UX of the composer is fine; QA should look at the mobile layout.",
        "- decide pricing\n- write the launch post\n- ask @Critic for a second opinion",
        "Agreed. Let's keep the scope small and measure before we optimise anything.",
    ]
    rendered = [(text, render_markdown(text)) for text in samples]
    with app.app_context():
        from discux.models import Room

        room_id = search_factories.room(owner_id, name=name)
        room = db.session.get(Room, room_id)
        room.settings.auto_summarize = False
        db.session.commit()
        if count:
            ids = search_factories.bulk_messages(
                room_id, count, content_for=lambda i: rendered[i % 4][0] + f" #{i}",
                sender_id=owner_id, sender_name="Ada")
            # content_html as stored at write time (same markup for every row of a kind)
            import sqlalchemy as sa

            from discux.models import Message
            for k in range(4):
                db.session.execute(sa.update(Message).where(
                    Message.room_id == room_id, Message.content.like(rendered[k][0] + " #%"))
                    .values(content_html=rendered[k][1]))
            db.session.commit()
            assert len(ids) == count
    return room_id


def time_page(client, room_id: str, requests: int, first_view: bool = False
              ) -> tuple[list[float], int]:
    from discux.messages.history import forget_rendered_articles

    for _ in range(10):  # warm-up: template cache, connection pool, page cache
        response = client.get(f"/rooms/{room_id}")
        assert response.status_code == 200, response.status_code
    times = []
    size = 0
    for _ in range(requests):
        if first_view:
            forget_rendered_articles()
        started = time.perf_counter()
        response = client.get(f"/rooms/{room_id}")
        times.append(time.perf_counter() - started)
        size = len(response.get_data())
    return times, size


def run_engine(kind: str, big: int, small: int, requests: int) -> dict:
    from discux.auth.sessions import COOKIE_NAME

    url = common.fresh_database(kind)
    app = common.make_app(url, migrate=True)
    (owner_id, token), = common.people(app, 1)
    started = time.perf_counter()
    small_room = seed(app, small, owner_id, "Small room")
    big_room = seed(app, big, owner_id, "Big room")
    seeded = time.perf_counter() - started
    client = app.test_client()
    client.set_cookie(COOKIE_NAME, token, domain="localhost")
    # Interleave so both rooms see the same machine state.
    small_t, small_size = time_page(client, small_room, requests // 2)
    big_t, big_size = time_page(client, big_room, requests // 2)
    small_t2, _ = time_page(client, small_room, requests // 2)
    big_t2, _ = time_page(client, big_room, requests // 2)
    small_t += small_t2
    big_t += big_t2
    first_t, _ = time_page(client, big_room, requests // 2, first_view=True)
    with app.app_context():
        from discux.extensions import db
        db.engine.dispose()
    return {"engine": common.engine_name(url), "seed_s": seeded,
            "small_p50": common.percentile(small_t, 50), "small_p99": common.percentile(small_t, 99),
            "big_p50": common.percentile(big_t, 50), "big_p99": common.percentile(big_t, 99),
            "small_kib": small_size / 1024, "big_kib": big_size / 1024,
            "first_p50": common.percentile(first_t, 50)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--engine", choices=["both", "sqlite", "mariadb"], default="both")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.big, args.small, args.requests = 2000, 100, 20
    common.header("room_page", big=args.big, small=args.small, requests=args.requests,
                  how="Flask test client, in-process, signed-in member")
    results = [run_engine(kind, args.big, args.small, args.requests)
               for kind in common.database_urls(args.engine)]
    rows = []
    ok = True
    for r in results:
        ratio = r["big_p50"] / r["small_p50"]
        r["ratio"] = ratio
        good = ratio <= TARGET_RATIO and r["big_p50"] <= TARGET_P50 and r["big_kib"] <= TARGET_KIB
        ok = ok and good
        rows.append([r["engine"], f"{r['seed_s']:.1f} s", common.ms(r["small_p50"]),
                     common.ms(r["small_p99"]), common.ms(r["big_p50"]), common.ms(r["big_p99"]),
                     f"{ratio:.2f}x", f"{r['big_kib']:.1f} KiB", common.ms(r["first_p50"]),
                     "PASS" if good else "MISS"])
    common.table("GET /rooms/<id> server time",
                 ["engine", "seed", f"{args.small} msgs p50", "p99", f"{args.big} msgs p50",
                  "p99", "ratio big/small", "first page HTML", "first view p50", "verdict"], rows)
    figure = ", ".join(f"{r['engine']} p50 {common.ms(r['big_p50'])} ({r['big_kib']:.1f} KiB)"
                       for r in results)
    base = ", ".join(f"{r['engine']} p50 {common.ms(r['small_p50'])}" for r in results)
    worst = max((r["ratio"] for r in results), default=0.0)
    common.verdict("room_page", figure, base, worst,
                   "ratio <= 1.1, p50 <= 10 ms, <= 60 KiB; ratio = worst engine", ok)
    return 0


if __name__ == "__main__":
    sys.exit(main())
