"""Any OpenAI-compatible server (OpenAI, Ollama, vLLM, llama.cpp, LM Studio, OpenRouter…)
through the official `openai` SDK, with every failure turned into an LLMError in plain words."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import httpx2
import openai
from openai import DefaultHttpxClient, OpenAI, Timeout

from discux.llm.base import Abort, ChatMessage, Delta, LLMError, Usage

log = logging.getLogger(__name__)

# The SDK retries 408/409/429/5xx and connection errors with backoff before the first token.
MAX_RETRIES = 2
# Servers such as Ollama ignore the key but the SDK insists on one.
PLACEHOLDER_API_KEY = "not-needed"
MODELS_CACHE_SECONDS = 60.0
MODELS_TIMEOUT = 5.0

# One client per (base_url, api_key): building one costs ~30 ms and it pools connections.
_clients: dict[tuple[str, str], OpenAI] = {}
_models: dict[tuple[str, str], tuple[float, list[str]]] = {}
# (base_url, model) pairs whose server refused the `logprobs` parameter: don't ask again.
_no_logprobs: set[tuple[str, str]] = set()
# Servers that refused `stream_options` (asking for usage in a stream): don't ask again.
_no_stream_usage: set[str] = set()
# Clients for streamed replies not lent out now (see streaming_client).
_idle_streaming_clients: dict[tuple[str, str], list[tuple[OpenAI, ClientConnection]]] = {}
_lock = threading.Lock()
# The streamed request this thread is sending: what to call once it is written, its abort
# switch, and its client's connection (see `streaming_client`).
_sending = threading.local()


class RequestAborted(openai.OpenAIError):
    """Raised from the request hook when a request (or the SDK's retry of it) is aborted; the
    SDK passes its own errors through without retrying."""


class ClientConnection:
    """The network stream of one streaming client's connection: another thread shuts its
    socket down to abort the request in flight (a blocked read returns at once)."""

    def __init__(self) -> None:
        self.stream = None

    def cut(self) -> None:
        stream = self.stream
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _on_request(request: httpx2.Request) -> None:
    """Refuse to send an aborted request; watch the request's connection for the moment it
    starts waiting for the answer, and for the network stream it opens."""
    abort = getattr(_sending, "abort", None)
    if abort is not None and abort.is_set():
        raise RequestAborted("the request was stopped")
    on_sent = getattr(_sending, "on_sent", None)
    connection = getattr(_sending, "connection", None)
    if on_sent is None and connection is None:
        return

    def on_connection_event(event: str, info: dict) -> None:
        if event == "connection.connect_tcp.complete" and connection is not None:
            connection.stream = info.get("return_value")
        elif event.endswith("receive_response_headers.started") and on_sent is not None:
            on_sent()

    request.extensions["trace"] = on_connection_event


def _new_client(base_url: str, api_key: str) -> OpenAI:
    return OpenAI(
        base_url=base_url,
        api_key=api_key,
        max_retries=MAX_RETRIES,
        timeout=Timeout(30.0, connect=5.0),
        http_client=DefaultHttpxClient(event_hooks={"request": [_on_request]}),
    )


def client_for(base_url: str, api_key: str | None) -> OpenAI:
    """The shared SDK client for this server and key, built on first use."""
    key = (base_url, api_key or PLACEHOLDER_API_KEY)
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = _new_client(*key)
        return client


@contextlib.contextmanager
def streaming_client(base_url: str,
                     api_key: str | None) -> Iterator[tuple[OpenAI, ClientConnection]]:
    """An SDK client of its own for one streamed reply, and the connection it runs on.

    Clients are lent out one request at a time (and kept, with their keep-alive connection,
    for the next), so a client's pool holds the one connection its request runs on: aborting
    shuts that socket down, found through httpx's `trace` extension (which hands over the
    network stream it connects) and the stream's `socket` info."""
    key = (base_url, api_key or PLACEHOLDER_API_KEY)
    with _lock:
        idle = _idle_streaming_clients.setdefault(key, [])
        lent = idle.pop() if idle else None
    if lent is None:
        lent = (_new_client(*key), ClientConnection())
    try:
        yield lent
    finally:
        with _lock:
            _idle_streaming_clients[key].append(lent)


