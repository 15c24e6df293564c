"""A loopback port this test process holds bound but never listens on.

Connecting to it is refused at once, and no service the machine happens to run can take it:
the tests' stand-in for "nothing answers there" (an unconfigured Ollama, a model server that is
down) instead of a well-known port such as Ollama's 11434, where a developer's own Ollama may
answer."""

from __future__ import annotations

import socket

_held = socket.socket()
_held.bind(("127.0.0.1", 0))
CLOSED_PORT: int = _held.getsockname()[1]
CLOSED_URL = f"http://127.0.0.1:{CLOSED_PORT}"
