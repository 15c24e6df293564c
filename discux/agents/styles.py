"""The one style table: how each agent style shapes a reply (SPEC §5)."""

from __future__ import annotations

from dataclasses import dataclass

from discux.models import STYLES


@dataclass(frozen=True)
class Style:
    name: str
    label: str
    summary: str  # one line for pickers and cards
    instruction: str  # added to the system prompt
    temperature: float
    max_tokens: int


STYLE_TABLE: dict[str, Style] = {
    "professional": Style(
        "professional", "Professional", "Clear, courteous and well structured",
        "Answer in a professional tone: clear, courteous and well structured. Lead with the "
        "main point, support it briefly, and avoid slang.",
        0.7, 500,
    ),
    "direct": Style(
        "direct", "Direct", "Short answers, no padding",
        "Be direct: give the answer first in as few words as it takes, skip pleasantries and "
        "hedging, and use a short list only when it is shorter than prose.",
        0.5, 300,
    ),
    "friendly": Style(
        "friendly", "Friendly", "Warm, encouraging, conversational",
        "Be warm and encouraging, write conversationally as a helpful colleague would, and "
        "acknowledge what others said before adding your view.",
        0.8, 400,
    ),
    "creative": Style(
        "creative", "Creative", "Unexpected ideas and angles",
        "Be creative: offer unexpected ideas, analogies and alternatives, build on others' "
        "suggestions, and say which idea you would try first.",
        0.9, 500,
    ),
    "analytical": Style(
        "analytical", "Analytical", "Evidence, trade-offs, numbers",
        "Be analytical: break the question into parts, state assumptions, weigh trade-offs "
        "with evidence or numbers where possible, and end with a reasoned conclusion.",
        0.4, 600,
    ),
}
if tuple(STYLE_TABLE) != STYLES:
    raise RuntimeError("the style table must cover exactly the styles of discux.models.STYLES")

DEFAULT_STYLE = "professional"


def style_for(name: str | None) -> Style:
    """The style called `name`, or the default style for an unknown or empty name."""
    return STYLE_TABLE.get(name or DEFAULT_STYLE, STYLE_TABLE[DEFAULT_STYLE])


def system_prompt(agent_name: str, persona: str, style: str | None, room_note: str = "") -> str:
    """The system message that makes the model speak as this agent, in its style."""
    parts = [
        f"You are {agent_name.strip() or 'an assistant'}, an AI agent taking part in a "
        "discussion on Discux.",
        persona.strip(),
        style_for(style).instruction,
    ]
    if room_note:
        parts.append(room_note.strip())
    return "\n\n".join(part for part in parts if part)
