"""The serving app on the real broker: releases from models.releases, traces to traces.raw,
exemplars from annotation.labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flywheel.events.envelope import stamp

pytestmark = [pytest.mark.slow, pytest.mark.ml]
LINE = "shop-assistant"
QUESTION = [{"role": "system", "content": "You are the support assistant of Northwind Outfitters."},
            {"role": "user", "content": "Where is my order 4821?"}]


def _releaser(settings: Any, engine: Any) -> tuple[Any, Any]:
    from flywheel.kafka.producer import make_producer
    from flywheel.services.exporter.releasing import Releaser, kafka_send

    producer = make_producer(settings)
    return Releaser(settings, engine, kafka_send(producer)), producer


def _app(serving: Any, **kwargs: Any) -> tuple[Any, Any, Any]:
    from flywheel.services.serving.app import base_artifact, create_app
    from flywheel.services.serving.kafka_wiring import KafkaReleaseSource, KafkaTraceSink

    source = KafkaReleaseSource(serving, LINE, lambda: base_artifact(serving))
    sink = KafkaTraceSink(serving)
    return create_app(serving, release_source=source, trace_sink=sink, **kwargs), source, sink


def _routing(app: Any) -> tuple[str | None, str | None]:
    r = app.state.runtime.manager.routing
    return (r.stable and r.stable.version, r.canary and r.canary.version)


def test_a_restarted_server_loads_the_current_release_and_canary(settings, engine, flow, versions,
                                                                 artifacts, serving_settings) -> None:
    from fastapi.testclient import TestClient

    releaser, producer = _releaser(settings, engine)
    try:
        for v in (1, 2):
            flow.register_candidate(engine, v, versions[v])
        releaser.canary(LINE, 1, artifacts[1], "h1", share=0.3, actor="exporter", reason="ok")
        releaser.promote(LINE, actor="release-controller", reason="not worse")
        releaser.canary(LINE, 2, artifacts[2], "h2", share=0.3, actor="exporter", reason="ok")
        app, source, sink = _app(serving_settings())
        with TestClient(app) as client:
            flow.wait_for(lambda: _routing(app) == ("1", "2"), 180, "release 1 with canary 2")
            assert source.caught_up.is_set()
            # History is folded: one load for the release and one for the canary, not four.
            assert [(r.action, r.version) for r in source.applied] == [("promote", "1"), ("canary", "2")]
            assert app.state.runtime.manager.routing.canary_share == pytest.approx(0.3)
            # Live: roll the canary back; the server drops it while it keeps answering.
            releaser.rollback(LINE, actor="user:erin", reason="by hand")
            resp = client.post("/v1/chat/completions", json={"model": LINE, "messages": QUESTION,
                                                              "max_tokens": 4})
            assert resp.status_code == 200
            flow.wait_for(lambda: _routing(app) == ("1", None), 60, "the canary to be dropped")
            # Rolling the release back returns to the base model (version 0).
            releaser.rollback(LINE, actor="user:erin", reason="back to base")
            flow.wait_for(lambda: _routing(app) == ("0", None), 60, "the base model")
        sink.close()
    finally:
        producer.close(timeout=10)


def test_served_conversations_arrive_on_traces_raw(settings, flow, serving_settings) -> None:
    from fastapi.testclient import TestClient

    flow.prepare(settings)
    app, _, sink = _app(serving_settings())
    sent: dict[str, dict] = {}
    with TestClient(app) as client:
        flow.wait_for(lambda: _routing(app)[0] == "0", 180, "the base model")
        plain = client.post("/v1/chat/completions", json={
            "model": LINE, "messages": QUESTION, "max_tokens": 8, "user": "u-1",
            "metadata": {"trace_id": "conv-7", "session_id": "s-7", "app_id": "shop-web"}})
        sent[plain.headers["x-request-id"]] = {"n": 1, "trace_id": "conv-7"}
        sampled = client.post("/v1/chat/completions", headers={"x-request-id": "req-sampled-1"}, json={
            "model": LINE, "messages": QUESTION, "max_tokens": 8, "n": 3, "temperature": 1.0, "seed": 3})
        sent["req-sampled-1"] = {"n": 3, "trace_id": "req-sampled-1"}
        with client.stream("POST", "/v1/chat/completions", json={
                "model": LINE, "messages": QUESTION, "max_tokens": 8, "stream": True}) as streamed:
            body = "".join(streamed.iter_text())
            sent[streamed.headers["x-request-id"]] = {"n": 1, "trace_id": streamed.headers["x-request-id"]}
        assert "[DONE]" in body and plain.status_code == sampled.status_code == 200
        internal = client.post("/v1/chat/completions", json={
            "model": LINE, "messages": QUESTION, "max_tokens": 4, "metadata": {"flywheel_trace": "off"}})
        assert internal.status_code == 200
    sink.close()
    assert sink.skipped == 1
    traces = flow.read_events(settings, "traces.raw", "Trace", expect=3, settle_s=2.0)
    assert {t.request_id for t in traces} == set(sent)
    for trace in traces:
        want = sent[trace.request_id]
        assert trace.source == 3 and trace.envelope.producer == "serving"
        assert (trace.model.name, trace.model.version) == (LINE, "0")
        assert trace.trace_id == want["trace_id"]
        assert trace.logprobs.token_count > 0 and trace.logprobs.min_logprob <= trace.logprobs.mean_logprob < 0
        assert len(trace.logprobs.samples) == (want["n"] if want["n"] > 1 else 0)
        assert [m.role for m in trace.messages] == ["system", "user", "assistant"]
        assert trace.latency_ms > 0 and trace.started_at.seconds > 0
    by_id = {t.request_id: t for t in traces}
    conv = by_id[plain.headers["x-request-id"]]
    assert (conv.user_id, conv.session_id, conv.app_id) == ("u-1", "s-7", "shop-web")


def test_a_correction_reaches_the_next_request_within_seconds(settings, flow, serving_settings) -> None:
    import time

    from fastapi.testclient import TestClient

    from flywheel.services.serving.app import generator_loader
    from flywheel.services.serving.exemplars import (
        ExemplarStore,
        KafkaExemplarFeed,
        NgramEmbedder,
        exemplar_loader,
    )
    from flywheel.v1 import annotation_pb2

    flow.prepare(settings)
    serving = serving_settings(exemplars=True)
    store = ExemplarStore(NgramEmbedder(), k=2, min_similarity=0.3)
    feed = KafkaExemplarFeed(serving, store)
    stop_feed = feed.start()
    app, _, sink = _app(serving, loader=exemplar_loader(generator_loader(1), store))
    try:
        with TestClient(app) as client:
            flow.wait_for(lambda: _routing(app)[0] == "0", 180, "the base model")
            flow.wait_for(feed.caught_up.is_set, 60, "the exemplar feed")

            def prompt_tokens() -> int:
                resp = client.post("/v1/chat/completions", json={"model": LINE, "messages": QUESTION,
                                                                  "max_tokens": 2})
                return resp.json()["usage"]["prompt_tokens"]

            before = prompt_tokens()
            label = annotation_pb2.AnnotationLabel(label_id="l-1", task_id="task-1", trace_id="t-1",
                                                   kind=annotation_pb2.ANNOTATION_KIND_CORRECT, is_final=True)
            label.labeller.type = annotation_pb2.LABELLER_TYPE_HUMAN
            label.corrected_messages.add(role="user", content="Where is my order 1234?")
            label.corrected_messages.add(role="assistant",
                                         content="Order 1234 has shipped and arrives within 3 business days.")
            started = time.monotonic()
            flow.produce(settings, "annotation.labels", [stamp(label, "annotation")], key=lambda e: e.task_id)
            flow.wait_for(lambda: len(store) == 1, 30, "the correction to reach the store")
            after = prompt_tokens()
            elapsed = time.monotonic() - started
            assert after > before + 10, (before, after)
            assert elapsed < 10
            unrelated = client.post("/v1/chat/completions", json={
                "model": LINE, "max_tokens": 2,
                "messages": [{"role": "user", "content": "Tell me a story about penguins in winter"}]})
            assert unrelated.status_code == 200
    finally:
        stop_feed()
        sink.close()
    traces = flow.read_events(settings, "traces.raw", "Trace", expect=3, settle_s=1.0)
    for trace in traces:  # traces keep the user's own conversation, not the prepended turns
        assert "Order 1234" not in " ".join(m.content for m in trace.messages[:-1])
