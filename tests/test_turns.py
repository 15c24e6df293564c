"""Agent turns that outlive their worker, one at a time per room across workers and hosts: real
gunicorn (or `flask run`) processes, a Redis the test starts, the fake model on HTTP, and
`kill -9` where a worker dies."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from discux.discussion.engine import engine_for
from discux.extensions import db
from discux.models import Agent, AgentTurn, Message, MessageMention
from discux.realtime.hub import hub_for
from tests.conftest import empty_tables
from tests.support import chat_factories, factories, ws_client
from tests.support.fake_llm import FakeReply
from tests.support.redis_server import free_port
from tests.support.ws_client import Member

PROJECT = Path(__file__).resolve().parent.parent
LONG = " ".join(f"w{n}" for n in range(400))


class Place:
    """A room with two agents, Nova and Scout, whose prompts name them (the fake answers by
    name), and its owner's session token; the tables are emptied afterwards."""

    def __init__(self, app, names=("Nova", "Scout")):
        self.app = app
        with app.app_context():
            owner = factories.create_user(name="Olga Owner", plan="pro")
            room = chat_factories.create_room(owner.id, name="Launch plan")
            self.agents = {}
            for name in names:
                agent = chat_factories.create_agent(owner.id, name=name)
                agent.prompt = f"You are {name}, in this room."
                db.session.commit()
                chat_factories.add_agent(room, agent, owner.id)
                self.agents[name] = agent.id
            self.room_id, self.token = room.id, factories.create_session_token(owner.id)

    def replies(self) -> list[Message]:
        with self.app.app_context():
            rows = db.session.scalars(
                sa.select(Message).where(Message.room_id == self.room_id, Message.type == "agent")
                .order_by(Message.id)).all()
            for row in rows:
                db.session.expunge(row)
            db.session.remove()
            return list(rows)

    def replies_of(self, name: str) -> list[Message]:
        return [m for m in self.replies() if m.sender_id == self.agents[name]]

    def turns(self) -> list[AgentTurn]:
        with self.app.app_context():
            rows = db.session.scalars(sa.select(AgentTurn).where(
                AgentTurn.room_id == self.room_id).order_by(AgentTurn.id)).all()
            for row in rows:
                db.session.expunge(row)
            db.session.remove()
            return list(rows)


@pytest.fixture
def place(make_app, fake):
    fake.reset()
    app = make_app()
    yield Place(app)
    with app.app_context():
        db.session.remove()
        empty_tables(db.engine)


def by_agent(replies: dict[str, FakeReply]):
    def respond(body):
        system = body["messages"][0]["content"]
        return next((reply for name, reply in replies.items()
                     if system.startswith(f"You are {name},")), None)
    return respond


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.1)


