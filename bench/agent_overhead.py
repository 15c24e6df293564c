"""Agent overhead: first streamed token at a listening socket minus the fake LLM's own TTFT.

A real server (gunicorn gthread, SQLite or MariaDB) talks to a FakeLLM (OpenAI-compatible) that
runs in a process of its own, so neither the server nor the bench shares an interpreter lock
with it. A member posts "@Agent …" over HTTP; a second member's socket (`?format=json`, offering
permessage-deflate) timestamps the user message's `message.created` and the agent's first
`message.delta`. Baseline, interleaved in the same run: the fake's own time to first token,
measured from this bench process (a client process apart from the fake, as the server's worker
is) with the openai SDK (warm client, streaming, the same request parameters Discux sends).

Figures: overhead = (first delta at socket − user message.created at socket) − SDK TTFT, i.e.
what Discux adds between "the message is stored and visible" and "the first token is visible"
(SPEC §11.5: the agent machinery: hand-off to the room's runner, the prompt's reads, the model
request, the reply row, the fan-out). The post request itself (validate, store, render) is
SPEC §11.2's figure; it is shown here too, from the HTTP POST being sent.

    python -m bench.agent_overhead [--replies 200] [--engine sqlite|mariadb] [--redis] [--quick]

With --redis the server runs as it does with several workers: a redis-server of the bench's own
(on a free port) carries the events and the rooms' turn leases.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import subprocess
import sys
import threading
import time

from bench import common

TARGET_P99 = 0.005
PER_AGENT = 8  # an agent answers at most 10 times a minute: rotate through enough of them


REPLY = "Sounds good to me, ship it."
# What Discux sends, in shape: a system prompt, a user line, logprobs, a temperature and a cap.
BASELINE_MESSAGES = [
    {"role": "system", "content": "You are Nova, an AI agent in a team chat room. " * 12},
    {"role": "user", "content": "Ana: @Nova what do you think?"},
]


def sdk_ttft(client, model: str) -> float:
    started = time.perf_counter()
    stream = client.chat.completions.create(
        model=model, stream=True, messages=BASELINE_MESSAGES, logprobs=True, temperature=0.7,
        max_tokens=800)
    first = None
    for chunk in stream:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - started
    return first


def load_average() -> str:
    return " / ".join(f"{value:.2f}" for value in os.getloadavg()) + " (1 / 5 / 15 min)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replies", type=int, default=200)
    parser.add_argument("--engine", choices=["sqlite", "mariadb"], default="sqlite")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--redis", action="store_true",
                        help="coordinate through a redis-server of the bench's own")
    parser.add_argument("--budget", action="store_true",
                        help="give the room a monthly token budget, so every reply reserves "
                             "its tokens under the budget's row lock before its request")
    args = parser.parse_args(argv)
    replies = 15 if args.quick else args.replies

    import openai
    import requests

    from discux.extensions import db
    from tests.support import chat_factories
    from tests.support.redis_server import PrivateRedis

    redis_server = PrivateRedis().start() if args.redis else None
    redis_env = {"DISCUX_REDIS_URL": redis_server.url} if redis_server else {}

    fake = common.spawn([common.PYTHON, "-m", "tests.support.fake_llm", "--text", REPLY],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    fake_url = fake.stdout.readline().strip()
    url = common.fresh_database(args.engine)
    engine = common.engine_name(url) + (" + Redis" if args.redis else "")
    common.header("agent_overhead", engine=engine, replies=replies,
                  server="gunicorn gthread, 1 worker, 16 threads; FakeLLM in its own process"
                  + ("; Redis (events, turn leases)" if redis_server else "")
                  + ("; room token budget (reserve + settle)" if args.budget else ""),
                  load=load_average())
    app = common.make_app(url, migrate=True)
    (poster_id, poster_token), (listener_id, listener_token) = common.people(app, 2)
    with app.app_context():
        room = chat_factories.create_room(poster_id, name="Agent overhead")
        room.settings.auto_summarize = False
        if args.budget:
            room.settings.monthly_token_budget = 10**11
        chat_factories.add_member(room, listener_id)
        names = []
        agents = replies // PER_AGENT + 4
        for n in range(agents):
            agent = chat_factories.create_agent(poster_id, name=f"Nova{n}")
            chat_factories.add_agent(room, agent, poster_id)
            names.append(agent.name)
        room_id = room.id
        db.session.commit()
        db.engine.dispose()

    port = common.free_port()
    server = common.gunicorn("bench.wsgi:app", port, threads=16, env_extra=common.server_env(
        url, DISCUX_LLM_BASE_URL=fake_url, DISCUX_LLM_MODEL="fake-small",
        DISCUX_LLM_API_KEY="bench", **redis_env))
    base = f"http://127.0.0.1:{port}"
    http = requests.Session()
    http.cookies.set("discux_session", poster_token)
    page = http.get(f"{base}/rooms/{room_id}", timeout=10)
    csrf = re.search(r'"X-CSRFToken": "([^"]+)"', page.text).group(1)
    ws = common.WSClient(port, f"/rooms/{room_id}/ws?format=json",
                         cookie=common.cookie_for(listener_token))
    sdk = openai.OpenAI(base_url=fake_url, api_key="bench", max_retries=0, timeout=10)
    sdk_ttft(sdk, "fake-small")  # the SDK's first call warms the client (~30 ms, NOTES.md)

    def events_until(predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            select.select([ws.sock], [], [], 0.5)
            ws.read_available()
            for t, text in ws.texts():
                event = json.loads(text)
                if predicate(event, t):
                    return
        raise RuntimeError("timed out waiting for an event")

    app_path, from_post, baseline = [], [], []
    # At the socket, in the order Discux sends them. "answering" goes out once the prompt's
    # reads are done and the model request is on its way; the first delta follows the model.
    # Frames read in one batch share a timestamp, so a stage can show 0.
    stages = {"created → agent.status": [], "agent.status → reply row created": [],
              "reply row created → first delta": []}
    warmup = 3
    for i in range(replies + warmup):
        marks = {}

        def see(event, t, marks=marks):
            kind = event["type"]
            data = event["data"]
            if kind == "message.created" and data.get("type") == "user":
                marks.setdefault("created", t)
            elif kind == "agent.status" and data.get("state") == "answering":
                marks.setdefault("status", t)
            elif kind == "message.created" and data.get("type") == "agent":
                marks.setdefault("reply_row", t)
            elif kind == "message.delta":
                marks.setdefault("delta", t)
            elif kind == "message.completed" and data.get("type") == "agent":
                marks["completed"] = t
            elif kind == "agent.status" and data.get("state") == "idle" and "completed" in marks:
                return True  # the room's runner is done: the next post starts from rest
            return False

        answer = {}

        def post(i=i, answer=answer):
            answer["response"] = http.post(
                f"{base}/rooms/{room_id}/messages", timeout=10,
                data={"content": f"@{names[i % len(names)]} what do you think? #{i}"},
                headers={"X-CSRFToken": csrf, "HX-Request": "true"})

        # The POST waits for its answer on a thread of its own, so the socket is read while the
        # server still works on it: a frame is timestamped when it arrives, not once the POST
        # has returned (message.created arrives before the POST's answer).
        poster = threading.Thread(target=post)
        posted = time.perf_counter()
        poster.start()
        events_until(see)
        poster.join(10)
        assert answer["response"].status_code == 200, answer["response"].status_code
        time.sleep(0.02)
        ttft = sdk_ttft(sdk, "fake-small")
        if i >= warmup:
            app_path.append(marks["delta"] - marks["created"])
            from_post.append(marks["delta"] - posted)
            baseline.append(ttft)
            if "status" in marks and "reply_row" in marks:
                stages["created → agent.status"].append(marks["status"] - marks["created"])
                stages["agent.status → reply row created"].append(
                    marks["reply_row"] - marks["status"])
                stages["reply row created → first delta"].append(
                    marks["delta"] - marks["reply_row"])
        time.sleep(0.02)
    ws.close()
    common.stop(server)
    common.stop(fake)
    if redis_server:
        redis_server.stop()
    print(f"   load average at the end: {load_average()}")

    rows = []
    for label, values in (("socket: message.created → first delta", app_path),
                          ("HTTP POST sent → first delta", from_post),
                          ("baseline: fake TTFT via openai SDK", baseline)):
        rows.append([label, common.ms(common.percentile(values, 50)),
                     common.ms(common.percentile(values, 99))])
    over50 = common.percentile(app_path, 50) - common.percentile(baseline, 50)
    over99 = common.percentile(app_path, 99) - common.percentile(baseline, 99)
    post50 = common.percentile(from_post, 50) - common.percentile(baseline, 50)
    post99 = common.percentile(from_post, 99) - common.percentile(baseline, 99)
    for label, values in stages.items():
        if values:
            rows.append([f"  stage: {label}", common.ms(common.percentile(values, 50)),
                         common.ms(common.percentile(values, 99))])
    rows.append(["overhead (created → delta) − TTFT", common.ms(over50), common.ms(over99)])
    rows.append(["overhead (POST → delta) − TTFT", common.ms(post50), common.ms(post99)])
    common.table(f"time to first token ({engine}, {replies} replies)", ["path", "p50", "p99"],
                 rows)
    ratio = common.percentile(app_path, 99) / common.percentile(baseline, 99)
    common.verdict("agent_overhead",
                   f"{engine} overhead p50 {common.ms(over50)} / p99 {common.ms(over99)}",
                   f"fake TTFT p50 {common.ms(common.percentile(baseline, 50))} / p99 "
                   f"{common.ms(common.percentile(baseline, 99))}", ratio,
                   "overhead p99 <= 5 ms; ratio = app path p99 / TTFT p99", over99 <= TARGET_P99)
    return 0


if __name__ == "__main__":
    sys.exit(main())
