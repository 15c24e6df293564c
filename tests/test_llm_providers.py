"""The provider layer against a real local OpenAI-compatible server (FakeLLM): streaming,
logprobs, every failure mode in plain words, and which provider the registry picks."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from discux.llm import Delta, LLMError, Provider, get_provider, mean_probability
from discux.llm.demo import DemoProvider, demo_reply
from discux.llm.openai_compatible import client_for, display_url
from discux.llm.registry import ollama_models
from tests.support.fake_llm import FakeLLM, FakeReply

CHAT = [
    {"role": "system", "content": "You are Ada. A careful analyst who wants numbers."},
    {"role": "user", "content": "Should we ship on Friday?"},
]
SAMPLING = {"model": None, "temperature": 0.4, "max_tokens": 600}


@pytest.fixture
def fake():
    with FakeLLM() as server:
        yield server


@pytest.fixture
def provider_for(make_app):
    """`provider_for(fake, **config)` → the provider an app configured for `fake` gets."""

    def _provider(server, **config):
        app = make_app(DISCUX_LLM_BASE_URL=server.base_url, DISCUX_LLM_MODEL="fake-small",
                       **config)
        return get_provider(app)

    return _provider


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_configured_server_streams_deltas_in_order(fake, provider_for):
    provider = provider_for(fake)
    fake.queue(FakeReply(text="Ship it on Monday instead."))
    deltas = list(provider.stream_chat(CHAT, **SAMPLING))
    assert [d.text for d in deltas] == ["Ship", " it", " on", " Monday", " instead."]
    request = fake.requests[-1]
    assert request["model"] == "fake-small" and request["stream"] is True
    assert request["temperature"] == 0.4 and request["max_tokens"] == 600
    assert request["messages"] == CHAT
    assert isinstance(provider, Provider) and not provider.is_demo


def test_logprobs_are_requested_and_surfaced(fake, provider_for):
    provider = provider_for(fake)
    fake.queue(FakeReply(text="Yes, ship.", logprobs=True, logprob=-0.1053605))
    deltas = list(provider.stream_chat(CHAT, **SAMPLING))
    assert fake.requests[-1]["logprobs"] is True
    assert all(d.logprobs == [pytest.approx(-0.1053605)] for d in deltas)
    confidence = mean_probability([p for d in deltas for p in d.logprobs])
    assert confidence == pytest.approx(0.9, abs=1e-6)


def test_missing_logprobs_are_tolerated_and_never_invented(fake, provider_for):
    provider = provider_for(fake)
    fake.queue(FakeReply(text="No numbers here.", logprobs=False))
    deltas = list(provider.stream_chat(CHAT, **SAMPLING))
    assert "".join(d.text for d in deltas) == "No numbers here."
    assert mean_probability([p for d in deltas for p in d.logprobs]) is None


def test_logprobs_can_be_left_out_of_the_request(fake, provider_for):
    provider = provider_for(fake)
    list(provider.stream_chat(CHAT, **SAMPLING, want_logprobs=False))
    assert "logprobs" not in fake.requests[-1]


def test_a_per_agent_model_overrides_the_default(fake, provider_for):
    provider = provider_for(fake)
    list(provider.stream_chat(CHAT, model="fake-large", temperature=0.5, max_tokens=10))
    assert fake.requests[-1]["model"] == "fake-large"


def test_without_a_configured_model_the_servers_first_model_is_used(fake, make_app):
    provider = get_provider(make_app(DISCUX_LLM_BASE_URL=fake.base_url))
    list(provider.stream_chat(CHAT, **SAMPLING))
    assert fake.requests[-1]["model"] == "fake-large"  # first in sorted order


def test_complete_returns_the_whole_reply(fake, provider_for):
    provider = provider_for(fake)
    fake.queue(FakeReply(text="A summary of the discussion."))
    assert provider.complete(CHAT, model=None, temperature=0.2, max_tokens=50) == (
        "A summary of the discussion.")
    assert fake.requests[-1].get("stream") in (None, False)


def test_models_are_listed_from_the_server(fake, provider_for):
    assert provider_for(fake).list_models() == ["fake-large", "fake-small"]


def test_server_error_after_retries_is_explained(fake, provider_for):
    provider = provider_for(fake)
    fake.queue(*[FakeReply(mode="http_500")] * 3)
    with pytest.raises(LLMError) as failure:
        list(provider.stream_chat(CHAT, **SAMPLING))
    assert str(failure.value) == "the model server answered 500 (Fake http_500 error.)"
    assert len(fake.requests) == 3  # the first try and two retries


def test_a_server_error_that_clears_up_is_retried_invisibly(fake, provider_for):
    provider = provider_for(fake)
    fake.queue(FakeReply(mode="http_500"), FakeReply(text="Recovered."))
    assert "".join(d.text for d in provider.stream_chat(CHAT, **SAMPLING)) == "Recovered."


def test_a_refused_request_is_not_retried(fake, provider_for):
    provider = provider_for(fake)
    fake.queue(FakeReply(mode="http_400"))
    with pytest.raises(LLMError, match=r"^the model server answered 400 \(Fake http_400 error\.\)$"):
        list(provider.stream_chat(CHAT, **SAMPLING))
    assert len(fake.requests) == 1


def test_a_hanging_server_times_out(fake, provider_for):
    provider = provider_for(fake, DISCUX_LLM_TIMEOUT=0.5)
    fake.queue(*[FakeReply(mode="hang")] * 3)
    with pytest.raises(LLMError) as failure:
        list(provider.stream_chat(CHAT, **SAMPLING))
    assert str(failure.value) == "timed out after 0.5 s"


def test_the_caller_hears_when_the_request_is_sent_before_the_model_answers(fake, provider_for):
    # The discussion engine announces a turn once its request is out, not once it is answered.
    provider = provider_for(fake, DISCUX_LLM_TIMEOUT=0.5)
    fake.queue(*[FakeReply(mode="hang")] * 3)
    sent, failures = threading.Event(), []

    def ask():
        with pytest.raises(LLMError) as failure:
            list(provider.stream_chat(CHAT, **SAMPLING, on_sent=sent.set))
        failures.append(str(failure.value))

    asking = threading.Thread(target=ask)
    asking.start()
    assert sent.wait(5), "on_sent was not called while the model was still silent"
    assert fake.wait_for_requests(1)[0]["messages"] == CHAT
    asking.join(10)
    assert failures == ["timed out after 0.5 s"]


def test_the_caller_never_hears_sent_when_nothing_listens(make_app):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    provider = get_provider(make_app(DISCUX_LLM_BASE_URL=url, DISCUX_LLM_MODEL="fake-small"))
    sent = threading.Event()
    with pytest.raises(LLMError):
        list(provider.stream_chat(CHAT, **SAMPLING, on_sent=sent.set))
    assert not sent.is_set()


def test_the_demo_responder_has_nothing_to_send_and_says_so_at_once():
    sent = threading.Event()
    deltas = DemoProvider(word_delay=0).stream_chat(CHAT, **SAMPLING, on_sent=sent.set)
    assert next(deltas).text and sent.is_set()


def test_a_stream_cut_off_midway_is_explained(fake, provider_for):
    provider = provider_for(fake)
    fake.queue(FakeReply(text="one two three four five six", mode="cut"))
    received = []
    with pytest.raises(LLMError) as failure:
        for delta in provider.stream_chat(CHAT, **SAMPLING):
            received.append(delta.text)
    assert str(failure.value) == "the reply stream was cut off"
    assert "".join(received) == "one two three"


def test_garbage_in_the_stream_is_explained(fake, provider_for):
    provider = provider_for(fake)
    fake.queue(FakeReply(mode="garbage"))
    with pytest.raises(LLMError) as failure:
        list(provider.stream_chat(CHAT, **SAMPLING))
    assert str(failure.value) == "the model server sent a malformed reply"


def test_nothing_listening_is_explained(make_app):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    provider = get_provider(make_app(DISCUX_LLM_BASE_URL=url, DISCUX_LLM_MODEL="fake-small"))
    with pytest.raises(LLMError) as failure:
        list(provider.stream_chat(CHAT, **SAMPLING))
    assert str(failure.value) == f"could not connect to {url}"


def test_failure_messages_never_show_credentials_in_the_url():
    assert display_url("http://user:secret@models.local:8000/v1") == "http://models.local:8000/v1"


def test_one_client_is_kept_per_server_and_key(fake):
    assert client_for(fake.base_url, "k1") is client_for(fake.base_url, "k1")
    assert client_for(fake.base_url, "k1") is not client_for(fake.base_url, "k2")


def test_provider_is_chosen_once_per_app(fake, make_app):
    app = make_app(DISCUX_LLM_BASE_URL=fake.base_url)
    assert get_provider(app) is get_provider(app)
    with app.app_context():
        assert get_provider() is get_provider(app)


# ---- the registry's fallbacks and the demo responder ----

def test_with_nothing_configured_the_demo_responder_answers(make_app):
    # The tests' Ollama URL names a port held closed (tests/conftest.py): a machine without
    # Ollama, whether or not one runs on 11434 here. The registry falls through to the demo.
    app = make_app()
    assert ollama_models(app.config["DISCUX_OLLAMA_URL"]) is None
    provider = get_provider(app)
    assert provider.is_demo and provider.label == "Demo responder (offline)"


@pytest.fixture
def ollama_tags():
    """A stand-in for Ollama's model list at /api/tags on a free port; yields its base URL."""

    class Tags(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"models": [{"name": "llama3.2:1b"}, {"name": "qwen3:4b"}]})
            self.send_response(200 if self.path == "/api/tags" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Tags)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_local_ollama_with_a_model_is_used_when_it_answers(ollama_tags, make_app):
    provider = get_provider(make_app(DISCUX_OLLAMA_URL=ollama_tags))
    assert (provider.name, provider.label, provider.is_demo) == (
        "ollama", "Ollama on this machine", False)
    assert provider.default_model == "llama3.2:1b"
    assert provider.base_url == f"{ollama_tags}/v1"