class Server:
    """One server process of Discux on a free port: gunicorn (`workers` workers) or, with
    workers=0, `flask run` as `make run` starts it."""

    def __init__(self, tmp_path: Path, database_url: str, env_extra: dict, workers: int = 1):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"server-{self.port}.log"
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("DISCUX_", "DATABASE_URL"))}
        env.update({"SECRET_KEY": "test-secret-key-not-for-production",
                    "DATABASE_URL": database_url, "DISCUX_BASE_URL": self.base_url,
                    "DISCUX_INSTANCE_PATH": str(tmp_path / "instance"),
                    "DISCUX_MAX_SOCKETS": "20", **env_extra})
        if workers:
            command = [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py",
                       "-w", str(workers), "-b", f"127.0.0.1:{self.port}", "app:app"]
        else:
            command = [sys.executable, "-m", "flask", "--app", "app", "run",
                       "--host", "127.0.0.1", "--port", str(self.port)]
        self.command, self.env = command, env
        self.start()

    def start(self) -> Server:
        self.log = self.log_path.open("a")
        self.process = subprocess.Popen(self.command, cwd=PROJECT, env=self.env, stdout=self.log,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            assert self.process.poll() is None, self.log_path.read_text()
            try:
                if requests.get(self.base_url + "/healthz", timeout=5).status_code == 200:
                    return self
            except (requests.ConnectionError, requests.Timeout):
                pass
            assert time.monotonic() < deadline, "the server did not start within 30 s"
            time.sleep(0.1)

    def pids(self) -> list[int]:
        """The processes serving requests: gunicorn's workers, or the flask process itself."""
        children = [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()
                    and parent_of(int(entry.name)) == self.process.pid]
        return children if "gunicorn" in self.command[0] else [self.process.pid]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def pid_with_local_port(port: int, pids: list[int]) -> int | None:
    """Which of `pids` holds the TCP connection whose local end is `port` (Linux /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                return pid
    return None


def served(tmp_path, database_url, fake, **env):
    return {"DISCUX_LLM_BASE_URL": fake.base_url, "DISCUX_LLM_MODEL": "fake-small", **env}


def test_a_killed_workers_reply_is_interrupted_and_the_next_agent_answers_elsewhere(
        place, fake, redis_server, migrated_database, tmp_path):
    """Two hosts (gunicorn each) on one database and Redis: kill -9 the worker streaming Nova's
    reply; another worker marks it interrupted, keeps its text, and Scout answers."""
    env = served(tmp_path, migrated_database, fake, DISCUX_REDIS_URL=redis_server.url)
    hosts = [Server(tmp_path, migrated_database, env), Server(tmp_path, migrated_database, env)]
    try:
        answered_by = []
        nova_streams = by_agent({"Nova": FakeReply(text=LONG, delay_per_token=0.05)})

        def respond(body):  # while the request is open, see which worker sent it
            answered_by.append(pid_with_local_port(fake.peers[-1][1],
                                                   [p for h in hosts for p in h.pids()]))
            return nova_streams(body) or FakeReply(text="Scout here, all good.")

        fake.respond_with(respond)
        poster = Member(hosts[0].base_url, place.token)
        assert poster.post(place.room_id, "@Nova @Scout what now?").status_code == 200
        fake.wait_for_requests(1, timeout=10)
        wait_until(lambda: place.replies_of("Nova"), 10, "Nova's reply row")
        [streaming] = wait_until(lambda: answered_by, 5, "the worker asking for Nova")
        assert streaming is not None
        os.kill(streaming, signal.SIGKILL)

        [nova] = wait_until(lambda: [m for m in place.replies_of("Nova")
                                     if m.status == "interrupted"], 15, "Nova interrupted")
        [scout] = wait_until(lambda: [m for m in place.replies_of("Scout")
                                      if m.status == "complete"], 15, "Scout's answer")
        assert LONG.startswith(nova.content)  # what was stored of it is kept, nothing made up
        assert scout.content == "Scout here, all good."
        assert answered_by[1] not in (None, streaming)
        assert len(fake.requests) == 2 and len(place.replies()) == 2  # nothing asked twice
        wait_until(lambda: [t.state for t in place.turns()] == ["interrupted", "done"], 10,
                   "the turns' states")
        page = requests.get(f"{hosts[1].base_url}/rooms/{place.room_id}",
                            cookies={"discux_session": place.token}, timeout=10).text
        assert ">interrupted</span>" in page and f"/messages/{nova.id}/retry" in page
    finally:
        for host in hosts:
            host.stop()


CREW = ("Nova", "Scout", "Iris", "Otto", "Vega", "Juno", "Remy", "Tess")


def answers_its_point(body):
    """The fake's reply names the newest "point N" of the prompt: the post it was asked about."""
    asked = [m["content"] for m in body["messages"] if m["role"] == "user"]
    point = next((m.rsplit("point ", 1)[1] for m in reversed(asked) if " point " in m), "?")
    return FakeReply(text=f"On point {point}, with a few words more.", delay_per_token=0.03)


def test_forty_posts_on_two_hosts_never_run_two_turns_of_a_room_at_once(
        make_app, fake, redis_server, migrated_database, tmp_path):
    fake.reset()
    app = make_app()
    place = Place(app, names=CREW)
    env = served(tmp_path, migrated_database, fake, DISCUX_REDIS_URL=redis_server.url)
    hosts = [Server(tmp_path, migrated_database, env), Server(tmp_path, migrated_database, env)]
    try:
        fake.respond_with(answers_its_point)
        posters = [Member(host.base_url, place.token) for host in hosts]
        # Post n asks one agent, every third post a second one: each agent is asked at most
        # 8 times, under its 10 replies a minute.
        for n in range(40):
            asked = [CREW[n % 8]] + ([CREW[(n + 3) % 8]] if n % 3 == 0 else [])
            response = posters[n % 2].post(place.room_id,
                                           " ".join(f"@{a}" for a in asked) + f" point {n}")
            assert response.status_code == 200
            time.sleep(0.05 * (n % 3))  # some posts land mid-reply, some between replies

        def settled():
            return all(t.state not in ("queued", "running") for t in place.turns())
        wait_until(settled, 90, "every turn ended")
        turns = place.turns()
        # No worker died: no lease lapsed (the hosts' logs say why one would have).
        assert "interrupted" not in {t.state for t in turns}, [
            line for host in hosts for line in host.log_path.read_text().splitlines()
            if "WARNING" in line or "ERROR" in line][-20:]
        ran = sorted((t for t in turns if t.started_at), key=lambda t: t.started_at)
        for before, after in zip(ran, ran[1:], strict=False):
            assert after.started_at >= before.ended_at, (before.id, after.id)
        with place.app.app_context():
            asked = {(m.message_id, m.mentioned_agent_id)
                     for m in db.session.scalars(sa.select(MessageMention))}
            points = {m.id: m.content.rsplit("point ", 1)[1] for m in db.session.scalars(
                sa.select(Message).where(Message.room_id == place.room_id,
                                         Message.type == "user"))}
            db.session.remove()
        replies = place.replies()
        assert replies and all((r.reply_to_id, r.sender_id) in asked for r in replies)
        assert not [r for r in replies if r.status == "streaming"]
        for reply in replies:  # each answers the post it was asked about
            assert reply.content.startswith(f"On point {points[reply.reply_to_id]},"[
                :len(reply.content)]), (reply.content, points[reply.reply_to_id])
        # The last post's agents both answered it in full.
        last = [r for r in replies if r.status == "complete"][-2:]
        assert {r.sender_id for r in last} == {place.agents["Tess"], place.agents["Iris"]}
        assert {points[r.reply_to_id] for r in last} == {"39"}
    finally:
        for host in hosts:
            host.stop()
        with app.app_context():
            db.session.remove()
            empty_tables(db.engine)


def test_a_socket_reconnecting_to_a_worker_started_mid_reply_sees_it_all_once(
        place, fake, redis_server, migrated_database, tmp_path):
    """The reply streams on one host; another starts meanwhile, and a socket dropped from the
    first reconnects there: the text so far, then the rest, nothing twice."""
    env = served(tmp_path, migrated_database, fake, DISCUX_REDIS_URL=redis_server.url)
    hosts = [Server(tmp_path, migrated_database, env)]
    try:
        fake.respond_with(by_agent({"Nova": FakeReply(text=LONG, delay_per_token=0.02)}))
        first = ws_client.connect(hosts[0].base_url, place.room_id, place.token)
        assert Member(hosts[0].base_url, place.token).post(
            place.room_id, "@Nova tell it all").status_code == 200
        reply_id = ws_client.wait_for_event(first, lambda e: e["type"] == "message.created"
                                            and e["data"]["type"] == "agent")["data"]["id"]
        hosts.append(Server(tmp_path, migrated_database, env))  # starts while Nova streams
        before_drop = ""
        while len(before_drop.split()) < 80:  # past the text of the new host's start
            before_drop += ws_client.wait_for_event(
                first, lambda e: e["type"] == "message.delta", timeout=10)["data"]["delta"]
        first.close()

        again = ws_client.connect(hosts[1].base_url, place.room_id, place.token,
                                  after=reply_id)
        resent = ws_client.wait_for_event(
            again, lambda e: e["type"] == "message.updated" and e["data"]["id"] == reply_id,
            timeout=10)
        so_far = resent["data"]["content"]
        assert so_far.startswith(before_drop) or resent["data"]["status"] != "streaming"
        rest = ""
        while resent["data"]["status"] == "streaming":
            event = ws_client.wait_for_event(again, lambda e: e["data"].get("id") == reply_id
                                             and e["type"] in {"message.delta",
                                                               "message.completed"},
                                             timeout=15)
            if event["type"] == "message.completed":
                assert event["data"]["content"] == LONG
                break
            rest += event["data"]["delta"]
        assert so_far + rest == LONG, (so_far[-40:], rest[:60])  # every word, none twice
        again.close()
    finally:
        for host in hosts:
            host.stop()


def test_a_single_process_killed_mid_reply_settles_it_when_restarted_and_retry_works(
        place, fake, migrated_database, tmp_path):
    """`make run`-style: one `flask run` process, no Redis."""
    server = Server(tmp_path, migrated_database, served(tmp_path, migrated_database, fake),
                    workers=0)
    try:
        fake.respond_with(by_agent({"Nova": FakeReply(text=LONG, delay_per_token=0.05),
                                    "Scout": FakeReply(text="Scout was queued behind Nova.")}))
        poster = Member(server.base_url, place.token)
        assert poster.post(place.room_id, "@Nova @Scout go").status_code == 200
        wait_until(lambda: place.replies_of("Nova"), 10, "Nova's reply row")
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
        assert [m.status for m in place.replies()] == ["streaming"]

        fake.respond_with(by_agent({"Nova": FakeReply(text="Nova, asked again."),
                                    "Scout": FakeReply(text="Scout was queued behind Nova.")}))
        server.start()
        [nova] = wait_until(lambda: [m for m in place.replies_of("Nova")
                                     if m.status == "interrupted"], 10, "Nova interrupted")
        wait_until(lambda: [m for m in place.replies_of("Scout") if m.status == "complete"],
                   10, "Scout's answer")

        poster = Member(server.base_url, place.token)
        response = poster.http.post(f"{server.base_url}/rooms/{place.room_id}/messages/"
                                    f"{nova.id}/retry", headers={"X-CSRFToken": poster.csrf,
                                                                 "HX-Request": "true"})
        assert response.status_code == 204
        again = wait_until(lambda: [m for m in place.replies_of("Nova")
                                    if m.status == "complete"], 10, "Nova's new answer")
        assert [(m.content, m.reply_to_id) for m in again] == [("Nova, asked again.",
                                                                 nova.reply_to_id)]
    finally:
        server.stop()


# ---- in one process ----
def signed_in(app, token):
    client = app.test_client()
    client.set_cookie("discux_session", token, domain="localhost")
    csrf = re.search(r'"X-CSRFToken": "([^"]+)"', client.get("/").get_data(as_text=True))[1]
    return client, csrf


def test_stop_cancels_the_queued_turns_in_the_database(llm_app, fake):
    place = Place(llm_app)
    fake.respond_with(by_agent({"Nova": FakeReply(text=LONG, delay_per_token=0.02)}))
    client, csrf = signed_in(llm_app, place.token)
    client.post(f"/rooms/{place.room_id}/messages",
                data={"content": "@Nova @Scout plan", "csrf_token": csrf})
    fake.wait_for_requests(1)
    assert client.post(f"/rooms/{place.room_id}/stop", data={"csrf_token": csrf}
                       ).status_code == 303
    assert engine_for(llm_app).wait_idle(place.room_id, timeout=10)
    assert [t.state for t in place.turns()] == ["done", "cancelled"]
    # Nova stops where she is: kept as "stopped", or gone when Stop beat her first word.
    assert [m.status for m in place.replies()] in (["stopped"], [])
    assert len(fake.requests) == 1


def test_a_newer_mention_cancels_the_rooms_queued_turns(llm_app, fake):
    place = Place(llm_app)
    fake.respond_with(by_agent({"Nova": FakeReply(text=LONG, delay_per_token=0.02),
                                "Scout": FakeReply(text="Scout on the new question.")}))
    client, csrf = signed_in(llm_app, place.token)
    client.post(f"/rooms/{place.room_id}/messages",
                data={"content": "@Nova @Scout first", "csrf_token": csrf})
    fake.wait_for_requests(1)
    client.post(f"/rooms/{place.room_id}/messages",
                data={"content": "@Scout new question", "csrf_token": csrf})
    assert engine_for(llm_app).wait_idle(place.room_id, timeout=10)
    assert [t.state for t in place.turns()] == ["done", "cancelled", "done"]
    replies = [(m.sender_id, m.status) for m in place.replies()]
    nova, scout = place.agents["Nova"], place.agents["Scout"]
    # Nova stops where she is: kept as "stopped", or gone when the mention beat her first word.
    assert replies in ([(nova, "stopped"), (scout, "complete")], [(scout, "complete")])


def nova_at_her_rate_limit(place: Place, frees_in: float) -> dt.datetime:
    """Nova has sent her 10 replies of this minute; the oldest leaves the window in `frees_in`
    seconds, which is returned as a time."""
    with place.app.app_context():
        nova = db.session.get(Agent, place.agents["Nova"])
        for _ in range(10):
            chat_factories.create_message(place.room_id, nova, "earlier",
                                          days_ago=(60 - frees_in) / 86400)
        oldest = db.session.scalar(sa.select(sa.func.min(Message.timestamp)).where(
            Message.sender_id == nova.id))
        db.session.remove()
    return oldest + dt.timedelta(seconds=60)


def waiting_turn(place: Place) -> AgentTurn | None:
    return next((t for t in place.turns() if t.state == "queued" and t.not_before), None)


def test_a_turn_waiting_for_its_rate_limit_outlives_its_process(llm_app, make_app, fake):
    # No Redis: the next process finds the waiting turn at start and wakes its room in time.
    place = Place(llm_app)
    frees_at = nova_at_her_rate_limit(place, frees_in=3)
    client, csrf = signed_in(llm_app, place.token)
    client.post(f"/rooms/{place.room_id}/messages",
                data={"content": "@Nova one more", "csrf_token": csrf})
    wait_until(lambda: waiting_turn(place), 5, "Nova's turn waiting in the queue")
    engine_for(llm_app).close()  # the process ends; the turn stays queued
    restarted = make_app(DISCUX_LLM_BASE_URL=fake.base_url, DISCUX_LLM_MODEL="fake-small")
    engine_for(restarted)
    assert engine_for(restarted).wait_idle(place.room_id, timeout=15)
    [answer] = [m for m in place.replies_of("Nova") if m.content != "earlier"]
    assert answer.timestamp >= frees_at and answer.status == "complete"
    assert [t.state for t in place.turns()] == ["done"]


def test_no_worker_runs_a_turn_waiting_for_its_rate_limit_before_it_frees(
        make_app, fake, redis_server):
    workers = [make_app(DISCUX_LLM_BASE_URL=fake.base_url, DISCUX_LLM_MODEL="fake-small",
                        DISCUX_REDIS_URL=redis_server.url) for _ in range(2)]
    fake.reset()
    place = Place(workers[0])
    try:
        frees_at = nova_at_her_rate_limit(place, frees_in=3)
        client, csrf = signed_in(workers[0], place.token)
        engine_for(workers[1])  # polls every second
        client.post(f"/rooms/{place.room_id}/messages",
                    data={"content": "@Nova one more", "csrf_token": csrf})
        wait_until(lambda: waiting_turn(place), 5, "Nova's turn waiting in the queue")
        engine_for(workers[0]).close()  # only the other worker's poll can run it now
        assert engine_for(workers[1]).wait_idle(place.room_id, timeout=15)
        [answer] = [m for m in place.replies_of("Nova") if m.content != "earlier"]
        assert answer.timestamp >= frees_at and answer.status == "complete"
    finally:
        for worker in workers:
            hub_for(worker).close()  # its listener would retry the stopped Redis for the run
        with workers[0].app_context():
            db.session.remove()
            empty_tables(db.engine)


def test_two_first_requests_at_once_build_one_engine(make_app):
    app = make_app()
    built, gate = [], threading.Barrier(8)

    def first_use():
        gate.wait()
        built.append(engine_for(app))

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(engine) for engine in built}) == 1