def display_url(url: str) -> str:
    """The URL without any user:password part, safe to show to users and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class OpenAICompatibleProvider:
    """Talks to one OpenAI-compatible server; `timeout` bounds every wait for the next byte
    (so the first token too), `total_timeout` bounds the whole reply."""

    is_demo = False

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        default_model: str | None = None,
        timeout: float = 30.0,
        total_timeout: float | None = None,
        name: str = "openai",
        label: str | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.default_model = default_model
        self.timeout = timeout
        self.total_timeout = total_timeout or max(120.0, timeout * 4)
        self.name = name
        self.label = label or f"OpenAI-compatible server at {display_url(self.base_url)}"
        self._client = client_for(self.base_url, api_key)

    def __repr__(self) -> str:
        return f"<OpenAICompatibleProvider {self.name} {display_url(self.base_url)}>"

    # -- the Provider interface ------------------------------------------------

    def stream_chat(
        self,
        messages: list[ChatMessage],
        *,
        model: str | None,
        temperature: float,
        max_tokens: int,
        want_logprobs: bool = True,
        on_sent: Callable[[], None] | None = None,
        abort: Abort | None = None,
        usage: Usage | None = None,
    ) -> Iterator[Delta]:
        """Yield the reply as it arrives; LLMError names what went wrong. `on_sent` is called
        once the request is written and the server is working on it; `abort` cuts the request
        off at once, waiting for the first token or between two (no retry follows). The
        stream is asked for its usage, which fills `usage` when the server sends it."""
        abort = abort or Abort()
        if abort.is_set():
            raise LLMError("the request was stopped")
        model_name = self._resolve_model(model)
        deadline = time.monotonic() + self.total_timeout
        with streaming_client(self.base_url, self.api_key) as (client, connection):
            forget_abort = abort.on_abort(connection.cut)
            try:
                _sending.on_sent, _sending.abort, _sending.connection = (
                    on_sent, abort, connection)
                try:
                    stream = self._open_stream(client, messages, model_name, temperature,
                                               max_tokens, want_logprobs, abort)
                finally:
                    _sending.on_sent = _sending.abort = _sending.connection = None
                try:
                    for chunk in stream:
                        if time.monotonic() > deadline:
                            raise LLMError(
                                f"the reply took longer than {self.total_timeout:g} s in all")
                        if usage is not None:
                            _note_usage(chunk, usage)
                        delta = _delta_of(chunk)
                        if delta is not None:
                            yield delta
                except LLMError:
                    raise
                except Exception as error:
                    if abort.is_set():
                        raise LLMError("the request was stopped") from error
                    raise self._explain(error, stream_open=True) from error
                finally:
                    stream.close()
            finally:
                forget_abort()

    def complete(
        self, messages: list[ChatMessage], *, model: str | None, temperature: float,
        max_tokens: int, usage: Usage | None = None,
    ) -> str:
        """The whole reply in one piece; `usage` gets the server's token counts if it sent
        them."""
        model_name = self._resolve_model(model)
        try:
            completion = self._client.chat.completions.create(
                model=model_name,
                **as_sent(messages),
                temperature=temperature,
                max_tokens=max_tokens,
                timeout=self._request_timeout(),
            )
            if usage is not None:
                _note_usage(completion, usage)
            choice = completion.choices[0] if completion.choices else None
            return (choice.message.content or "") if choice and choice.message else ""
        except Exception as error:
            raise self._explain(error, stream_open=False) from error

    def list_models(self) -> list[str]:
        """Model ids from the server's /models, cached for a minute."""
        key = (self.base_url, self.api_key or PLACEHOLDER_API_KEY)
        with _lock:
            cached = _models.get(key)
        if cached and time.monotonic() - cached[0] < MODELS_CACHE_SECONDS:
            return list(cached[1])
        try:
            page = self._client.with_options(max_retries=0).models.list(
                timeout=Timeout(min(MODELS_TIMEOUT, self.timeout))
            )
            names = sorted(model.id for model in page.data if getattr(model, "id", None))
        except Exception as error:
            raise self._explain(error, stream_open=False) from error
        with _lock:
            _models[key] = (time.monotonic(), names)
        return list(names)

    # -- helpers -------------------------------------------------------------------

    def _request_timeout(self) -> Timeout:
        return Timeout(self.timeout, connect=min(5.0, self.timeout))

    def _resolve_model(self, model: str | None) -> str:
        if model:
            return model
        if self.default_model:
            return self.default_model
        names = self.list_models()
        if not names:
            raise LLMError("no model is configured: set DISCUX_LLM_MODEL")
        return names[0]

    def _open_stream(self, client, messages, model_name, temperature, max_tokens,
                     want_logprobs, abort: Abort):
        ask_logprobs = want_logprobs and (self.base_url, model_name) not in _no_logprobs
        request = {
            "model": model_name,
            **as_sent(messages),
            "temperature": temperature,
            "max_tokens": max_tokens,
            "stream": True,
            "timeout": self._request_timeout(),
        }
        if self.base_url not in _no_stream_usage:
            request["stream_options"] = {"include_usage": True}
        try:
            while True:  # at most twice: once more without stream_options if it was refused
                try:
                    if ask_logprobs:
                        try:
                            return client.chat.completions.create(**request, logprobs=True)
                        except openai.BadRequestError as error:
                            # Some servers refuse the parameter instead of ignoring it: ask
                            # once without.
                            if "logprob" not in str(error).lower():
                                raise
                            with _lock:
                                _no_logprobs.add((self.base_url, model_name))
                            ask_logprobs = False
                    return client.chat.completions.create(**request)
                except openai.BadRequestError as error:
                    if not self._refused_stream_usage(error, request):
                        raise
        except Exception as error:
            if abort.is_set():
                raise LLMError("the request was stopped") from error
            raise self._explain(error, stream_open=False) from error

    def _refused_stream_usage(self, error: openai.BadRequestError, request: dict) -> bool:
        """True (and never asked again) when the server refused `stream_options`: the request
        is sent again without it, and the reply's tokens are estimated."""
        if "stream_options" not in request or "stream_options" not in str(error).lower():
            return False
        with _lock:
            _no_stream_usage.add(self.base_url)
        del request["stream_options"]
        return True

    def _explain(self, error: Exception, *, stream_open: bool) -> Exception:
        """Turn an SDK, HTTP or JSON failure into an LLMError; unknown errors pass through."""
        if isinstance(error, openai.APITimeoutError):
            message = f"timed out after {self.timeout:g} s"
        elif isinstance(error, openai.APIConnectionError):
            message = (
                "the reply stream was cut off" if stream_open
                else f"could not connect to {display_url(self.base_url)}"
            )
        elif isinstance(error, openai.APIStatusError):
            message = f"the model server answered {error.status_code} ({_detail(error)})"
        elif isinstance(error, openai.APIResponseValidationError | ValueError | KeyError
                        | TypeError | AttributeError):
            message = "the model server sent a malformed reply"
        else:
            return error
        log.warning("LLM request to %s failed: %s (%r)", display_url(self.base_url), message,
                    error)
        return LLMError(message)


