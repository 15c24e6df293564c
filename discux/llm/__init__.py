"""The LLM provider layer: one interface (base.Provider), an OpenAI-compatible backend,
an offline demo responder, and a registry that picks one per app."""

from discux.llm.base import ChatMessage, Delta, LLMError, Provider, mean_probability
from discux.llm.registry import PROVIDERS, get_provider, reset_provider

__all__ = [
    "PROVIDERS", "ChatMessage", "Delta", "LLMError", "Provider", "get_provider",
    "mean_probability", "reset_provider",
]
