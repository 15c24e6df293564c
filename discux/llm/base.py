"""The provider interface every LLM backend implements, and the one error it raises."""

from __future__ import annotations

import math
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
    ) -> Iterator[Delta]:
        """Yield the reply piece by piece; raise LLMError when it cannot be had. `on_sent` is
        called (on the thread iterating) once the request is on its way to the model."""
        ...

    def complete(
        self, messages: list[ChatMessage], *, model: str | None, temperature: float,
        max_tokens: int,
    ) -> str:
        """The whole reply at once; raise LLMError when it cannot be had."""
        ...

    def list_models(self) -> list[str]:
        """Model names the backend offers; raise LLMError when it cannot be asked."""
        ...


def mean_probability(logprobs: list[float]) -> float | None:
    """Mean token probability (0–1) from log-probabilities, or None when there are none."""
    if not logprobs:
        return None
    return sum(math.exp(value) for value in logprobs) / len(logprobs)
