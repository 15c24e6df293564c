"""What an operator reads on stdout: a line per request and per model call, as text or JSON,
with no secrets in it."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from discux import create_app
from discux.discussion.engine import engine_for
from discux.extensions import db
from tests.conftest import base_config
from tests.support import chat_factories, factories, ws_client
from tests.support.fake_llm import FakeLLM, FakeReply
from tests.support.redis_server import free_port

PROJECT = Path(__file__).resolve().parent.parent


def records_of(caplog, logger: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == logger]


def fields_of(record: logging.LogRecord) -> dict:
    return record.fields


def test_a_request_line_names_method_route_status_time_user_and_address(
        app, client, make_user, login, caplog):
    ana = make_user(name="Ana")
    with app.app_context():
        room_id = chat_factories.create_room(ana.id, name="Launch").id
    login(ana)
    caplog.set_level(logging.INFO)
    assert client.get(f"/rooms/{room_id}?tab=people").status_code == 200

    [line] = records_of(caplog, "discux.requests")
    assert fields_of(line) == {
        "event": "request", "method": "GET", "route": "/rooms/<room_id>", "status": 200,
        "ms": fields_of(line)["ms"], "user": ana.id, "addr": "127.0.0.1"}
    assert fields_of(line)["ms"] >= 0
    text = line.getMessage()
    assert text.startswith("request method=GET route=/rooms/<room_id> status=200 ms=")
    assert f"user={ana.id} addr=127.0.0.1" in text
    assert room_id not in text and "tab=people" not in text


def test_a_sign_in_link_logs_no_token(app, client, csrf_token, caplog):
    caplog.set_level(logging.INFO)
    client.post("/login/email", data={"email": "cy@example.com", "csrf_token": csrf_token()})
    # Without SMTP the link itself goes to the log on purpose: that is how it is delivered.
    link = re.search(r"(http://\S+/login/email/verify\S+)", caplog.text).group(1)
    token = re.search(r"token=([^&]+)", link).group(1)
    caplog.clear()

    assert client.get(link).status_code == 303
    [line] = records_of(caplog, "discux.requests")
    assert fields_of(line)["route"] == "/login/email/verify"
    assert fields_of(line)["user"]  # signed in by this very request
    assert token not in caplog.text and "cy@example.com" not in caplog.text


def test_a_log_level_above_info_leaves_requests_out(make_app, caplog):
    caplog.set_level(logging.DEBUG)
    app = make_app(DISCUX_LOG_LEVEL="WARNING")
    assert app.test_client().get("/healthz").status_code == 200
    assert records_of(caplog, "discux.requests") == []


@pytest.fixture
def fake_llm():
    server = FakeLLM().start()
    yield server
    server.stop()


def test_a_model_call_line_has_tokens_and_outcome_but_no_text(make_app, fake_llm, caplog):
    app = make_app(DISCUX_LLM_BASE_URL=fake_llm.base_url, DISCUX_LLM_MODEL="fake-small",
                   DISCUX_LLM_TIMEOUT=2.0)
    with app.app_context():
        ana = factories.create_user(name="Ana")
        room = chat_factories.create_room(ana, name="Launch")
        nova = chat_factories.create_agent(ana, name="Nova")
        chat_factories.add_agent(room, nova, ana)
        room_id, nova_id = room.id, nova.id
        raw = factories.create_session_token(ana.id)
    client = app.test_client()
    client.set_cookie("discux_session", raw, domain="localhost")
    csrf = re.search(r'"X-CSRFToken": "([^"]+)"', client.get("/").get_data(as_text=True)).group(1)
    caplog.set_level(logging.INFO)
    fake_llm.queue(FakeReply(text="The plan is sound and ready to ship.", logprobs=True),
                   FakeReply(mode="http_400"))

    for question in ("@Nova is the secret plan ready?", "@Nova and the other one?"):
        response = client.post(f"/rooms/{room_id}/messages",
                               data={"content": question, "csrf_token": csrf})
        assert response.status_code == 303
        assert engine_for(app).wait_idle(room_id, timeout=15)

    answered, failed = [fields_of(r) for r in records_of(caplog, "discux.model_calls")]
    assert answered["room"] == room_id and answered["agent"] == nova_id
    assert answered["model"] == "fake-small" and answered["outcome"] == "complete"
    assert answered["prompt_tokens"] > 0 and answered["reply_tokens"] == 8  # one per word
    assert answered["ms"] >= 0
    assert failed["outcome"] == "failed" and failed["reply_tokens"] == 0
    lines = "\n".join(r.getMessage() for r in records_of(caplog, "discux.model_calls"))
    assert "secret plan" not in lines and "ready to ship" not in lines


def test_a_bad_log_setting_stops_start_up_naming_it(tmp_path):
    for name, value in (("DISCUX_LOG_LEVEL", "LOUD"), ("DISCUX_LOG_FORMAT", "xml")):
        started = subprocess.run(
            [sys.executable, "-c", "import app"], capture_output=True, text=True, cwd=PROJECT,
            env={"PATH": "/usr/bin:/bin", "DISCUX_INSTANCE_PATH": str(tmp_path),
                 "SECRET_KEY": "k" * 32, name: value}, timeout=60)
        assert started.returncode != 0
        assert name in started.stderr and "Traceback" not in started.stderr


def test_gunicorn_writes_each_request_once_as_json_without_the_query_string(tmp_path):
    from flask_migrate import upgrade

    database_url = f"sqlite:///{tmp_path / 'discux.db'}"
    setup_app = create_app(base_config(database_url))
    with setup_app.app_context():
        upgrade()
        db.engine.dispose()
    port = free_port()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DISCUX_", "DATABASE_URL"))}
    env.update({"SECRET_KEY": "test-secret-key-not-for-production", "DATABASE_URL": database_url,
                "DISCUX_INSTANCE_PATH": str(tmp_path / "instance"), "DISCUX_MAX_SOCKETS": "8",
                "DISCUX_LOG_FORMAT": "json"})
    stdout, stderr = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with stdout.open("w") as out, stderr.open("w") as err:
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py", "-w", "1",
             "-b", f"127.0.0.1:{port}"], cwd=PROJECT, env=env, stdout=out, stderr=err)
        try:
            base_url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                assert server.poll() is None, stderr.read_text()
                try:
                    if requests.get(base_url + "/healthz", timeout=5).status_code == 200:
                        break
                except (requests.ConnectionError, requests.Timeout):
                    pass  # still booting the worker
                assert time.monotonic() < deadline, "gunicorn did not start within 60 s"
                time.sleep(0.1)
            assert requests.get(base_url + "/login?invite=SECRET-INVITE-TOKEN",
                                timeout=5).status_code == 200
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=20)

    lines = [json.loads(line) for line in stdout.read_text().splitlines() if line.strip()]
    login_lines = [line for line in lines
                   if line.get("event") == "request" and line["route"] == "/login"]
    assert len(login_lines) == 1
    assert login_lines[0]["level"] == "INFO" and login_lines[0]["status"] == 200
    everything = stdout.read_text() + stderr.read_text()
    assert "SECRET-INVITE-TOKEN" not in everything
    assert everything.count('"route": "/login"') == 1


def test_a_socket_is_one_request_line_written_when_it_closes(app, live_server, make_user,
                                                              caplog):
    ana = make_user(name="Ana")
    with app.app_context():
        room_id = chat_factories.create_room(ana.id, name="Launch").id
        token = factories.create_session_token(ana.id, raw_token="socket-session-secret")
    caplog.set_level(logging.INFO)
    ws = ws_client.connect(live_server.url, room_id, token)
    ws_client.next_event(ws)  # the socket is open and talking
    assert [r for r in records_of(caplog, "discux.requests")
            if fields_of(r)["route"] == "/rooms/<room_id>/ws"] == []
    ws.close()

    deadline = time.monotonic() + 5
    while True:
        lines = [fields_of(r) for r in records_of(caplog, "discux.requests")
                 if fields_of(r)["route"] == "/rooms/<room_id>/ws"]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    [line] = lines
    assert line["user"] == ana.id and line["method"] == "GET"
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("discux"))
    assert token not in ours and room_id not in ours
