"""The official ``openai`` client against a real uvicorn server on a tiny model."""

from __future__ import annotations

import httpx
import pytest

openai = pytest.importorskip("openai")

pytestmark = pytest.mark.ml

MODEL = "shop-assistant"
CHAT = [{"role": "user", "content": "Where is my order 4821?"}]


@pytest.fixture(scope="module")
def client(live_server) -> "openai.OpenAI":  # noqa: ANN001
    return openai.OpenAI(base_url=f"{live_server.url}/v1", api_key="unused", max_retries=0, timeout=60)


def _expected(generators, messages, **kwargs):  # noqa: ANN001, ANN202
    return generators["0"].generate([messages], **kwargs)


def test_models_list(client) -> None:  # noqa: ANN001
    ids = [m.id for m in client.models.list()]
    assert ids == [MODEL, f"{MODEL}:0"]


def test_chat_completion_matches_the_runtime_and_names_the_version(client, generators) -> None:  # noqa: ANN001
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=CHAT, temperature=0, max_tokens=10
    )
    reply = raw.parse()
    [want] = _expected(generators, CHAT, max_new_tokens=10)
    assert reply.model == f"{MODEL}:0" and reply.system_fingerprint == f"{MODEL}:0"
    assert raw.headers["x-flywheel-model-version"] == "0"
    assert reply.id == f"chatcmpl-{raw.headers['x-request-id']}"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == want.text
    assert reply.choices[0].finish_reason == want.finish_reason
    assert reply.usage.prompt_tokens == len(want.prompt_token_ids)
    assert reply.usage.completion_tokens == len(want.token_ids)


