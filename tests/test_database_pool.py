"""A worker keeps a database connection for every thread that may use one at once, and a
MariaDB on the same host is reached without building a TLS context nobody uses."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from discux import create_app
from discux.extensions import db
from tests.conftest import IS_MYSQL, base_config

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
        ("mysql+pymysql://discux@127.0.0.1:3306/discux", True),
        ("mysql+pymysql://discux@localhost/discux", True),
        ("mysql+pymysql://discux@[::1]:3306/discux", True),
        ("mysql+pymysql://discux@/discux?unix_socket=/run/mysqld/mysqld.sock", True),
        # Another machine: PyMySQL's own choice (TLS when the server offers it) stays.
        ("mysql+pymysql://discux@db.internal:3306/discux", False),
        ("mysql+pymysql://discux@10.0.0.7:3306/discux", False),
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
