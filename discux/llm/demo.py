"""An offline stand-in for a model, so Discux works anywhere: short, deterministic replies
shaped by the agent's persona, streamed word by word and clearly labelled as a demo."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator

from discux.llm.base import Abort, ChatMessage, Delta, LLMError, Usage

TAKES = (
    "I'd start by naming the one decision we actually need to make, then list what would "
    "change our minds.",
    "the quickest useful step is a small experiment we can run this week and measure.",
    "two risks deserve writing down before we go further: what it costs and who owns the "
    "follow-up.",
    "let's split it into what we know, what we assume, and what we still have to find out.",
    "I would ask who this helps first, and what they would notice if we got it right.",
    "a one-page plan with an owner and a date for each step would move this forward.",
)
NAME_IN_PROMPT = re.compile(r"\bYou are ([^.,;:\n]{1,60})")
WORD = re.compile(r"\s*\S+")


def _last(messages: list[ChatMessage], role: str) -> str:
    for message in reversed(messages):
        if message.get("role") == role and message.get("content"):
            return str(message["content"])
    return ""


def _first_sentence(text: str, limit: int) -> str:
    sentence = re.split(r"(?<=[.!?])\s|\n", text.strip(), maxsplit=1)[0].strip()
    return sentence if len(sentence) <= limit else sentence[: limit - 1].rstrip() + "…"


def demo_reply(messages: list[ChatMessage], max_tokens: int = 500) -> str:
    """The demo's answer to a conversation: the same input always gives the same words."""
    system = "\n".join(m.get("content", "") for m in messages if m.get("role") == "system")
    question = _last(messages, "user")
    match = NAME_IN_PROMPT.search(system)
    speaker = match.group(1).strip() if match else "your agent"
    # The persona is what follows the "You are <name>…" sentence.
    rest = system
    if match:
        after = system[match.end():]
        end = re.search(r"[.!?\n]", after)
        rest = after[end.end():] if end else ""
    persona = _first_sentence(rest, 80) if rest.strip() else ""
    persona = re.sub(r"^(You are|You're)\s+", "", persona)
    topic = " ".join(question.split()[:12]) or "this"
    seed = int.from_bytes(hashlib.sha256(f"{system}\n{question}".encode()).digest()[:4], "big")
    take = TAKES[seed % len(TAKES)]
    if persona.split(" ", 1)[0] in {"A", "An", "The"}:
        persona = persona[0].lower() + persona[1:]
    who = f"{speaker} ({persona.rstrip('.')})" if persona else speaker
    text = f"(Demo reply, no model connected.) As {who}, on “{topic}”: {take[0].upper()}{take[1:]}"
    words = WORD.findall(text)
    return "".join(words[: max(1, max_tokens)]).strip()


class DemoProvider:
    """Answers without any server; `word_delay` paces the stream so it reads like typing."""

    name = "demo"
    label = "Demo responder (offline)"
    is_demo = True
    default_model = "demo"

    def __init__(self, word_delay: float = 0.02):
        self.word_delay = word_delay

    def __repr__(self) -> str:
        return "<DemoProvider>"

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
        """Yield the demo reply one word at a time; it has no logprobs and counts no tokens, so
        none are invented (the caller estimates them)."""
        if on_sent is not None:
            on_sent()  # nothing to send: the reply is being made here
        abort = abort or Abort()
        for index, word in enumerate(WORD.findall(demo_reply(messages, max_tokens))):
            if index and self.word_delay:
                abort.wait(self.word_delay)
            if abort.is_set():
                raise LLMError("the request was stopped")
            yield Delta(text=word)

    def complete(
        self, messages: list[ChatMessage], *, model: str | None, temperature: float,
        max_tokens: int, usage: Usage | None = None,
    ) -> str:
        return demo_reply(messages, max_tokens)

    def list_models(self) -> list[str]:
        return ["demo"]