@pytest.mark.parametrize("status, expect, message", [
    ("complete", 409, "Only a reply that was interrupted can be retried."),
    ("streaming", 409, "Only a reply that was interrupted can be retried."),
])
def test_only_an_interrupted_reply_can_be_retried(llm_app, status, expect, message):
    place = Place(llm_app)
    with llm_app.app_context():
        reply = Message(room_id=place.room_id, type="agent", sender_id=place.agents["Nova"],
                        sender_name="Nova", content="Half a", status=status)
        db.session.add(reply)
        db.session.commit()
        reply_id = reply.id
    client, csrf = signed_in(llm_app, place.token)
    response = client.post(f"/rooms/{place.room_id}/messages/{reply_id}/retry",
                           headers={"X-CSRFToken": csrf, "Accept": "application/json"})
    assert response.status_code == expect
    assert message in response.get_data(as_text=True)


def test_retry_needs_a_member_and_a_csrf_token(llm_app):
    place = Place(llm_app)
    with llm_app.app_context():
        reply = Message(room_id=place.room_id, type="agent", sender_id=place.agents["Nova"],
                        sender_name="Nova", content="Half a", status="interrupted")
        db.session.add(reply)
        db.session.commit()
        reply_id = reply.id
        stranger = factories.create_session_token(factories.create_user().id)
    url = f"/rooms/{place.room_id}/messages/{reply_id}/retry"
    client, csrf = signed_in(llm_app, place.token)
    assert client.post(url).status_code == 400  # no token
    outsider, outsider_csrf = signed_in(llm_app, stranger)
    assert outsider.post(url, headers={"X-CSRFToken": outsider_csrf}).status_code == 404
    page = client.get(url).get_data(as_text=True)  # the page without JavaScript
    assert 'name="csrf_token"' in page and f'action="{url}"' in page
    # Its trigger is gone (never set here): a clear refusal, not a 5xx.
    response = client.post(url, data={"csrf_token": csrf})
    assert response.status_code == 409
    assert "The message this reply answered was deleted" in response.get_data(as_text=True)