def test_streaming_yields_the_same_text_and_ends_with_done(client, live_server) -> None:  # noqa: ANN001
    full = client.chat.completions.create(model=MODEL, messages=CHAT, temperature=0, max_tokens=12)
    chunks = list(client.chat.completions.create(
        model=MODEL, messages=CHAT, temperature=0, max_tokens=12, stream=True,
        stream_options={"include_usage": True},
    ))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == [full.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == full.usage.completion_tokens
    assert {c.model for c in chunks} == {f"{MODEL}:0"}
    with httpx.stream("POST", f"{live_server.url}/v1/chat/completions", json={
        "model": MODEL, "messages": CHAT, "max_tokens": 3, "stream": True,
    }) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert all(line.startswith("data: ") for line in lines)


def test_n_choices_with_seeded_sampling(client) -> None:  # noqa: ANN001
    reply = client.chat.completions.create(
        model=MODEL, messages=CHAT, temperature=1.0, top_p=0.95, seed=11, n=2, max_tokens=10
    )
    assert [c.index for c in reply.choices] == [0, 1]
    assert reply.choices[0].message.content != reply.choices[1].message.content
    again = client.chat.completions.create(
        model=MODEL, messages=CHAT, temperature=1.0, top_p=0.95, seed=11, n=2, max_tokens=10
    )
    assert [c.message.content for c in again.choices] == [c.message.content for c in reply.choices]
    streamed = list(client.chat.completions.create(
        model=MODEL, messages=CHAT, temperature=1.0, top_p=0.95, seed=11, n=2, max_tokens=10, stream=True
    ))
    for choice in reply.choices:
        text = "".join(
            c.choices[0].delta.content or "" for c in streamed if c.choices and c.choices[0].index == choice.index
        )
        assert text == choice.message.content


def test_seed_determinism_and_variation(client) -> None:  # noqa: ANN001
    def ask(seed: int) -> str:
        return client.chat.completions.create(
            model=MODEL, messages=CHAT, temperature=1.0, seed=seed, max_tokens=12
        ).choices[0].message.content

    assert ask(5) == ask(5)
    assert len({ask(s) for s in (1, 2, 3, 4)}) > 1


def test_logprobs(client) -> None:  # noqa: ANN001
    reply = client.chat.completions.create(
        model=MODEL, messages=CHAT, temperature=0, max_tokens=6, logprobs=True, top_logprobs=2
    )
    content = reply.choices[0].logprobs.content
    assert len(content) == reply.usage.completion_tokens
    for entry in content:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == 2
        assert entry.top_logprobs[0].token == entry.token  # greedy picks the most likely token
    plain = client.chat.completions.create(model=MODEL, messages=CHAT, temperature=0, max_tokens=6)
    assert plain.choices[0].logprobs is None
    streamed = list(client.chat.completions.create(
        model=MODEL, messages=CHAT, temperature=0, max_tokens=6, logprobs=True, top_logprobs=2, stream=True
    ))
    entries = [e for c in streamed if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    assert [(e.token, e.logprob) for e in entries] == [(e.token, e.logprob) for e in content]


def test_stop_sequences(client) -> None:  # noqa: ANN001
    free = client.chat.completions.create(model=MODEL, messages=CHAT, temperature=0, max_tokens=12)
    text = free.choices[0].message.content
    stop = text[4:6]
    cut = client.chat.completions.create(
        model=MODEL, messages=CHAT, temperature=0, max_tokens=12, stop=[stop, "never-appears"]
    )
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].message.content == text[: text.find(stop)]
    streamed = list(client.chat.completions.create(
        model=MODEL, messages=CHAT, temperature=0, max_tokens=12, stop=stop, stream=True
    ))
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == text[: text.find(stop)]


def test_tool_messages_reach_the_template_and_the_trace(client, live_server) -> None:  # noqa: ANN001
    messages = [
        {"role": "system", "content": "You are a shop assistant."},
        {"role": "user", "content": "Where is order 4821?"},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "lookup_order", "arguments": "{\"order_id\": \"4821\"}"},
        }]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"status\": \"shipped\"}"},
    ]
    tools = [{"type": "function", "function": {
        "name": "lookup_order", "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
    }}]
    reply = client.chat.completions.create(
        model=MODEL, messages=messages, tools=tools, temperature=0, max_tokens=5, user="user-7",
        extra_headers={"x-request-id": "trace-me-1"},
    )
    assert reply.id == "chatcmpl-trace-me-1"
    [trace] = [t for t in live_server.sink.items if t.request_id == "trace-me-1"]
    assert [m["role"] for m in trace.messages] == ["system", "user", "assistant", "tool"]
    assert trace.messages[3]["tool_call_id"] == "call_1"
    assert trace.model_line == MODEL and trace.model_version == "0" and trace.user == "user-7"
    assert trace.usage["completion_tokens"] == reply.usage.completion_tokens
    assert trace.choices[0]["logprob_stats"]["tokens"] == reply.usage.completion_tokens
    assert trace.tools == tools


def test_errors_use_the_openai_shape(client) -> None:  # noqa: ANN001
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="other-line", messages=CHAT)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=f"{MODEL}:9", messages=CHAT)
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=CHAT, temperature=3)
    assert err.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=CHAT, top_logprobs=2)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=10**6)


def test_pinned_version(client) -> None:  # noqa: ANN001
    reply = client.chat.completions.create(model=f"{MODEL}:0", messages=CHAT, max_tokens=2)
    assert reply.model == f"{MODEL}:0"


def test_health_readiness_and_metrics(live_server) -> None:  # noqa: ANN001
    assert httpx.get(f"{live_server.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{live_server.url}/readyz").json()
    assert ready["status"] == "ready" and ready["stable"] == "0" and ready["canary"] is None
    metrics = httpx.get(f"{live_server.url}/metrics").text
    assert 'flywheel_serving_requests_total{status="ok",stream="false",version="0"}' in metrics
    assert 'flywheel_serving_model_info{line="shop-assistant",role="stable",version="0"} 1.0' in metrics
    assert "flywheel_serving_batch_rows_bucket" in metrics
