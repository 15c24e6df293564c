"""MariaDB restarted while the app runs (SPEC §12): the connections in the pool die with it, and
the first request afterwards is answered from a fresh connection instead of failing."""

from __future__ import annotations

import time

import pymysql
import pytest
import sqlalchemy as sa

import discux
from discux.extensions import db
from discux.models import Message
from tests.conftest import IS_MYSQL
from tests.support import chat_factories

pytestmark = pytest.mark.skipif(not IS_MYSQL, reason="needs a database server to lose")


def drop_every_connection_of(app) -> int:
    """What a server restart does to the app: every connection it holds is cut server-side."""
    with app.app_context():
        url = db.engine.url
    admin = pymysql.connect(host=url.host, port=url.port or 3306, user=url.username,
                            password=url.password or "", database=url.database)
    try:
        with admin.cursor() as cursor:
            cursor.execute("SELECT ID FROM information_schema.PROCESSLIST "
                           "WHERE DB = %s AND ID <> CONNECTION_ID()", (url.database,))
            ids = [row[0] for row in cursor.fetchall()]
            for connection_id in ids:
                cursor.execute(f"KILL CONNECTION {int(connection_id)}")
        return len(ids)
    finally:
        admin.close()


def test_the_first_request_after_a_restart_is_answered(app, client, make_user, login, csrf_token):
    ana = make_user(name="Ana")
    with app.app_context():
        room = chat_factories.create_room(ana.id, name="Launch")
        chat_factories.create_message(room, ana.id, "said before the restart", sender_name="Ana")
        room_id = room.id
    login(ana)
    assert client.get(f"/rooms/{room_id}").status_code == 200  # the pool now holds connections
    token = csrf_token()

    assert drop_every_connection_of(app) >= 1
    # A restart takes longer than this; connections used more recently are not pinged.
    time.sleep(discux.PING_AFTER_IDLE_SECONDS)

    page = client.get(f"/rooms/{room_id}")
    assert page.status_code == 200
    assert "said before the restart" in page.get_data(as_text=True)
    posted = client.post(f"/rooms/{room_id}/messages", data={"content": "said after it"},
                         headers={"X-CSRFToken": token, "HX-Request": "true"})
    assert posted.status_code == 200
    with app.app_context():
        assert db.session.scalars(sa.select(Message.content).order_by(Message.id)).all() == [
            "said before the restart", "said after it"]