def test_something_else_on_the_ollama_port_is_not_mistaken_for_it(fake, make_app):
    # FakeLLM has no /api/tags: the registry falls through to the demo responder.
    provider = get_provider(make_app(DISCUX_OLLAMA_URL=fake.base_url.removesuffix("/v1")))
    assert provider.is_demo


def test_a_provider_can_be_forced_by_name(fake, make_app):
    app = make_app(DISCUX_LLM_BASE_URL=fake.base_url, DISCUX_LLM_PROVIDER="demo")
    assert get_provider(app).is_demo


def test_demo_streams_a_persona_aware_reply_word_by_word():
    demo = DemoProvider(word_delay=0)
    deltas = list(demo.stream_chat(CHAT, **SAMPLING))
    text = "".join(d.text for d in deltas)
    assert len(deltas) > 5 and all(isinstance(d, Delta) and not d.logprobs for d in deltas)
    assert "As Ada (a careful analyst who wants numbers)" in text
    assert "Should we ship on Friday?" in text
    assert text.startswith("(Demo reply, no model connected.)")


def test_demo_is_deterministic_and_varies_with_the_question():
    first = demo_reply(CHAT)
    assert demo_reply(CHAT) == first
    replies = {demo_reply([CHAT[0], {"role": "user", "content": f"Question {n}?"}])
               for n in range(12)}
    assert len({reply.split("”: ", 1)[1] for reply in replies}) > 1


def test_demo_respects_the_token_budget():
    assert len(demo_reply(CHAT, max_tokens=5).split()) == 5
