"""The real opentelemetry-sdk with its OTLP/HTTP exporter, instrumenting a small agent, into the
gateway; the Trace on traces.raw carries the messages, both tool steps and the failure."""

from __future__ import annotations

import json

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

from flywheel.events.codec import decode
from flywheel.v1 import common_pb2, trace_pb2

from .conftest import read_topic


class PaymentsDown(Exception):
    pass


def _agent(tracer) -> str:  # noqa: ANN001
    """A support agent: one model call asking for two tools; the refund tool fails."""
    with tracer.start_as_current_span("invoke_agent support") as agent:
        agent.set_attribute("gen_ai.operation.name", "invoke_agent")
        agent.set_attribute("gen_ai.agent.name", "support")
        agent.set_attribute("gen_ai.conversation.id", "conv-42")
        with tracer.start_as_current_span("chat support-assistant") as chat:
            chat.set_attribute("gen_ai.operation.name", "chat")
            chat.set_attribute("gen_ai.provider.name", "flywheel")
            chat.set_attribute("gen_ai.request.model", "support-assistant")
            chat.set_attribute("gen_ai.usage.input_tokens", 40)
            chat.set_attribute("gen_ai.system_instructions",
                               json.dumps([{"type": "text", "content": "You are Acme support."}]))
            chat.set_attribute("gen_ai.input.messages", json.dumps([
                {"role": "user", "parts": [{"type": "text", "content": "Refund order A-1042"}]}]))
            chat.set_attribute("gen_ai.output.messages", json.dumps([{
                "role": "assistant", "finish_reason": "tool_call", "parts": [
                    {"type": "tool_call", "id": "call_1", "name": "lookup_order",
                     "arguments": {"order_id": "A-1042"}},
                    {"type": "tool_call", "id": "call_2", "name": "issue_refund",
                     "arguments": {"order_id": "A-1042", "amount_eur": 49.9}}]}]))
        with tracer.start_as_current_span("execute_tool lookup_order") as tool:
            tool.set_attribute("gen_ai.operation.name", "execute_tool")
            tool.set_attribute("gen_ai.tool.name", "lookup_order")
            tool.set_attribute("gen_ai.tool.call.id", "call_1")
            tool.set_attribute("gen_ai.tool.call.arguments", '{"order_id": "A-1042"}')
            tool.set_attribute("gen_ai.tool.call.result", '{"status": "delivered", "refundable": true}')
        try:
            with tracer.start_as_current_span("execute_tool issue_refund") as tool:
                tool.set_attribute("gen_ai.operation.name", "execute_tool")
                tool.set_attribute("gen_ai.tool.name", "issue_refund")
                tool.set_attribute("gen_ai.tool.call.id", "call_2")
                tool.set_attribute("http.response.status_code", 502)
                raise PaymentsDown("payments API returned 502")
        except PaymentsDown as exc:
            agent.set_status(Status(StatusCode.ERROR, str(exc)))
            agent.set_attribute("error.type", "PaymentsDown")
        return format(agent.get_span_context().trace_id, "032x")


def test_otel_sdk_agent_run_becomes_one_trace(start_gateway, kafka_bootstrap) -> None:  # noqa: ANN001
    gw = start_gateway()
    exporter = OTLPSpanExporter(endpoint=f"{gw.base_url}/v1/otlp/v1/traces",
                                headers={"x-api-key": gw.key}, timeout=30)
    provider = TracerProvider(resource=Resource.create({"service.name": "acme-support"}))
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=200))
    tracer = provider.get_tracer("acme.agent")
    with tracer.start_as_current_span("GET /internal/health"):
        pass  # a span that is not GenAI: counted and skipped
    trace_id = _agent(tracer)
    assert provider.force_flush(30_000)
    provider.shutdown()

    [record] = read_topic(kafka_bootstrap, gw.topic("traces.raw"), {trace_id}, settle_s=1)
    trace = decode(record.value, trace_pb2.Trace)
    assert trace.trace_id == trace_id and trace.app_id == gw.app_id
    assert trace.source == trace_pb2.TRACE_SOURCE_OTLP
    assert [(m.role, m.tool_call_id) for m in trace.messages] == [
        ("system", ""), ("user", ""), ("assistant", ""), ("tool", "call_1"), ("tool", "call_2")]
    assert trace.messages[1].content == "Refund order A-1042"
    assert [c.function.name for c in trace.messages[2].tool_calls] == ["lookup_order", "issue_refund"]
    assert "delivered" in trace.messages[3].content and "502" in trace.messages[4].content

    calls = [s for s in trace.steps if s.kind == trace_pb2.STEP_KIND_TOOL_CALL]
    results = [s for s in trace.steps if s.kind == trace_pb2.STEP_KIND_TOOL_RESULT]
    assert [s.name for s in calls] == ["lookup_order", "issue_refund"] and len(results) == 2
    assert calls[0].status == trace_pb2.STEP_STATUS_OK and "A-1042" in calls[0].input
    failed = calls[1]
    assert failed.status == trace_pb2.STEP_STATUS_ERROR
    assert failed.error.type.endswith("PaymentsDown") and failed.error.http_status == 502
    assert "502" in failed.error.message
    assert [s.kind for s in trace.steps][0] == trace_pb2.STEP_KIND_MODEL_CALL
    assert all(s.latency_ms > 0 for s in calls)
    assert trace.outcome.status == trace_pb2.OUTCOME_STATUS_FAILURE
    assert trace.outcome.failure_source == common_pb2.FAILURE_SOURCE_SYSTEM
    assert trace.model.name == "support-assistant" and trace.session_id == "conv-42"
    assert trace.tags["otel.service_name"] == "acme-support"
