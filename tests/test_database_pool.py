"""A worker keeps a database connection for every thread that may use one at once, a MariaDB
on the same host is reached without building a TLS context nobody uses, and many people
posting at once are all stored."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import sqlalchemy as sa
from sqlalchemy import event

from discux import create_app
from discux.api import tokens as api_tokens
from discux.extensions import db
from discux.models import Message
from tests.conftest import IS_MYSQL, base_config
from tests.support import chat_factories, factories

HOLD_TIMEOUT = 20  # seconds a thread waits for the others before the test gives up


def hold_connections_together(app, count: int) -> list[str]:
    """`count` threads each check out a connection and hold it until all of them have one;
    what each ended with ("held" or the error's class name)."""
    everyone = threading.Barrier(count)

    def hold() -> str:
        with app.app_context():
            try:
                db.session.execute(sa.text("SELECT 1"))
                everyone.wait(timeout=HOLD_TIMEOUT)
                return "held"
            except (sa.exc.TimeoutError, threading.BrokenBarrierError) as error:
                everyone.abort()  # the others stop waiting for a thread that will never come
                return type(error).__name__
            finally:
                db.session.remove()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: hold(), range(count)))


def test_every_request_and_agent_thread_holds_a_connection_at_once(make_app):
    # 20 request threads + 4 agent threads: 24 kept, more than SQLAlchemy's default 5 + 10.
    app = make_app(DISCUX_HTTP_THREADS=20, DISCUX_AGENT_WORKERS=4,
                   SQLALCHEMY_ENGINE_OPTIONS={"pool_timeout": 5})
    assert hold_connections_together(app, 24) == ["held"] * 24


def test_pool_size_setting_wins_over_the_thread_count(make_app):
    # 2 kept + 10 beyond it for a moment: a 13th thread waits out pool_timeout.
    app = make_app(DISCUX_HTTP_THREADS=30, DISCUX_DATABASE_POOL_SIZE=2,
                   SQLALCHEMY_ENGINE_OPTIONS={"pool_timeout": 1})
    outcomes = hold_connections_together(app, 13)
    assert "TimeoutError" in outcomes
    assert outcomes.count("held") + outcomes.count("BrokenBarrierError") == 12


@pytest.mark.parametrize(
    ("url", "tls_off"),
    [
        ("mysql+pymysql://discux@127.0.0.1:13306/discux", True),
        ("mysql+pymysql://discux@localhost/discux", True),
        ("mysql+pymysql://discux@[::1]:13306/discux", True),
        ("mysql+pymysql://discux@/discux?unix_socket=/run/mysqld/mysqld.sock", True),
        # Another machine: PyMySQL's own choice (TLS when the server offers it) stays.
        ("mysql+pymysql://discux@db.internal:13306/discux", False),
        ("mysql+pymysql://discux@10.0.0.7:13306/discux", False),
        # Asked for by the URL: never switched off, even on this host.
        ("mysql+pymysql://discux@127.0.0.1/discux?ssl_ca=/etc/ssl/certs/ca.pem", False),
    ],
)
def test_tls_is_left_out_only_for_a_server_on_this_host(url, tls_off):
    app = create_app(base_config(url))
    connect_args = app.config["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"]
    assert connect_args.get("ssl_disabled", False) is tls_off
    assert connect_args["init_command"] == "SET time_zone = '+00:00'"


@pytest.mark.skipif(not IS_MYSQL, reason="needs MariaDB (DISCUX_TEST_DATABASE_URL)")
def test_connections_to_a_local_mariadb_open_without_tls(app):
    with app.app_context():
        sent: list[dict] = []
        event.listen(db.engine, "do_connect",
                     lambda _dialect, _record, _args, params: sent.append(dict(params)))
        db.engine.dispose()  # the next query opens a new connection
        assert db.session.execute(sa.text("SELECT 1")).scalar_one() == 1
        cipher = db.session.execute(sa.text("SHOW SESSION STATUS LIKE 'Ssl_cipher'")).one()[1]
        db.session.remove()
    assert sent and all(params.get("ssl_disabled") is True for params in sent)
    assert cipher == ""


def test_many_people_posting_at_once_in_one_room_are_all_stored_once(app, live_server):
    # Twelve request threads writing together: on SQLite they take turns at the write lock
    # (a turn that is never given back would hold every later post for 15 s each).
    people, messages = 12, 5
    with app.app_context():
        owner = factories.create_user(plan="pro")
        room = chat_factories.create_room(owner, name="Workshop")
        posters = [owner] + [factories.create_user(plan="pro") for _ in range(people - 1)]
        for person in posters[1:]:
            chat_factories.add_member(room, person.id)
        room_id = room.id
        tokens = [api_tokens.create_token(person, "workshop script")[1] for person in posters]
    everyone = threading.Barrier(people)

    def post_all(index: int) -> list[int]:
        with requests.Session() as http:
            http.headers["Authorization"] = f"Bearer {tokens[index]}"
            everyone.wait(timeout=HOLD_TIMEOUT)
            return [http.post(f"{live_server.url}/api/v1/rooms/{room_id}/messages",
                              json={"content": f"poster {index} message {n}"},
                              timeout=60).status_code for n in range(messages)]

    with ThreadPoolExecutor(people) as pool:
        statuses = [status for answers in pool.map(post_all, range(people)) for status in answers]
    assert statuses == [201] * people * messages
    with app.app_context():
        stored = db.session.scalars(
            sa.select(Message.content).where(Message.room_id == room_id)).all()
    assert sorted(stored) == sorted(f"poster {i} message {n}"
                                    for i in range(people) for n in range(messages))
