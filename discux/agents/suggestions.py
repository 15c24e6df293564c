"""Agents from a goal: the model proposes three distinct agents a person can edit and keep."""

from __future__ import annotations

import json
import re
from dataclasses import replace

from discux.agents.service import (
    COLOR_PRESETS,
    COLOR_SHAPE,
    DEFAULT_EMOJI,
    NAME_MAX,
    PROMPT_MAX,
    PROMPT_MIN,
    AgentFields,
    emoji_problem,
)
from discux.agents.styles import STYLE_TABLE
from discux.llm import ChatMessage, LLMError, Provider
from discux.models.agents import agent_name_key

SUGGESTIONS = 3
GOAL_MIN = 10
GOAL_MAX = 500
SUGGEST_MAX_TOKENS = 1200
SUGGEST_TEMPERATURE = 0.8
JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)

INSTRUCTIONS = (
    "You design AI agents for Discux, where a team discusses with several agents at once. "
    f"Propose exactly {SUGGESTIONS} agents that together help with the team's goal; make them "
    "distinct in role and point of view, so they disagree usefully. Answer with JSON only, no "
    'prose and no code fence, shaped as {"agents": [{"name": "...", "emoji": "...", '
    '"color": "#RRGGBB", "style": "...", "prompt": "..."}]}. '
    f"name: one or two words, at most 30 characters, no @. emoji: exactly one emoji. "
    f"style: one of {', '.join(STYLE_TABLE)}. prompt: 2 to 4 sentences in the second person "
    '("You are ...") saying who the agent is, what it knows and what it pushes the team on.'
)


def goal_problem(goal: str) -> str | None:
    """Why `goal` cannot be sent to the model, or None when it can."""
    goal = goal.strip()
    if len(goal) < GOAL_MIN:
        return f"Describe what you need in at least {GOAL_MIN} characters."
    if len(goal) > GOAL_MAX:
        return f"Keep the goal to {GOAL_MAX} characters or fewer (this has {len(goal)})."
    return None


def suggest_agents(goal: str, provider: Provider, model: str | None = None) -> list[AgentFields]:
    """Three distinct agents for `goal`: fixed ones from the offline demo, else the model's
    (asked twice at most). Raises LLMError when the model cannot be reached or answers,
    twice, with something that is not three usable agents."""
    goal = goal.strip()
    if provider.is_demo:
        return demo_suggestions(goal)
    messages: list[ChatMessage] = [
        {"role": "system", "content": INSTRUCTIONS},
        {"role": "user", "content": f"Our goal: {goal}"},
    ]
    for _attempt in range(2):
        text = provider.complete(messages, model=model, temperature=SUGGEST_TEMPERATURE,
                                 max_tokens=SUGGEST_MAX_TOKENS)
        agents = parse_suggestions(text)
        if len(agents) >= SUGGESTIONS:
            return agents[:SUGGESTIONS]
    raise LLMError("the model did not propose three usable agents; try again, or describe "
                   "the goal differently")


def parse_suggestions(text: str) -> list[AgentFields]:
    """The distinct, rule-abiding agents in a model's JSON answer (fences and prose around it
    are ignored); an answer without readable JSON gives none."""
    match = JSON_OBJECT.search(text or "")
    if match is None:
        return []
    try:
        data = json.loads(match.group(0))
    except ValueError:
        return []
    items = data.get("agents") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return []
    agents: list[AgentFields] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        fields = suggested_fields(item, index) if isinstance(item, dict) else None
        if fields is not None and agent_name_key(fields.name) not in seen:
            seen.add(agent_name_key(fields.name))
            agents.append(fields)
    return agents


def suggested_fields(item: dict, index: int = 0) -> AgentFields | None:
    """One proposed agent made to fit the agent rules (look fields fall back to presets), or
    None when its name or persona cannot be used."""
    name = " ".join(str(item.get("name") or "").replace("@", "").split())[:NAME_MAX].strip()
    prompt = str(item.get("prompt") or item.get("persona") or "").strip()[:PROMPT_MAX]
    if not name or len(prompt) < PROMPT_MIN:
        return None
    emoji = str(item.get("emoji") or "").strip()
    color = str(item.get("color") or "").strip().upper()
    style = str(item.get("style") or "").strip().lower()
    return AgentFields(
        name=name,
        prompt=prompt,
        emoji=emoji if emoji_problem(emoji) is None else DEFAULT_EMOJI,
        color=color if COLOR_SHAPE.fullmatch(color) else COLOR_PRESETS[index % len(COLOR_PRESETS)],
        style=style if style in STYLE_TABLE else "professional",
    )


DEMO_SUGGESTIONS = (
    AgentFields(
        name="Planner", emoji="🗺️", color="#3B82F6", style="analytical",
        prompt="You are a pragmatic planner. You turn the team's goal — {goal} — into steps "
               "with an owner and a date, and you ask what must be true for each step to work.",
    ),
    AgentFields(
        name="Skeptic", emoji="🧐", color="#EF4444", style="direct",
        prompt="You are a friendly skeptic. For the team's goal — {goal} — you name the "
               "riskiest assumption, the cheapest way to test it, and what would make you "
               "change your mind.",
    ),
    AgentFields(
        name="Champion", emoji="💡", color="#10B981", style="creative",
        prompt="You are the voice of the people the team serves. For the goal — {goal} — you "
               "offer bold ideas, examples from elsewhere, and what would delight them.",
    ),
)


def demo_suggestions(goal: str) -> list[AgentFields]:
    """Fixed, sensible agents for the offline demo, each persona naming the goal."""
    short = goal if len(goal) <= 200 else goal[:199].rstrip() + "…"
    return [replace(agent, prompt=agent.prompt.format(goal=short)) for agent in DEMO_SUGGESTIONS]

