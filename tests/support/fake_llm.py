"""A tiny OpenAI-compatible HTTP server for tests.

Tests start a ``FakeLLM`` on a free loopback port and point the app's ``openai``
client at ``fake.base_url``, so the app talks to "the model" only through real
HTTP. Replies are scripted per request with ``queue()`` / ``respond_with()``,
including failure modes (HTTP errors, cut streams, garbage SSE, hangs) and a model that never
answers but notices when the client hangs up ("silent", see ``wait_for_hang_ups``).

Standard library only, so the fake cannot drift with the app's dependencies.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import select
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

__all__ = ["FakeLLM", "FakeReply"]

JSONDict = dict[str, Any]
Responder = Callable[[JSONDict], "FakeReply | None"]

_MODES = frozenset({"ok", "http_500", "http_429", "http_400", "cut", "garbage", "hang",
                    "silent"})

# (status, error type, error code) shaped like the real API's error bodies.
_HTTP_ERRORS: dict[str, tuple[int, str, str]] = {
    "http_500": (500, "server_error", "internal_error"),
    "http_429": (429, "rate_limit_exceeded", "rate_limit_exceeded"),
    "http_400": (400, "invalid_request_error", "invalid_request"),
}


@dataclass
class FakeReply:
    """One scripted answer to one ``POST /v1/chat/completions`` request."""

    text: str = "Hello from the fake model."
    # None -> split text into word-ish tokens keeping spaces ("Hello", " from", ...)
    tokens: list[str] | None = None
    # Emitted only when the request also asked for logprobs=True.
    logprobs: bool = False
    # Same value for every token (exp ~= 0.9).
    logprob: float = -0.1053605
    # Before the first token; in "ok" mode before the HTTP headers too.
    delay_first: float = 0.0
    delay_per_token: float = 0.0
    # "ok" | "http_500" | "http_429" | "http_400" | "cut" | "garbage" | "hang" | "silent"
    # ("silent": never answers, and counts the client hanging up; "ok" with stall_after=n:
    # sends n tokens, then nothing more until the client hangs up)
    mode: str = "ok"
    stall_after: int | None = None
    finish_reason: str = "stop"
    # Report token usage (when a stream asks for it with stream_options.include_usage, and
    # always in a non-streamed answer); False: a server that never counts tokens.
    usage: bool = True
    # The counts to report; None: a whitespace count of the prompt, and the tokens sent.
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in _MODES:
            raise ValueError(
                f"unknown FakeReply mode {self.mode!r}; expected one of {sorted(_MODES)}"
            )

    def token_list(self) -> list[str]:
        if self.tokens is not None:
            return list(self.tokens)
        # "\s*\S+" keeps leading spaces on each word; "\s+" catches trailing
        # whitespace, so "".join(tokens) == text always holds.
        return re.findall(r"\s*\S+|\s+", self.text)


class FakeLLM:
    """OpenAI-compatible fake: ``GET /v1/models`` and ``POST /v1/chat/completions``."""

    def __init__(self, models: list[str] | None = None) -> None:
        self.models: list[str] = (
            list(models) if models is not None else ["fake-small", "fake-large"]
        )
        self.requests: list[JSONDict] = []
        # (host, port) each chat request came from, in the same order as `requests`.
        self.peers: list[tuple[str, int]] = []
        # How many clients hung up on a "silent" (or stalled) answer.
        self.hang_ups = 0
        # The usage figures sent, one per answer that reported any, in order.
        self.reported_usage: list[JSONDict] = []
        self._cond = threading.Condition()  # guards requests, _queue, _responder
        self._queue: deque[FakeReply] = deque()
        self._responder: Responder | None = None
        # Set by stop(): releases "hang" handlers and interrupts pending delays.
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._ids = itertools.count(1)

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> FakeLLM:
        if self._server is not None:
            raise RuntimeError("FakeLLM already started")
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        # Short poll interval so stop() -> shutdown() returns quickly.
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="FakeLLM",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        # Keep-alive and hanging connections would otherwise keep handler
        # threads blocked forever; closing their sockets lets them exit.
        server.close_all_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeLLM not started; call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    # -- scripting -----------------------------------------------------------

    def queue(self, *replies: FakeReply) -> None:
        with self._cond:
            self._queue.extend(replies)

    def respond_with(self, fn: Responder | None) -> None:
        with self._cond:
            self._responder = fn

    def reset(self) -> None:
        with self._cond:
            self._queue.clear()
            self.requests.clear()
            self.peers.clear()
            self.reported_usage.clear()
            self.hang_ups = 0
            self._responder = None

    def wait_for_hang_ups(self, n: int, timeout: float = 5.0) -> int:
        """Block until `n` clients hung up on a silent or stalled answer."""
        with self._cond:
            if not self._cond.wait_for(lambda: self.hang_ups >= n, timeout=timeout):
                raise AssertionError(
                    f"expected >= {n} client hang-up(s) within {timeout}s, but {self.hang_ups} happened"
                )
            return self.hang_ups

    def _hung_up(self) -> None:
        with self._cond:
            self.hang_ups += 1
            self._cond.notify_all()

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[JSONDict]:
        with self._cond:
            if not self._cond.wait_for(
                lambda: len(self.requests) >= n, timeout=timeout
            ):
                raise AssertionError(
                    f"expected >= {n} chat request(s) within {timeout}s, but {len(self.requests)} arrived"
                )
            return list(self.requests)

    # -- used by the handler -------------------------------------------------

    def _record_and_pick(self, body: JSONDict, peer: tuple[str, int] | None = None) -> FakeReply:
        with self._cond:
            self.requests.append(body)
            self.peers.append(peer)
            self._cond.notify_all()
            if self._queue:
                return self._queue.popleft()
            responder = self._responder
        # Call user code outside the lock so it may use the FakeLLM API itself.
        reply = responder(body) if responder is not None else None
        return (
            reply
            if reply is not None
            else FakeReply(text=f"Echo: {_last_user_text(body)}")
        )

    def _next_id(self) -> str:
        return f"chatcmpl-fake{next(self._ids):06d}"


def _last_user_text(body: JSONDict) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):  # multimodal parts: keep the text ones
                return "".join(
                    p.get("text", "") for p in content if isinstance(p, dict)
                )
            return "" if content is None else str(content)
    return ""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Never join handler threads on close: a "hang" or idle keep-alive handler
    # must not block stop(). Connections are closed explicitly instead.
    block_on_close = False
    fake: FakeLLM

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]
    ) -> None:
        super().__init__(address, handler)
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()

    def track(self, conn: socket.socket, add: bool) -> None:
        with self._conns_lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def close_all_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-response is routine here (timeouts, cut
        # streams, stop()); only real bugs, e.g. a raising respond_with
        # callback, deserve a traceback.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive + chunked streaming, like real servers
    server: _Server

    @property
    def fake(self) -> FakeLLM:
        return self.server.fake

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        self.server.track(self.connection, add=False)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- routing -------------------------------------------------------------

    def do_GET(self) -> None:
        if self._path() == "/v1/models":
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "fake"}
                for m in self.fake.models
            ]
            self._send_json(200, {"object": "list", "data": data})
        else:
            self._not_found()

    def do_POST(self) -> None:
        raw = self._read_body()
        if self._path() != "/v1/chat/completions":
            self._not_found()
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._send_error(
                400,
                "Request body is not a JSON object.",
                "invalid_request_error",
                "invalid_json",
            )
            return
        reply = self.fake._record_and_pick(body, self.client_address[:2])  # before responding
        try:
            self._respond(body, reply)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # client gave up (e.g. its timeout fired)

    def do_PUT(self) -> None:
        self._read_body()
        self._not_found()

    do_DELETE = do_PATCH = do_PUT

    # -- chat completions ----------------------------------------------------

    def _respond(self, body: JSONDict, reply: FakeReply) -> None:
        mode = reply.mode
        if mode == "hang":
            self._stopped_during(None)  # wait until stop(); then drop the connection
            self._abort()
            return
        if mode == "silent":
            self._wait_for_hang_up()
            return
        if mode in _HTTP_ERRORS:
            if self._stopped_during(reply.delay_first):
                return self._abort()
            status, err_type, code = _HTTP_ERRORS[mode]
            self._send_error(status, f"Fake {mode} error.", err_type, code)
            return
        if body.get("stream"):
            self._stream(body, reply)
        else:
            self._complete(body, reply)

    def _stream(self, body: JSONDict, reply: FakeReply) -> None:
        mode = reply.mode
        tokens = reply.token_list()
        # In "ok" mode the first-token delay also delays the headers (a slow
        # model); "cut"/"garbage" answer 200 at once and stall afterwards.
        if mode == "ok" and self._stopped_during(reply.delay_first):
            return self._abort()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-request-id", "req_fake")
        self.end_headers()
        if mode != "ok" and self._stopped_during(reply.delay_first):
            return self._abort()

        if mode == "garbage":
            for line in ("this is not json", "{broken", "<html>oops</html>"):
                self._write_chunk(f"data: {line}\n\n".encode())
            self._write_chunk(b"data: [DONE]\n\n")
            self._end_chunks()
            return

        want_logprobs = reply.logprobs and body.get("logprobs") is True
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {
            "id": self.fake._next_id(),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model") or self.fake.models[0],
            "system_fingerprint": "fp_fake",
        }
        if include_usage:
            base["usage"] = None  # real API: null on every chunk but the extra last one

        def chunk(delta: JSONDict, logprobs: Any, finish: str | None) -> bytes:
            payload = {
                **base,
                "choices": [
                    {
                        "index": 0,
                        "delta": delta,
                        "logprobs": logprobs,
                        "finish_reason": finish,
                    }
                ],
            }
            return f"data: {json.dumps(payload)}\n\n".encode()

        if mode == "cut":
            tokens = tokens[: max(1, len(tokens) // 2)]
        # Empty text still sends the (role-carrying) first chunk.
        for i, tok in enumerate(tokens or [""]):
            if i == reply.stall_after:
                self._wait_for_hang_up()
                return
            if i > 0 and self._stopped_during(reply.delay_per_token):
                return self._abort()
            delta: JSONDict = (
                {"role": "assistant", "content": tok} if i == 0 else {"content": tok}
            )
            lp = (
                {"content": [_logprob_entry(tok, reply.logprob)]}
                if want_logprobs and tok
                else None
            )
            self._write_chunk(chunk(delta, lp, None))
        if mode == "cut":
            # FIN without the terminating zero-size chunk, [DONE] or finish_reason:
            # to the client this is a truncated chunked body.
            self._abort()
            return
        self._write_chunk(chunk({}, None, reply.finish_reason))
        if include_usage and reply.usage:
            usage_chunk = {**base, "choices": [], "usage": self._report_usage(body, reply,
                                                                               tokens)}
            self._write_chunk(f"data: {json.dumps(usage_chunk)}\n\n".encode())
        self._write_chunk(b"data: [DONE]\n\n")
        self._end_chunks()

    def _complete(self, body: JSONDict, reply: FakeReply) -> None:
        tokens = reply.token_list()
        # Simulate generation time for the whole answer before replying.
        delay = reply.delay_first + reply.delay_per_token * max(0, len(tokens) - 1)
        if self._stopped_during(delay):
            return self._abort()
        if reply.mode == "garbage":
            self._send_raw(200, "application/json", b"this is not json {")
            return
        want_logprobs = reply.logprobs and body.get("logprobs") is True
        payload = {
            "id": self.fake._next_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or self.fake.models[0],
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "".join(tokens),
                        "refusal": None,
                    },
                    "logprobs": {
                        "content": [_logprob_entry(t, reply.logprob) for t in tokens]
                    }
                    if want_logprobs
                    else None,
                    "finish_reason": reply.finish_reason,
                }
            ],
        }
        if reply.usage:
            payload["usage"] = self._report_usage(body, reply, tokens)
        data = json.dumps(payload).encode()
        if reply.mode == "cut":
            # Promise the full body, deliver half, hang up.
            self._send_headers(200, "application/json", len(data))
            self.wfile.write(data[: len(data) // 2])
            self._abort()
            return
        self._send_raw(200, "application/json", data)

    def _report_usage(self, body: JSONDict, reply: FakeReply, tokens: list[str]) -> JSONDict:
        usage = _usage(body, tokens)
        if reply.prompt_tokens is not None:
            usage["prompt_tokens"] = reply.prompt_tokens
        if reply.completion_tokens is not None:
            usage["completion_tokens"] = reply.completion_tokens
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        with self.fake._cond:
            self.fake.reported_usage.append(usage)
        return usage

    # -- low-level helpers ---------------------------------------------------

    def _path(self) -> str:
        return self.path.split("?", 1)[0]

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _stopped_during(self, seconds: float | None) -> bool:
        """Sleep (None = until stop()); True if the server is stopping."""
        if seconds is not None and seconds <= 0:
            return self.fake._stopping.is_set()
        return self.fake._stopping.wait(seconds)

    def _wait_for_hang_up(self) -> None:
        """Say nothing until the client closes the connection (counted) or stop()."""
        while not self.fake._stopping.is_set():
            readable, _, _ = select.select([self.connection], [], [], 0.05)
            if not readable:
                continue
            try:
                if self.connection.recv(1, socket.MSG_PEEK):
                    time.sleep(0.05)  # the client sent more (it should not): keep waiting
                    continue
            except OSError:
                pass
            self.fake._hung_up()
            break
        self._abort()

    def _abort(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send_headers(self, status: int, content_type: str, length: int) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.send_header("x-request-id", "req_fake")
        self.end_headers()

    def _send_raw(self, status: int, content_type: str, data: bytes) -> None:
        self._send_headers(status, content_type, len(data))
        self.wfile.write(data)

    def _send_json(self, status: int, payload: JSONDict) -> None:
        self._send_raw(status, "application/json", json.dumps(payload).encode())

    def _send_error(self, status: int, message: str, err_type: str, code: str) -> None:
        self._send_json(
            status,
            {
                "error": {
                    "message": message,
                    "type": err_type,
                    "param": None,
                    "code": code,
                }
            },
        )

    def _not_found(self) -> None:
        self._send_error(
            404,
            f"No route for {self.command} {self._path()}.",
            "invalid_request_error",
            "not_found",
        )

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def _logprob_entry(token: str, logprob: float) -> JSONDict:
    raw = token.encode()
    return {"token": token, "logprob": logprob, "bytes": list(raw), "top_logprobs": []}


def _usage(body: JSONDict, tokens: list[str]) -> JSONDict:
    # Rough whitespace count; tests only need plausible, consistent numbers.
    prompt = sum(
        len(str(m.get("content") or "").split())
        for m in body.get("messages") or []
        if isinstance(m, dict)
    )
    return {
        "prompt_tokens": prompt,
        "completion_tokens": len(tokens),
        "total_tokens": prompt + len(tokens),
    }


def main(argv: list[str] | None = None) -> int:
    """Serve one fixed reply from a process of its own (benchmarks: a fake model that shares
    no interpreter lock with the client timing it). Prints the base URL, serves until
    standard input closes (or SIGTERM ends it)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("--text", default="Hello from the fake model.")
    args = parser.parse_args(argv)
    fake = FakeLLM().start()
    fake.respond_with(lambda body: FakeReply(text=args.text))
    print(fake.base_url, flush=True)
    with contextlib.suppress(ValueError, OSError):
        sys.stdin.read()  # until EOF (the parent closed the pipe or exited)
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
