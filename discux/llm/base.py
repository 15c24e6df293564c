"""The provider interface every LLM backend implements, and the one error it raises."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

# A chat message as the OpenAI API spells it: {"role": "system"|"user"|"assistant", "content": str}.
ChatMessage = dict[str, str]


class LLMError(Exception):
    """The model could not answer; the message is plain words a user can read."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Delta:
    """One streamed piece of a reply, with the log-probabilities of its tokens when known."""

    text: str
    logprobs: list[float] = field(default_factory=list)


@dataclass
class Usage:
    """The token counts one model call used, as the provider reported them; the provider fills
    it in when its answer says (both stay None when it gives no figures)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    @property
    def reported(self) -> bool:
        return self.prompt_tokens is not None and self.completion_tokens is not None


class Abort:
    """Ends a model request from another thread (Stop, a newer message): the provider says
    how to cut its request off with `on_abort`; `abort()` does it at once."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._hooks: list[Callable[[], None]] = []

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True as soon as the request is aborted."""
        return self._event.wait(seconds)

    def on_abort(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Run `hook` when aborted (now if already); returns what unregisters it. A hook never
        runs after its unregistering returned."""
        with self._lock:
            if not self._event.is_set():
                self._hooks.append(hook)
                return lambda: self._forget(hook)
        hook()
        return lambda: None

    def _forget(self, hook: Callable[[], None]) -> None:
        with self._lock:
            if hook in self._hooks:
                self._hooks.remove(hook)

    def abort(self) -> None:
        with self._lock:  # held while the hooks run: see on_abort
            if self._event.is_set():
                return
            self._event.set()
            for hook in self._hooks:
                hook()
            self._hooks.clear()


@runtime_checkable
class Provider(Protocol):
    """What the app needs from a model backend: stream a reply, complete one, list models."""

    name: str  # registry key: "openai", "ollama", "demo"
    label: str  # shown to users: "Demo responder (offline)"
    is_demo: bool
    default_model: str | None

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
        """Yield the reply piece by piece; raise LLMError when it cannot be had. `on_sent` is
        called (on the thread iterating) once the request is on its way to the model; once
        `abort` is set the request is cut off (not retried) and LLMError is raised. `usage` is
        filled in with the provider's token counts when its stream reports them."""
        ...

    def complete(
        self, messages: list[ChatMessage], *, model: str | None, temperature: float,
        max_tokens: int, usage: Usage | None = None,
    ) -> str:
        """The whole reply at once (`usage` filled in as for stream_chat); raise LLMError when
        it cannot be had."""
        ...

    def list_models(self) -> list[str]:
        """Model names the backend offers; raise LLMError when it cannot be asked."""
        ...


def estimate_tokens(text: str) -> int:
    """~4 characters a token: close enough for budgeting, with no tokenizer to install."""
    return max(1, (len(text) + 3) // 4)


def mean_probability(logprobs: list[float]) -> float | None:
    """Mean token probability (0–1) from log-probabilities, or None when there are none."""
    if not logprobs:
        return None
    return sum(math.exp(value) for value in logprobs) / len(logprobs)
