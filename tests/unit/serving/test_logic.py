"""Pure serving decisions: routing, batching, release plans and OpenAI payload shaping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flywheel.ml.ort_runtime import Generation, TokenLogprob, TopLogprob
from flywheel.services.serving import logic
from flywheel.services.serving.errors import InvalidRequest, ModelNotFound
from flywheel.services.serving.ports import Release

LINE = "shop-assistant"


def test_model_names() -> None:
    assert logic.model_id(LINE, "3") == "shop-assistant:3"
    assert logic.pinned_version(LINE, LINE) is None
    assert logic.pinned_version(f"{LINE}:3", LINE) == "3"
    with pytest.raises(ModelNotFound):
        logic.pinned_version("gpt-4o", LINE)


def test_canary_routing_is_sticky_and_proportional() -> None:
    assert logic.canary_bucket("alice") == logic.canary_bucket("alice")
    assert not logic.routes_to_canary("alice", "r1", 0.0)
    assert logic.routes_to_canary("alice", "r1", 1.0)
    users = [f"user-{i}" for i in range(4000)]
    share = sum(logic.routes_to_canary(u, "r", 0.2) for u in users) / len(users)
    assert 0.17 < share < 0.23
    # Without a user the request id decides.
    assert logic.routes_to_canary(None, "req-1", 0.5) == logic.routes_to_canary(None, "req-1", 0.5)


def test_batches_never_mix_models_or_overflow() -> None:
    a, b = object(), object()
    assert logic.should_join_batch(a, 2, a, 2, 8)
    assert not logic.should_join_batch(a, 2, b, 1, 8)
    assert not logic.should_join_batch(a, 7, a, 2, 8)


def _release(action: str, version: str, line: str = LINE, share: float | None = None) -> Release:
    return Release(line, version, Path(f"/artifacts/{version}"), action, share)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("stable", "canary", "release", "kinds"),
    [
        ("0", None, _release("promote", "1"), ["load_stable"]),
        ("1", None, _release("promote", "1"), []),  # redelivered
        ("0", None, _release("promote", "1", line="other"), []),
        ("0", None, _release("canary", "1", share=0.2), ["load_canary"]),
        ("0", "1", _release("promote", "1"), ["promote_canary"]),
        ("0", "1", _release("promote", "2"), ["drop_canary", "load_stable"]),
        ("0", "1", _release("rollback", "0"), ["drop_canary"]),
        ("2", None, _release("rollback", "1"), ["load_stable"]),
        ("0", "1", _release("canary", "0"), ["drop_canary"]),
    ],
)
def test_release_plans(stable, canary, release, kinds) -> None:  # noqa: ANN001
    steps = logic.plan_release(LINE, stable, canary, release, default_share=0.1)
    assert [s.kind for s in steps] == kinds


def test_canary_plan_uses_the_default_share() -> None:
    [step] = logic.plan_release(LINE, "0", None, _release("canary", "1"), default_share=0.15)
    assert step.share == 0.15


def test_sampling_params_from_a_request() -> None:
    params, n = logic.sampling_params(
        {"temperature": 0, "max_tokens": 7, "n": 2, "stop": "END", "seed": 3, "logprobs": True,
         "top_logprobs": 2}, 256, 1024, 8,
    )
    assert (params.temperature, params.max_new_tokens, params.stop, params.seed, n) == (0.0, 7, ("END",), 3, 2)
    assert params.logprobs and params.top_logprobs == 2
    defaults, _ = logic.sampling_params({}, 256, 1024, 8)
    assert defaults.temperature == 1.0 and defaults.max_new_tokens == 256
    with pytest.raises(InvalidRequest):
        logic.sampling_params({"top_logprobs": 2}, 256, 1024, 8)
    with pytest.raises(InvalidRequest):
        logic.sampling_params({"n": 9}, 256, 1024, 8)
    with pytest.raises(InvalidRequest):
        logic.sampling_params({"stop": ["a", "b", "c", "d", "e"]}, 256, 1024, 8)


def test_messages_are_normalised_for_the_template() -> None:
    out = logic.normalise_messages([
        {"role": "developer", "content": [{"type": "text", "text": "Be "}, {"type": "text", "text": "kind"}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1"}]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    ])
    assert out == [
        {"role": "system", "content": "Be kind"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1"}]},
        {"role": "tool", "content": "ok", "tool_call_id": "c1"},
    ]


def test_tool_calls_are_extracted_from_the_reply() -> None:
    text = 'Checking.<tool_call>{"name": "lookup_order", "arguments": {"order_id": "4821"}}</tool_call>'
    content, calls = logic.extract_tool_calls(text, "abcdef0123456789")
    assert content == "Checking."
    assert calls[0]["function"]["name"] == "lookup_order"
    assert json.loads(calls[0]["function"]["arguments"]) == {"order_id": "4821"}
    assert logic.extract_tool_calls("<tool_call>not json</tool_call>", "r") == ("<tool_call>not json</tool_call>", [])


def _generation(**kw) -> Generation:  # noqa: ANN003
    lp = TokenLogprob(5, "hi", -0.5, (TopLogprob(5, "hi", -0.5), TopLogprob(6, "yo", -1.5)))
    base = dict(prompt_index=0, choice_index=1, prompt_token_ids=[1, 2], token_ids=[5], text="hi",
                finish_reason="length", logprobs=[lp])
    base.update(kw)
    return Generation(**base)


def test_choice_and_completion_bodies() -> None:
    choice = logic.choice_body(_generation(), "rid", want_logprobs=True, top=1, parse_tools=False)
    assert choice["index"] == 1 and choice["finish_reason"] == "length"
    assert choice["message"] == {"role": "assistant", "content": "hi", "refusal": None}
    entry = choice["logprobs"]["content"][0]
    assert entry["token"] == "hi" and entry["bytes"] == [104, 105] and len(entry["top_logprobs"]) == 1
    assert logic.choice_body(_generation(finish_reason="cancelled"), "r", False, 0, False)["finish_reason"] == "stop"
    usage = logic.usage(2, [_generation(), _generation(token_ids=[5, 6])])
    assert usage == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    body = logic.completion_body("rid", 1, "shop-assistant:0", [choice], usage)
    assert body["id"] == "chatcmpl-rid" and body["object"] == "chat.completion"
    assert logic.logprob_stats(_generation().logprobs)["mean_logprob"] == -0.5


def test_sse_framing() -> None:
    assert logic.sse("[DONE]") == b"data: [DONE]\n\n"
    assert logic.sse({"a": 1}) == b'data: {"a":1}\n\n'
