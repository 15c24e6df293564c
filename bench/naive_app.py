"""The fan-out baseline: a naive flask-sock broadcast (one `ws.send` per socket, in a loop).

Stock flask-sock / simple-websocket (it accepts permessage-deflate with context takeover, so
each `send` compresses for its connection), served by gunicorn gthread like Discux.
`POST /broadcast` sends the request body as one text frame to every open socket.
"""

import contextlib
import threading

from flask import Flask, request
from flask_sock import Sock

app = Flask(__name__)
sock = Sock(app)
sockets: list = []
lock = threading.Lock()


@app.get("/login")
def ready():
    return "ok"


@sock.route("/ws")
def listen(ws):
    with lock:
        sockets.append(ws)
    try:
        while ws.connected:
            ws.receive(timeout=30)
    except Exception:  # noqa: BLE001 - a closed socket ends the loop
        pass
    finally:
        with lock:
            sockets.remove(ws)


@app.post("/broadcast")
def broadcast():
    text = request.get_data(as_text=True)
    with lock:
        targets = list(sockets)
    for ws in targets:
        with contextlib.suppress(Exception):
            ws.send(text)
    return str(len(targets))
