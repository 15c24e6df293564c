"""Which of a room's agents a message addresses: `@Name` (longest name first, any case, spaces
allowed) and `@all`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Named(Protocol):
    id: str
    name: str


ALL = "all"


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


def _ends_at_boundary(text: str, end: int) -> bool:
    return end >= len(text) or not _is_word(text[end])


def resolve_mentions(text: str, agents: Sequence[Named]) -> list[Named]:
    """The agents `text` mentions, in the order first mentioned, each once.

    `agents` is the room's agents in room order (that order is used for `@all`). An `@` glued to a
    word before it (an email address) is not a mention; neither is an unknown name.
    """
    # `@all` competes like a three-letter name: "@All hands" finds an agent called "All hands",
    # and on a tie `@all` wins over an agent literally named "all".
    names: list[tuple[str, Named | None]] = [(agent.name, agent) for agent in agents]
    names.append((ALL, None))
    names.sort(key=lambda pair: (len(pair[0]), pair[1] is None), reverse=True)
    found: dict[str, Named] = {}
    position = text.find("@")
    while position != -1:
        start = position + 1
        match_end = start
        if position == 0 or not _is_word(text[position - 1]):
            for name, agent in names:
                end = start + len(name)
                if text[start:end].casefold() == name.casefold() and _ends_at_boundary(text, end):
                    for target in [agent] if agent is not None else agents:
                        found.setdefault(target.id, target)
                    match_end = end
                    break
        position = text.find("@", match_end)
    return list(found.values())
