"""Hot switches under concurrent load, and canary routing, on a real uvicorn server."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

openai = pytest.importorskip("openai")

from flywheel.services.serving.logic import routes_to_canary  # noqa: E402
from flywheel.services.serving.ports import Release  # noqa: E402

pytestmark = [pytest.mark.ml, pytest.mark.slow]

MODEL = "shop-assistant"
PROMPTS = [
    [{"role": "user", "content": "Where is my order 4821?"}],
    [{"role": "user", "content": "Can I return items?"}],
    [{"role": "user", "content": "Hello!"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Refund for order 1930?"}],
]
MAX_TOKENS = 8


def _expected(generators) -> dict[str, list[str]]:  # noqa: ANN001
    """Each version's greedy answer to each prompt, straight from onnxruntime."""
    return {
        v: [g.text for g in gen.generate(PROMPTS, max_new_tokens=MAX_TOKENS)] for v, gen in generators.items()
    }


def test_hot_switch_under_load_fails_nothing_and_never_mixes_versions(
    model_versions, version_artifacts, generators, serving_root, make_serving_settings, server, release_source
) -> None:  # noqa: ANN001
    from flywheel.services.serving.app import create_app

    expected = _expected(generators)
    assert len({tuple(texts) for texts in expected.values()}) == 3, "versions must answer differently"
    app = create_app(make_serving_settings(model_versions["0"], serving_root), release_source=release_source)
    results: list[tuple[str, int, str, bool]] = []
    failures: list[BaseException] = []
    stop = threading.Event()
    lock = threading.Lock()

    def client_loop(worker: int, url: str) -> None:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)
        i = worker
        while not stop.is_set():
            prompt = i % len(PROMPTS)
            streaming = worker % 3 == 0
            try:
                if streaming:
                    chunks = list(client.chat.completions.create(
                        model=MODEL, messages=PROMPTS[prompt], temperature=0, max_tokens=MAX_TOKENS,
                        stream=True, user=f"user-{worker}",
                    ))
                    model = {c.model for c in chunks}
                    assert len(model) == 1, model
                    version = model.pop().split(":")[1]
                    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
                else:
                    reply = client.chat.completions.create(
                        model=MODEL, messages=PROMPTS[prompt], temperature=0, max_tokens=MAX_TOKENS,
                        user=f"user-{worker}",
                    )
                    version, text = reply.model.split(":")[1], reply.choices[0].message.content
                with lock:
                    results.append((version, prompt, text, streaming))
            except BaseException as exc:  # noqa: BLE001 - every failure is a test failure
                with lock:
                    failures.append(exc)
            i += 1

    with server(app) as url:
        threads = [threading.Thread(target=client_loop, args=(w, url)) for w in range(8)]
        for t in threads:
            t.start()
        try:
            time.sleep(1.5)
            release_source.publish(Release(MODEL, "1", version_artifacts["1"], "promote"))
            time.sleep(1.5)
            release_source.publish(Release(MODEL, "2", version_artifacts["2"], "promote"))
            time.sleep(1.5)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        batches = _metric(url, "flywheel_serving_batch_requests_sum") / _metric(
            url, "flywheel_serving_batch_requests_count")

    assert failures == []
    seen = Counter(version for version, *_ in results)
    assert len(results) > 50
    assert set(seen) == {"0", "1", "2"}, seen
    for version, prompt, text, _ in results:
        assert text == expected[version][prompt], (version, prompt)
    assert any(streaming for *_, streaming in results)
    assert batches > 1.0, "concurrent requests should share batches"


def _metric(url: str, name: str) -> float:
    import httpx

    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"metric {name} not found")


def test_canary_share_is_respected_and_sticky_per_user(
    model_versions, version_artifacts, serving_root, make_serving_settings, server, release_source
) -> None:  # noqa: ANN001
    from flywheel.services.serving.app import create_app

    share = 0.3
    app = create_app(make_serving_settings(model_versions["0"], serving_root), release_source=release_source)
    with server(app) as url:
        release_source.publish(Release(MODEL, "1", version_artifacts["1"], "canary", canary_share=share))
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)
        users = [f"user-{i}" for i in range(40)]
        served: dict[str, set[str]] = {}
        for _ in range(2):
            for user in users:
                reply = client.chat.completions.create(
                    model=MODEL, messages=PROMPTS[0], max_tokens=1, user=user
                )
                served.setdefault(user, set()).add(reply.model)
        ids = sorted({m.id for m in client.models.list()})
        release_source.publish(Release(MODEL, "1", version_artifacts["1"], "promote"))
        after = client.chat.completions.create(model=MODEL, messages=PROMPTS[0], max_tokens=1, user=users[0])

    assert all(len(models) == 1 for models in served.values()), "a user switched versions"
    for user, models in served.items():
        want = f"{MODEL}:1" if routes_to_canary(user, "", share) else f"{MODEL}:0"
        assert models == {want}, user
    on_canary = sum(models == {f"{MODEL}:1"} for models in served.values())
    assert 0.1 <= on_canary / len(users) <= 0.55
    assert ids == [MODEL, f"{MODEL}:0", f"{MODEL}:1"]
    assert after.model == f"{MODEL}:1"
    population = [routes_to_canary(f"u{i}", "", share) for i in range(5000)]
    assert abs(sum(population) / len(population) - share) < 0.03
