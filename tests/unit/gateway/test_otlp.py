"""OTLP GenAI spans -> Trace, with spans made by the real opentelemetry-sdk (no network).

Spans are recorded with an in-memory exporter, encoded with the OTLP exporter's own encoder
(the bytes an OTLP/HTTP exporter would send), and posted to the gateway app over fakes.
"""

from __future__ import annotations

import json

import pytest
from google.protobuf import json_format
from opentelemetry import trace as otel_trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from flywheel.events.codec import decode
from flywheel.services.gateway import otlp
from flywheel.v1 import common_pb2, trace_pb2


@pytest.fixture
def recorder():  # noqa: ANN201
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "shop-agent"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("test-agent"), exporter
    provider.shutdown()


def _agent_run(tracer, *, semconv: str = "attributes") -> None:  # noqa: ANN001
    """An agent: one model call asking for two tools; the second tool fails."""
    with tracer.start_as_current_span("invoke_agent shop") as agent:
        agent.set_attribute("gen_ai.operation.name", "invoke_agent")
        agent.set_attribute("gen_ai.agent.name", "shop")
        agent.set_attribute("gen_ai.conversation.id", "conv-7")
        with tracer.start_as_current_span("chat gpt-4o") as chat:
            chat.set_attribute("gen_ai.operation.name", "chat")
            chat.set_attribute("gen_ai.provider.name", "openai")
            chat.set_attribute("gen_ai.request.model", "gpt-4o")
            chat.set_attribute("gen_ai.response.model", "gpt-4o-2024-08-06")
            chat.set_attribute("gen_ai.response.id", "chatcmpl-1")
            chat.set_attribute("gen_ai.usage.input_tokens", 31)
            chat.set_attribute("gen_ai.usage.output_tokens", 12)
            calls = [{"type": "tool_call", "id": "c1", "name": "lookup_order",
                      "arguments": {"order_id": "A-1"}},
                     {"type": "tool_call", "id": "c2", "name": "refund", "arguments": {"amount": 5}}]
            if semconv == "attributes":
                chat.set_attribute("gen_ai.system_instructions", json.dumps(
                    [{"type": "text", "content": "Be brief."}]))
                chat.set_attribute("gen_ai.input.messages", json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": "Refund A-1"}]}]))
                chat.set_attribute("gen_ai.output.messages", json.dumps(
                    [{"role": "assistant", "parts": calls, "finish_reason": "tool_call"}]))
            else:
                chat.add_event("gen_ai.system.message", {"content": "Be brief."})
                chat.add_event("gen_ai.user.message", {"content": "Refund A-1"})
                chat.add_event("gen_ai.choice", {"index": 0, "finish_reason": "tool_calls",
                                                 "message": json.dumps({"role": "assistant", "tool_calls": [
                                                     {"id": c["id"], "type": "function", "function": {
                                                         "name": c["name"], "arguments": json.dumps(c["arguments"])}}
                                                     for c in calls]})})
        with tracer.start_as_current_span("execute_tool lookup_order") as tool:
            tool.set_attribute("gen_ai.operation.name", "execute_tool")
            tool.set_attribute("gen_ai.tool.name", "lookup_order")
            tool.set_attribute("gen_ai.tool.call.id", "c1")
            tool.set_attribute("gen_ai.tool.call.arguments", '{"order_id": "A-1"}')
            tool.set_attribute("gen_ai.tool.call.result", '{"status": "delivered"}')
        with tracer.start_as_current_span("execute_tool refund") as tool:
            tool.set_attribute("gen_ai.operation.name", "execute_tool")
            tool.set_attribute("gen_ai.tool.name", "refund")
            tool.set_attribute("gen_ai.tool.call.id", "c2")
            tool.set_attribute("error.type", "TimeoutError")
            tool.record_exception(TimeoutError("payments API timed out"))
            tool.set_status(Status(StatusCode.ERROR, "payments API timed out"))
        with tracer.start_as_current_span("GET /health"):
            pass  # not GenAI: skipped
        agent.set_status(Status(StatusCode.ERROR, "refund failed"))
        agent.set_attribute("error.type", "ToolError")


@pytest.mark.parametrize("semconv", ["attributes", "events"])
def test_an_agent_run_becomes_one_trace(recorder, semconv) -> None:  # noqa: ANN001
    tracer, exporter = recorder
    _agent_run(tracer, semconv=semconv)
    request = encode_spans(exporter.get_finished_spans())
    summary = otlp.summarize(otlp.request_spans(request))
    assert summary.skipped_spans == 1 and summary.genai_spans == 4
    [(trace_id, spans)] = summary.by_trace.items()
    assert trace_id in summary.complete
    trace = otlp.spans_to_trace(spans)

    assert trace.trace_id == trace_id and len(trace_id) == 32
    assert trace.source == trace_pb2.TRACE_SOURCE_OTLP
    assert [m.role for m in trace.messages] == ["system", "user", "assistant", "tool", "tool"]
    assert trace.messages[1].content == "Refund A-1"
    assert [c.id for c in trace.messages[2].tool_calls] == ["c1", "c2"]
    assert json.loads(trace.messages[2].tool_calls[0].function.arguments) == {"order_id": "A-1"}
    assert trace.messages[3].tool_call_id == "c1" and "delivered" in trace.messages[3].content
    assert trace.messages[4].tool_call_id == "c2" and "timed out" in trace.messages[4].content

    kinds = [(s.kind, s.name, s.status) for s in trace.steps]
    assert kinds == [
        (trace_pb2.STEP_KIND_MODEL_CALL, "gpt-4o", trace_pb2.STEP_STATUS_OK),
        (trace_pb2.STEP_KIND_TOOL_CALL, "lookup_order", trace_pb2.STEP_STATUS_OK),
        (trace_pb2.STEP_KIND_TOOL_RESULT, "lookup_order", trace_pb2.STEP_STATUS_OK),
        (trace_pb2.STEP_KIND_TOOL_CALL, "refund", trace_pb2.STEP_STATUS_TIMEOUT),
        (trace_pb2.STEP_KIND_TOOL_RESULT, "refund", trace_pb2.STEP_STATUS_TIMEOUT),
    ]
    failed = trace.steps[3]
    assert failed.error.type == "TimeoutError" and "timed out" in failed.error.message
    assert trace.steps[4].parent_step_id == failed.step_id
    assert all(s.latency_ms >= 0 for s in trace.steps)
    assert trace.outcome.status == trace_pb2.OUTCOME_STATUS_FAILURE
    assert trace.outcome.failure_source == common_pb2.FAILURE_SOURCE_SYSTEM
    assert trace.outcome.failure_kind == "toolerror"
    assert trace.model.name == "gpt-4o" and trace.model.version == "gpt-4o-2024-08-06"
    assert trace.session_id == "conv-7" and trace.request_id == "chatcmpl-1"
    assert trace.tags["otel.service_name"] == "shop-agent"
    assert trace.tags["usage.input_tokens"] == "31" and trace.tags["gen_ai.agent.name"] == "shop"
    assert trace.latency_ms > 0 and trace.started_at.seconds > 0


def test_openinference_attributes(recorder) -> None:  # noqa: ANN001
    tracer, exporter = recorder
    with tracer.start_as_current_span("agent") as root:
        root.set_attribute("openinference.span.kind", "AGENT")
        root.set_attribute("session.id", "s-1")
        root.set_attribute("user.id", "u-1")
        with tracer.start_as_current_span("llm") as llm:
            llm.set_attribute("openinference.span.kind", "LLM")
            llm.set_attribute("llm.model_name", "mistral-small")
            llm.set_attribute("llm.input_messages.0.message.role", "user")
            llm.set_attribute("llm.input_messages.0.message.content", "weather?")
            llm.set_attribute("llm.output_messages.0.message.role", "assistant")
            llm.set_attribute("llm.output_messages.0.message.tool_calls.0.tool_call.id", "t1")
            llm.set_attribute("llm.output_messages.0.message.tool_calls.0.tool_call.function.name",
                              "weather")
            llm.set_attribute(
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments",
                '{"city": "Oslo"}')
            llm.set_attribute("llm.tools.0.tool.json_schema", json.dumps(
                {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}))
        with tracer.start_as_current_span("weather") as tool:
            tool.set_attribute("openinference.span.kind", "TOOL")
            tool.set_attribute("tool.name", "weather")
            tool.set_attribute("input.value", '{"city": "Oslo"}')
            tool.set_attribute("output.value", "12C")
        with tracer.start_as_current_span("retrieve") as retriever:
            retriever.set_attribute("openinference.span.kind", "RETRIEVER")
            retriever.set_attribute("retrieval.documents.0.document.id", "d1")
            retriever.set_attribute("retrieval.documents.0.document.content", "Oslo is cold")
            retriever.set_attribute("retrieval.documents.0.document.score", 0.9)
        root.set_status(Status(StatusCode.OK))
    spans = otlp.request_spans(encode_spans(exporter.get_finished_spans()))
    trace = otlp.spans_to_trace(otlp.summarize(spans).by_trace[spans[0].trace_id])
    assert [m.role for m in trace.messages] == ["user", "assistant", "tool"]
    assert trace.messages[2].tool_call_id == "t1" and trace.messages[2].content == "12C"
    assert trace.messages[1].tool_calls[0].function.name == "weather"
    assert trace.model.name == "mistral-small"
    assert trace.tools[0].name == "weather" and json.loads(trace.tools[0].parameters_json)
    assert trace.context_documents[0].content == "Oslo is cold"
    assert trace.context_documents[0].score == pytest.approx(0.9)
    assert trace.session_id == "s-1" and trace.user_id == "u-1"
    assert trace.outcome.status == trace_pb2.OUTCOME_STATUS_SUCCESS
    assert [s.kind for s in trace.steps] == [trace_pb2.STEP_KIND_MODEL_CALL,
                                              trace_pb2.STEP_KIND_TOOL_CALL,
                                              trace_pb2.STEP_KIND_TOOL_RESULT]


def test_flattened_prompt_attributes(recorder) -> None:  # noqa: ANN001
    tracer, exporter = recorder
    with tracer.start_as_current_span("openai.chat") as span:
        span.set_attribute("gen_ai.system", "openai")
        span.set_attribute("gen_ai.request.model", "gpt-4o-mini")
        span.set_attribute("gen_ai.prompt.0.role", "user")
        span.set_attribute("gen_ai.prompt.0.content", "hello")
        span.set_attribute("gen_ai.completion.0.role", "assistant")
        span.set_attribute("gen_ai.completion.0.content", "hi there")
    spans = otlp.request_spans(encode_spans(exporter.get_finished_spans()))
    trace = otlp.spans_to_trace(spans)
    assert [(m.role, m.content) for m in trace.messages] == [("user", "hello"),
                                                             ("assistant", "hi there")]


def test_otlp_json_uses_hex_ids(recorder) -> None:  # noqa: ANN001
    tracer, exporter = recorder
    _agent_run(tracer)
    request = encode_spans(exporter.get_finished_spans())
    as_json = json_format.MessageToDict(request)
    for rs in as_json["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:  # OTLP/JSON: hex, not the base64 of the JSON mapping
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        import base64
                        span[key] = base64.b64decode(span[key]).hex()
    parsed = otlp.parse_json_request(json.dumps(as_json).encode())
    assert parsed == request
    with pytest.raises(otlp.OtlpDecodeError):
        otlp.parse_json_request(b"[1]")
    with pytest.raises(otlp.OtlpDecodeError):
        otlp.parse_protobuf_request(b"\xff\xff")


def test_gateway_endpoint_protobuf_and_json(gateway, recorder) -> None:  # noqa: ANN001
    tracer, exporter = recorder
    _agent_run(tracer)
    body = encode_spans(exporter.get_finished_spans()).SerializeToString()
    r = gateway.client.post("/v1/otlp/v1/traces", content=body,
                            headers=gateway.headers("application/x-protobuf"))
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-protobuf"
    [record] = gateway.writer.records
    trace = decode(record.value, trace_pb2.Trace)
    assert trace.app_id == gateway.app_id and record.key == trace.trace_id.encode()
    assert len(trace.steps) == 5
    again = gateway.client.post("/v1/otlp/v1/traces", content=body,
                                headers=gateway.headers("application/x-protobuf"))
    assert again.status_code == 200 and len(gateway.writer.records) == 1  # duplicate export
    bad = gateway.client.post("/v1/otlp/v1/traces", content=b"\xff\xff",
                              headers=gateway.headers("application/x-protobuf"))
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/x-protobuf"
    bad_json = gateway.client.post("/v1/otlp/v1/traces", content=b"{",
                                   headers=gateway.headers("application/json"))
    assert bad_json.status_code == 400 and bad_json.json()["code"] == 3
    text = gateway.client.get("/metrics").text
    assert 'flywheel_gateway_otlp_spans_total{outcome="skipped"} 2.0' in text


def test_spans_without_their_root_wait_and_are_joined(gateway, recorder) -> None:  # noqa: ANN001
    tracer, exporter = recorder
    _agent_run(tracer)
    finished = exporter.get_finished_spans()
    children = [s for s in finished if s.parent is not None]
    roots = [s for s in finished if s.parent is None]
    r = gateway.client.post("/v1/otlp/v1/traces", content=encode_spans(children).SerializeToString(),
                            headers=gateway.headers("application/x-protobuf"))
    assert r.status_code == 200 and gateway.writer.records == []
    assert len(gateway.coordination.held) == 1
    r = gateway.client.post("/v1/otlp/v1/traces", content=encode_spans(roots).SerializeToString(),
                            headers=gateway.headers("application/x-protobuf"))
    assert r.status_code == 200
    [record] = gateway.writer.records
    trace = decode(record.value, trace_pb2.Trace)
    assert len(trace.steps) == 5 and trace.outcome.status == trace_pb2.OUTCOME_STATUS_FAILURE
    assert gateway.coordination.held == {}


def test_orphan_spans_are_flushed_after_the_hold(gateway, recorder) -> None:  # noqa: ANN001
    import time

    tracer, exporter = recorder
    parent = otel_trace.SpanContext(trace_id=0xABC, span_id=0xDEF, is_remote=True,
                                    trace_flags=otel_trace.TraceFlags(1))
    ctx = otel_trace.set_span_in_context(otel_trace.NonRecordingSpan(parent))
    with tracer.start_as_current_span("chat m", context=ctx) as span:
        span.set_attribute("gen_ai.operation.name", "chat")
        span.set_attribute("gen_ai.request.model", "m")
        span.set_attribute("gen_ai.input.messages", json.dumps([{"role": "user", "parts": [
            {"type": "text", "content": "q"}]}]))
    body = encode_spans(exporter.get_finished_spans()).SerializeToString()
    assert gateway.client.post("/v1/otlp/v1/traces", content=body,
                               headers=gateway.headers("application/x-protobuf")).status_code == 200
    deadline = time.monotonic() + 10
    while not gateway.writer.records and time.monotonic() < deadline:
        time.sleep(0.1)
    [record] = gateway.writer.records
    assert decode(record.value, trace_pb2.Trace).messages[0].content == "q"
