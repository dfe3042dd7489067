"""The HTTP judge (fake transport at the HTTP boundary) and the trainer settings."""

from __future__ import annotations

import json

import httpx
import pytest

from flywheel.errors import ConfigError
from flywheel.services.trainer.judge import HttpJudge, JudgeError, judged_outcomes, parse_verdict
from flywheel.services.trainer.settings import load_trainer_settings

PROMPT = [{"role": "user", "content": "Where is order 123?"}]


def _judge(reply: str | None, seen: list[dict] | None = None, status: int = 200) -> HttpJudge:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if seen is not None:
            seen.append({"body": body, "auth": request.headers.get("authorization")})
        if reply is None:
            return httpx.Response(status, json={"error": "boom"})
        # Prefers whichever side holds the word "good".
        text = body["messages"][1]["content"]
        a = text.split("Answer A:")[1].split("Answer B:")[0]
        verdict = reply if reply != "auto" else ("A" if "good" in a else "B")
        return httpx.Response(200, json={"choices": [{"message": {"content": verdict}}]})

    client = httpx.Client(transport=httpx.MockTransport(handler), headers={
        "Authorization": "Bearer k"})
    return HttpJudge("http://judge.test/v1", "judge-model", client=client)


def test_verdicts_are_parsed() -> None:
    assert parse_verdict("A") == "a"
    assert parse_verdict("b, because it copies the number") == "b"
    assert parse_verdict("Tie.") == "tie"
    with pytest.raises(JudgeError):
        parse_verdict("the first one")


def test_http_judge_sends_an_openai_request() -> None:
    seen: list[dict] = []
    assert _judge("A", seen).compare(PROMPT, "x", "y") == "a"
    body = seen[0]["body"]
    assert body["model"] == "judge-model" and body["temperature"] == 0
    assert "Where is order 123?" in body["messages"][1]["content"]
    assert seen[0]["auth"] == "Bearer k"


def test_http_errors_become_judge_errors() -> None:
    with pytest.raises(JudgeError, match="judge at"):
        _judge(None, status=500).compare(PROMPT, "x", "y")


def test_outcomes_undo_the_position_shuffle() -> None:
    judge = _judge("auto")
    n = 20
    wins, losses, ties, errors = judged_outcomes(judge, [PROMPT] * n, ["good"] * n, ["bad"] * n)
    assert (wins, losses, ties, errors) == (n, 0, 0, 0)
    wins, losses, ties, _ = judged_outcomes(judge, [PROMPT] * n, ["bad"] * n, ["good"] * n)
    assert (wins, losses) == (0, n)
    assert judged_outcomes(judge, [PROMPT], ["same"], ["same "]) == (0, 0, 1, 0)
    assert judged_outcomes(_judge(None), [PROMPT], ["x"], ["y"])[3] == 1


def test_settings_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_trainer_settings()
    assert s.model_line == "shop-assistant" and s.judge_label() == "exact_match"
    monkeypatch.setenv("FLYWHEEL_TRAINER_SLICE_MARGINS", '{"forgetting.batch_1": 0.2}')
    monkeypatch.setenv("FLYWHEEL_TRAINER_TRAIN_OVERRIDES", '{"lora_dropout": 0.1}')
    monkeypatch.setenv("FLYWHEEL_TRAINER_JUDGE_URL", "http://judge:8000/v1")
    s = load_trainer_settings()
    assert s.margins().for_slice("forgetting.batch_1") == 0.2
    assert s.margins().for_slice("forgetting.batch_2") == s.slice_margin
    assert s.train_overrides == {"lora_dropout": 0.1}
    assert s.judge_label() == "judge"


def test_settings_errors_name_the_variable() -> None:
    with pytest.raises(ConfigError, match="FLYWHEEL_TRAINER_PRIMARY_MARGIN"):
        load_trainer_settings(primary_margin=-1)
    with pytest.raises(ConfigError, match="nothing to train"):
        load_trainer_settings(max_sft_steps=0, max_dpo_steps=0)
