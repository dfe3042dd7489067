"""The serving side of releases, traces and exemplars, without a broker or a model.

(Kept beside the exporter's unit tests: these adapters are the other half of the release
flow. Their broker tests are in tests/integration/serving.)
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from flywheel.events.envelope import stamp
from flywheel.services.serving.exemplars import (
    Exemplar,
    ExemplarGenerator,
    ExemplarStore,
    NgramEmbedder,
    exemplar_from_label,
    last_user_text,
    with_exemplars,
)
from flywheel.services.serving.kafka_wiring import (
    KafkaTraceSink,
    conversation_trace,
    fold_releases,
    to_release,
)
from flywheel.services.serving.ports import Release, ServedConversation
from flywheel.settings import Settings
from flywheel.v1 import annotation_pb2, common_pb2, models_pb2, trace_pb2


def _event(action: int, version: int, path: str = "", previous: int = 0, share: float = 0.0):  # noqa: ANN202
    return stamp(models_pb2.ModelRelease(model_line="shop", version=version, action=action,
                                         artifact_path=path, previous_version=previous,
                                         canary_share=share), "test")


def test_release_events_become_serving_releases() -> None:
    canary = to_release(_event(models_pb2.RELEASE_ACTION_CANARY, 2, "/a/2", 1, 0.25))
    assert (canary.action, canary.version, canary.artifact_dir, canary.canary_share) == \
        ("canary", "2", Path("/a/2"), 0.25)
    back = to_release(_event(models_pb2.RELEASE_ACTION_ROLLBACK, 2, "/a/1", 1))
    assert (back.action, back.version, back.artifact_dir) == ("rollback", "1", Path("/a/1"))
    base = to_release(_event(models_pb2.RELEASE_ACTION_ROLLBACK, 1, "", 0), lambda: Path("/base"))
    assert (base.version, base.artifact_dir) == ("0", Path("/base"))
    assert to_release(_event(models_pb2.RELEASE_ACTION_UNSPECIFIED, 1)) is None


def test_fold_rebuilds_release_then_canary() -> None:
    def rel(action: str, v: str) -> Release:
        return Release("shop", v, Path(f"/a/{v}"), action)

    history = [rel("canary", "1"), rel("promote", "1"), rel("canary", "2"), rel("rollback", "1"),
               rel("canary", "3"), Release("other", "9", Path("/x"), "promote")]
    out = fold_releases("shop", history)
    assert [(r.action, r.version) for r in out] == [("promote", "1"), ("canary", "3")]
    assert fold_releases("shop", [rel("canary", "2"), rel("promote", "2")])[0].version == "2"
    assert fold_releases("shop", []) == []


def _conversation(**overrides) -> ServedConversation:  # noqa: ANN003
    values = dict(
        request_id="req-1", model_line="shop", model_version="3", user="u-1",
        messages=[{"role": "system", "content": "sys"}, {"role": "user", "content": "Where is order 12?"}],
        choices=[{"index": 0, "message": {"role": "assistant", "content": "Order 12 has shipped."},
                  "finish_reason": "stop",
                  "logprob_stats": {"tokens": 5, "mean_logprob": -0.4, "min_logprob": -2.0}},
                 {"index": 1, "message": {"role": "assistant", "content": "No idea."},
                  "finish_reason": "stop",
                  "logprob_stats": {"tokens": 3, "mean_logprob": -1.5, "min_logprob": -3.0}}],
        params={"temperature": 0.7, "n": 2}, usage={"prompt_tokens": 9, "completion_tokens": 8},
        started_at=datetime(2026, 11, 21, tzinfo=UTC), latency_ms=12.5, stream=False,
        metadata={"session_id": "s-1", "channel": "web"},
    )
    values.update(overrides)
    return ServedConversation(**values)


def test_served_conversation_becomes_a_trace() -> None:
    trace = conversation_trace(_conversation())
    assert trace.source == trace_pb2.TRACE_SOURCE_SERVING
    assert (trace.trace_id, trace.request_id, trace.session_id, trace.user_id) == ("req-1", "req-1", "s-1", "u-1")
    assert (trace.model.name, trace.model.version) == ("shop", "3")
    assert [m.role for m in trace.messages] == ["system", "user", "assistant"]
    assert trace.messages[-1].content == "Order 12 has shipped."
    assert trace.logprobs.token_count == 5 and trace.logprobs.mean_logprob == -0.4
    assert [s.text for s in trace.logprobs.samples] == ["Order 12 has shipped.", "No idea."]
    assert trace.tags["meta.channel"] == "web" and trace.tags["param.n"] == "2"
    assert trace.envelope.producer == "serving" and trace.envelope.event_id
    with_trace = conversation_trace(_conversation(metadata={"trace_id": "t-9"}, choices=_conversation().choices[:1]))
    assert with_trace.trace_id == "t-9" and len(with_trace.logprobs.samples) == 0


def test_trace_sink_never_blocks_and_respects_opt_out() -> None:
    class SlowProducer:
        def send(self, *a, **k):  # noqa: ANN002, ANN003, ANN202
            raise RuntimeError("broker down")

        def flush(self, timeout=None) -> None:  # noqa: ANN001
            pass

        def close(self, timeout=None) -> None:  # noqa: ANN001
            pass

    sink = KafkaTraceSink(Settings(env="test"), max_queue=1, producer=SlowProducer())
    sink(_conversation(metadata={"flywheel_trace": "off"}))
    assert sink.skipped == 1
    for _ in range(50):
        sink(_conversation())
    sink.close(timeout_s=5)
    assert sink.sent + sink.failed + sink.dropped == 50
    assert sink.failed >= 1


# -- exemplars --------------------------------------------------------------------------------

def test_ngram_similarity_prefers_the_same_intent() -> None:
    emb = NgramEmbedder()
    vecs = emb.encode(["Where is my order 1234?", "Is order 98 on its way? Where is it?",
                       "What are your opening hours?"])
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2]


def test_store_search_threshold_capacity_and_replace() -> None:
    store = ExemplarStore(NgramEmbedder(), k=2, min_similarity=0.3, capacity=2)
    store.add(Exemplar("a", "Where is my order 1234?", "Order 1234 has shipped."))
    store.add(Exemplar("b", "What are your opening hours?", "We are open 9 to 6."))
    found = store.search("Where is my order 55?")
    assert found[0][0].key == "a"
    assert all(score >= 0.3 for _, score in found)
    store.add(Exemplar("a", "Where is my order 1234?", "Order 1234 is on its way."))
    assert len(store) == 2 and store.search("Where is my order 7?")[0][0].answer.endswith("on its way.")
    store.add(Exemplar("c", "How much is shipping?", "Free over 50."))
    assert len(store) == 2 and "b" not in {e.key for e, _ in store.search("opening hours", k=5)}
    assert store.search("   ") == []


def test_exemplar_turns_go_after_the_system_prompt() -> None:
    msgs = [{"role": "system", "content": "sys"}, {"role": "user", "content": "q"}]
    out = with_exemplars(msgs, [Exemplar("a", "q1", "a1"), Exemplar("b", "q2", "a2")])
    assert [m["content"] for m in out] == ["sys", "q1", "a1", "q2", "a2", "q"]
    assert last_user_text(msgs) == "q"
    assert last_user_text([*msgs, {"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}]) is None


def test_generator_wrapper_prepends_only_when_similar() -> None:
    class FakeGenerator:
        max_positions = 10_000
        pad_id = 0

        def __init__(self) -> None:
            self.rendered: list = []

        def render_chat(self, messages, tools=None):  # noqa: ANN001, ANN201
            self.rendered.append([m["content"] for m in messages])
            return list(range(len(messages)))

    store = ExemplarStore(NgramEmbedder(), k=2, min_similarity=0.4)
    store.add(Exemplar("a", "Where is my order 1234?", "Order 1234 has shipped."))
    inner = FakeGenerator()
    gen = ExemplarGenerator(inner, store)
    gen.render_chat([{"role": "user", "content": "Where is my order 777?"}])
    gen.render_chat([{"role": "user", "content": "Tell me a joke about penguins"}])
    gen.render_chat([{"role": "user", "content": "Where is my order 777?"}], tools=[{"type": "function"}])
    assert inner.rendered[0] == ["Where is my order 1234?", "Order 1234 has shipped.", "Where is my order 777?"]
    assert inner.rendered[1] == ["Tell me a joke about penguins"]
    assert inner.rendered[2] == ["Where is my order 777?"]
    assert gen.pad_id == 0  # everything else is the wrapped generator's
    off = ExemplarGenerator(FakeGenerator(), store, enabled=lambda: False)
    assert off.render_chat([{"role": "user", "content": "Where is my order 777?"}]) == [0]


def _label(kind: int, labeller: int = annotation_pb2.LABELLER_TYPE_HUMAN, **fields):  # noqa: ANN003, ANN202
    label = annotation_pb2.AnnotationLabel(label_id="l1", task_id="task-1", trace_id="t1", kind=kind, **fields)
    label.labeller.type = labeller
    return label


def test_labels_become_exemplars() -> None:
    label = _label(annotation_pb2.ANNOTATION_KIND_CORRECT)
    label.corrected_messages.add(role="system", content="sys")
    label.corrected_messages.add(role="user", content="Where is order 12?")
    label.corrected_messages.add(role="assistant", content="Order 12 has shipped.")
    ex = exemplar_from_label(label)
    assert (ex.key, ex.question, ex.answer, ex.source) == ("task-1", "Where is order 12?",
                                                           "Order 12 has shipped.", "correction")
    judge = _label(annotation_pb2.ANNOTATION_KIND_CORRECT, annotation_pb2.LABELLER_TYPE_JUDGE)
    judge.corrected_messages.extend(label.corrected_messages)
    assert exemplar_from_label(judge) is None

    trace = trace_pb2.Trace(trace_id="t1")
    trace.messages.add(role="user", content="When are you open?")
    trace.messages.add(role="assistant", content="We are open Monday to Saturday.")
    top = _label(annotation_pb2.ANNOTATION_KIND_RATE, rating=4)
    assert exemplar_from_label(top, trace).source == "rating"
    assert exemplar_from_label(_label(annotation_pb2.ANNOTATION_KIND_RATE, rating=2), trace) is None
    assert exemplar_from_label(top, None) is None
    unusable = _label(annotation_pb2.ANNOTATION_KIND_CORRECT, unusable=True)
    assert exemplar_from_label(unusable) is None
    tool = _label(annotation_pb2.ANNOTATION_KIND_CORRECT)
    tool.corrected_messages.add(role="user", content="q")
    tool.corrected_messages.add(role="assistant", content="",
                                tool_calls=[common_pb2.ToolCall(id="c", type="function")])
    assert exemplar_from_label(tool) is None


def test_serving_main_wires_kafka_only_when_a_broker_is_configured(tmp_path: Path) -> None:
    from flywheel.services.serving.kafka_wiring import KafkaReleaseSource
    from flywheel.services.serving.main import build_wiring
    from flywheel.services.serving.settings import ServingSection, ServingSettings

    plain = build_wiring(ServingSettings(env="test", data_dir=tmp_path))
    assert (plain.release_source, plain.trace_sink, plain.loader) == (None, None, None)

    wired = build_wiring(ServingSettings(env="test", data_dir=tmp_path, kafka_bootstrap="127.0.0.1:1"))
    assert isinstance(wired.release_source, KafkaReleaseSource) and isinstance(wired.trace_sink, KafkaTraceSink)
    assert wired.release_source.line == "shop-assistant"
    wired.close()  # nothing was sent: closing must not wait for a broker

    off = build_wiring(ServingSettings(env="test", data_dir=tmp_path, kafka_bootstrap="127.0.0.1:1",
                                       serving=ServingSection(kafka=False)))
    assert off.release_source is None

    with_exemplars = build_wiring(ServingSettings(
        env="test", data_dir=tmp_path, serving=ServingSection(exemplars=True, exemplars_embedder="ngram")))
    assert callable(with_exemplars.loader) and with_exemplars.release_source is None
    assert ServingSection().exemplars is False  # off by default (measured; see the exporter README)
