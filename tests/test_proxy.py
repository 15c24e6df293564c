"""Behind a reverse proxy: DISCUX_TRUSTED_PROXIES says how many hops' X-Forwarded-* headers are
believed, by the app (rate limits, links, request.scheme) and by gunicorn alike."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.support.redis_server import free_port

PROJECT = Path(__file__).resolve().parent.parent
CSRF_IN_PAGE = re.compile(r'"X-CSRFToken": "([^"]+)"')


def visitor(app, forwarded_for: str):
    """A test client that, like every visitor behind nginx, reaches the app from 127.0.0.1 and
    carries the address nginx saw in X-Forwarded-For."""
    client = app.test_client()
    client.environ_base["HTTP_X_FORWARDED_FOR"] = forwarded_for
    token = CSRF_IN_PAGE.search(client.get("/login").get_data(as_text=True)).group(1)
    return client, token


def ask_for_link(client, token) -> int:
    return client.post("/login/email", data={"email": "ana@example.com",
                                             "csrf_token": token}).status_code


@pytest.mark.usefixtures("app")  # empties the tables afterwards
def test_behind_one_trusted_proxy_each_client_has_its_own_sign_in_limit(make_app):
    app = make_app(RATELIMIT_ENABLED=True, DISCUX_TRUSTED_PROXIES=1)
    first, first_token = visitor(app, "203.0.113.10")
    second, second_token = visitor(app, "198.51.100.20")
    assert [ask_for_link(first, first_token) for _ in range(6)] == [200] * 5 + [429]
    # The other visitor came through the same proxy but is not locked out with the first.
    assert ask_for_link(second, second_token) == 200


@pytest.mark.usefixtures("app")  # empties the tables afterwards
def test_without_trusted_proxies_a_forged_forwarded_for_does_not_escape_the_limit(make_app):
    app = make_app(RATELIMIT_ENABLED=True)  # DISCUX_TRUSTED_PROXIES defaults to 0
    client = app.test_client()
    token = CSRF_IN_PAGE.search(client.get("/login").get_data(as_text=True)).group(1)
    statuses = []
    for n in range(6):
        client.environ_base["HTTP_X_FORWARDED_FOR"] = f"192.0.2.{n}"
        statuses.append(ask_for_link(client, token))
    assert statuses == [200] * 5 + [429]


@pytest.fixture
def gunicorn_app(tmp_path):
    """`gunicorn_app(hops)` → (base URL, access log) of `gunicorn -c gunicorn.conf.py app:app` in
    demo mode with GitHub sign-in configured (its redirect names the callback URL the app built
    from request.scheme, no network needed)."""
    servers = []

    def _start(hops: str | None):
        port = free_port()
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("DISCUX_", "DATABASE_URL", "FORWARDED_ALLOW_IPS"))}
        env.update({
            "SECRET_KEY": "test-secret-key-not-for-production",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'discux.db'}",
            "DISCUX_INSTANCE_PATH": str(tmp_path / "instance"),
            "DISCUX_DEV_LOGIN": "1",
            "DISCUX_GITHUB_CLIENT_ID": "client-id",
            "DISCUX_GITHUB_CLIENT_SECRET": "client-secret",
            "DISCUX_MAX_SOCKETS": "4",
            "DISCUX_HTTP_THREADS": "4",
        })
        if hops is not None:
            env["DISCUX_TRUSTED_PROXIES"] = hops
        access_log = tmp_path / f"access-{port}.log"
        output = (tmp_path / f"gunicorn-{port}.log").open("w")
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py", "-w", "1",
             "-b", f"127.0.0.1:{port}", "--access-logfile", str(access_log), "app:app"],
            cwd=PROJECT, env=env, stdout=output, stderr=subprocess.STDOUT,
        )
        servers.append((server, output))
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, Path(output.name).read_text()
            try:
                if requests.get(base_url + "/login", timeout=5).status_code == 200:
                    return base_url, access_log
            except (requests.ConnectionError, requests.Timeout):
                pass
            assert time.monotonic() < deadline, "gunicorn did not start within 30 s"
            time.sleep(0.1)

    yield _start
    for server, output in servers:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        output.close()


FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.77"}


def callback_url_and_logged_client(base_url: str, access_log: Path) -> tuple[str, str]:
    response = requests.get(base_url + "/login/github", headers=FORWARDED,
                            allow_redirects=False, timeout=10)
    assert response.status_code == 302
    callback = parse_qs(urlsplit(response.headers["Location"]).query)["redirect_uri"][0]
    deadline = time.monotonic() + 10
    while "/login/github" not in access_log.read_text():  # written after the response
        assert time.monotonic() < deadline, "gunicorn logged no access line"
        time.sleep(0.05)
    line = next(line for line in access_log.read_text().splitlines() if "/login/github" in line)
    return callback, line.split()[0]


def test_gunicorn_without_trusted_proxies_ignores_forwarded_headers(gunicorn_app):
    base_url, access_log = gunicorn_app(None)
    callback, client = callback_url_and_logged_client(base_url, access_log)
    # A client talking to gunicorn directly cannot make the app believe it came over https...
    assert callback == f"{base_url}/auth/github/callback"
    # ...nor from another address.
    assert client == "127.0.0.1"


def test_gunicorn_behind_one_trusted_proxy_sees_the_client(gunicorn_app):
    base_url, access_log = gunicorn_app("1")
    callback, client = callback_url_and_logged_client(base_url, access_log)
    assert callback == base_url.replace("http://", "https://") + "/auth/github/callback"
    assert client == "203.0.113.77"
