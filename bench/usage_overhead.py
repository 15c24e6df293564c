"""What usage accounting adds ahead of an agent's model request, timed in the turn's own steps.

bench.agent_overhead measures the whole path from a post to the first token at a socket; on a
loaded machine its p99 moves by tens of ms between identical runs, far more than the 0.5 ms
accounting may add. This bench times exactly what discux.discussion.engine.start_reply_call
runs before the request (the budgets' read, and with a budget the reservation: row locks, sums,
the ledger row, a commit), on a real database, many times; and, after the reply, the settling
(off the first token's path). Baseline, interleaved: the turn's own prompt reads
(discux.discussion.context.read_turn), which every reply already runs before its request.

    python -m bench.usage_overhead [--calls 2000] [--engine sqlite|mariadb] [--quick]
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta

from bench import common

TARGET_P99 = 0.0005


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--engine", choices=["sqlite", "mariadb"], default="sqlite")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    calls = 200 if args.quick else args.calls

    import sqlalchemy as sa

    from discux import usage
    from discux.discussion import context
    from discux.extensions import db
    from discux.ids import utcnow
    from discux.llm.base import Usage
    from tests.support import chat_factories

    url = common.fresh_database(args.engine)
    common.header("usage_overhead", engine=common.engine_name(url), calls=calls)
    app = common.make_app(url, migrate=True)
    [(poster_id, _)] = common.people(app, 1)
    with app.app_context():
        rooms = {}
        for budgeted in (False, True):
            room = chat_factories.create_room(poster_id, name=f"Budgeted {budgeted}")
            room.settings.monthly_token_budget = 10**11 if budgeted else None
            agent = chat_factories.create_agent(poster_id, name=f"Nova {budgeted}")
            chat_factories.add_agent(room, agent, poster_id)
            for n in range(20):
                chat_factories.create_message(room, poster_id, f"history line {n} " * 6)
            trigger = chat_factories.create_message(room, poster_id, "@Nova what now?")
            db.session.commit()
            rooms[budgeted] = (room.id, agent.id, trigger.id)

        dialect = "sqlite" if db.engine.dialect.name == "sqlite" else "other"
        # What main reads before a reply: the same compound statement without the budget part.
        without_budgets = sa.union_all(*context.TURN_READS[dialect].selects[:4])
        timings: dict[str, list[float]] = {"read_turn without budgets (main)": [],
                                           "read_turn + accounting, no budget": [],
                                           "read_turn + accounting, room budget": [],
                                           "settle (after the reply)": []}
        for n in range(calls):
            for budgeted in (False, True):
                room_id, agent_id, trigger_id = rooms[budgeted]
                since = utcnow() - timedelta(seconds=60)
                if not budgeted:
                    started = time.perf_counter()
                    db.session.execute(without_budgets, {
                        "room_id": room_id, "agent_id": agent_id, "since": since,
                        "before": context.AFTER_EVERY_ID})
                    timings["read_turn without budgets (main)"].append(
                        time.perf_counter() - started)
                    db.session.rollback()
                started = time.perf_counter()
                reads = context.read_turn(room_id, agent_id, since, trigger_id=trigger_id)
                call = usage.Call("reply", "fake-small", 300, room_id=room_id,
                                  agent_id=agent_id, message_id=f"bench-{n}")
                usage.reserve(call, usage.facts_of(reads.budgets, reads.payer), 500, who="Nova")
                timings["read_turn + accounting, "
                        + ("room budget" if budgeted else "no budget")].append(
                    time.perf_counter() - started)
                started = time.perf_counter()
                usage.settle(call, usage.figures_of(call, Usage(300, 12), "twelve tokens"))
                db.session.commit()
                timings["settle (after the reply)"].append(time.perf_counter() - started)
        db.session.remove()
        db.engine.dispose()

    rows = [[name, common.ms(common.percentile(values, 50)),
             common.ms(common.percentile(values, 99))] for name, values in timings.items()]
    common.table(f"before the model request ({common.engine_name(url)}, {calls} calls each)",
                 ["step", "p50", "p99"], rows)
    base = timings["read_turn without budgets (main)"]
    verdicts = []
    for name in ("no budget", "room budget"):
        measured = timings[f"read_turn + accounting, {name}"]
        added = common.percentile(measured, 99) - common.percentile(base, 99)
        verdicts.append((name, added))
        print(f"   added p50 {common.ms(common.percentile(measured, 50) - common.percentile(base, 50))}"
              f" / p99 {common.ms(added)} ({name})")
    added = dict(verdicts)["no budget"]
    common.verdict("usage_overhead",
                   f"accounting before the request, no budget: p99 +{common.ms(added)}",
                   f"main's read_turn p99 {common.ms(common.percentile(base, 99))}",
                   common.percentile(timings["read_turn + accounting, no budget"], 99)
                   / common.percentile(base, 99),
                   f"added p99 <= {TARGET_P99 * 1000:g} ms", added <= TARGET_P99)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