def as_sent(messages: list[ChatMessage]) -> dict:
    """The `messages` arguments of a chat request, passed through the SDK untouched.

    The SDK walks every message against its typed-dict schema before sending (about 0.2 ms a
    message, so several ms for a prompt with history, ahead of every reply). Ours are already
    plain {"role", "content"} strings; `extra_body` values take precedence over the named
    arguments, so the request body is the same."""
    return {"messages": [], "extra_body": {"messages": messages}}


def _note_usage(chunk, usage: Usage) -> None:
    """Copy the token counts of a chunk (the usage-only last one) or a completion into `usage`."""
    reported = getattr(chunk, "usage", None)
    if reported is None:
        return
    prompt = getattr(reported, "prompt_tokens", None)
    completion = getattr(reported, "completion_tokens", None)
    if isinstance(prompt, int) and isinstance(completion, int):
        usage.prompt_tokens, usage.completion_tokens = prompt, completion


def _delta_of(chunk) -> Delta | None:
    """The text and token log-probabilities of one stream chunk; None when it carries neither."""
    choices = getattr(chunk, "choices", None) or []
    if not choices:
        return None  # e.g. the usage-only last chunk
    choice = choices[0]
    text = getattr(getattr(choice, "delta", None), "content", None) or ""
    logprobs: list[float] = []
    content = getattr(getattr(choice, "logprobs", None), "content", None) or []
    for entry in content:
        value = getattr(entry, "logprob", None)
        if isinstance(value, int | float):
            logprobs.append(float(value))
    if not text and not logprobs:
        return None
    return Delta(text=text, logprobs=logprobs)


def _detail(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict):
        detail = body.get("message") or body.get("error") or body.get("detail")
        if isinstance(detail, dict):
            detail = detail.get("message")
        if detail:
            return str(detail)[:200]
    if isinstance(body, str) and body.strip():
        return body.strip()[:200]
    return error.response.reason_phrase or "no details"
