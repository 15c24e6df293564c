"""Which provider answers: DISCUX_LLM_BASE_URL when set, else a local Ollama when one answers,
else the offline demo responder. Providers register in PROVIDERS, tried in order."""

from __future__ import annotations

import http.client
import json
import logging
import threading
import urllib.request
from collections.abc import Callable

from flask import Flask, current_app

from discux.llm.base import Provider
from discux.llm.demo import DemoProvider
from discux.llm.openai_compatible import OpenAICompatibleProvider

log = logging.getLogger(__name__)

OLLAMA_URL = "http://127.0.0.1:11434"
OLLAMA_PROBE_TIMEOUT = 0.3
EXTENSION_KEY = "discux.llm"

ProviderFactory = Callable[[Flask], Provider | None]


def configured_server(app: Flask) -> Provider | None:
    """The server named by DISCUX_LLM_BASE_URL, if any."""
    base_url = app.config.get("DISCUX_LLM_BASE_URL")
    if not base_url:
        return None
    return OpenAICompatibleProvider(
        base_url,
        api_key=app.config.get("DISCUX_LLM_API_KEY"),
        default_model=app.config.get("DISCUX_LLM_MODEL"),
        timeout=float(app.config.get("DISCUX_LLM_TIMEOUT") or 30.0),
        total_timeout=app.config.get("DISCUX_LLM_TOTAL_TIMEOUT"),
    )


def ollama_models(base_url: str = OLLAMA_URL, timeout: float = OLLAMA_PROBE_TIMEOUT) -> list[str] | None:
    """The models of an Ollama answering at `base_url`, or None when nothing answers in time."""
    try:
        with urllib.request.urlopen(f"{base_url}/api/tags", timeout=timeout) as response:
            payload = json.loads(response.read(1_000_000) or b"{}")
    except (OSError, ValueError, http.client.HTTPException):
        return None
    models = payload.get("models") if isinstance(payload, dict) else None
    if not isinstance(models, list):
        return None
    return [m["name"] for m in models if isinstance(m, dict) and isinstance(m.get("name"), str)]


def local_ollama(app: Flask) -> Provider | None:
    """A local Ollama with at least one model pulled, probed once per app."""
    base_url = app.config.get("DISCUX_OLLAMA_URL", OLLAMA_URL)
    models = ollama_models(base_url)
    if not models:
        return None
    return OpenAICompatibleProvider(
        f"{base_url}/v1",
        api_key="ollama",
        default_model=app.config.get("DISCUX_LLM_MODEL") or models[0],
        timeout=float(app.config.get("DISCUX_LLM_TIMEOUT") or 30.0),
        total_timeout=app.config.get("DISCUX_LLM_TOTAL_TIMEOUT"),
        name="ollama",
        label="Ollama on this machine",
    )


def demo_responder(app: Flask) -> Provider:
    return DemoProvider(word_delay=float(app.config.get("DISCUX_DEMO_WORD_DELAY", 0.02)))


# Tried in order; the first factory that returns a provider answers. Add new backends here.
PROVIDERS: dict[str, ProviderFactory] = {
    "openai": configured_server,
    "ollama": local_ollama,
    "demo": demo_responder,
}

_lock = threading.Lock()


def get_provider(app: Flask | None = None) -> Provider:
    """The provider this app talks to, chosen once per app (DISCUX_LLM_PROVIDER forces one)."""
    app = app or current_app._get_current_object()
    cached = app.extensions.get(EXTENSION_KEY)
    if cached is not None:
        return cached
    with _lock:
        cached = app.extensions.get(EXTENSION_KEY)
        if cached is None:
            cached = _choose(app)
            app.extensions[EXTENSION_KEY] = cached
            log.info("LLM provider: %s", cached.label)
    return cached


def reset_provider(app: Flask | None = None) -> None:
    """Forget the chosen provider, so the next call probes again (after a config change)."""
    app = app or current_app._get_current_object()
    app.extensions.pop(EXTENSION_KEY, None)


def _choose(app: Flask) -> Provider:
    forced = app.config.get("DISCUX_LLM_PROVIDER")
    if forced:
        if forced not in PROVIDERS:
            raise ValueError(f"DISCUX_LLM_PROVIDER must be one of {', '.join(PROVIDERS)}")
        provider = PROVIDERS[forced](app)
        if provider is None:
            raise ValueError(f"DISCUX_LLM_PROVIDER={forced} is not configured")
        return provider
    for factory in PROVIDERS.values():
        provider = factory(app)
        if provider is not None:
            return provider
    return DemoProvider()
