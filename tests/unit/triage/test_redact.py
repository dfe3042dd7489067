"""PII redaction: every detector, near-misses, placeholders, fail-closed limits, whole events."""

from __future__ import annotations

import random

import pytest
from google.protobuf import struct_pb2

from flywheel.services.triage import samples
from flywheel.services.triage.logic.redact import (
    CustomPattern,
    RedactionError,
    Redactor,
    bsn_ok,
    dni_ok,
    iban_ok,
    luhn_ok,
    nir_ok,
    placeholder,
    redact_feedback_event,
    redact_trace,
)
from flywheel.v1 import feedback_pb2, trace_pb2


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor()


@pytest.mark.parametrize("text,kind,value", [
    ("write to jane.doe+shop@example.co.uk today", "email", "jane.doe+shop@example.co.uk"),
    ("contact: o'brien@example.ie", "email", "o'brien@example.ie"),
    ("email me at sam (at) northwind (dot) com", "email", "sam (at) northwind (dot) com"),
    ("call +1 (415) 555-0132 now", "phone", "+1 (415) 555-0132"),
    ("ring 020 7946 0321 please", "phone", "020 7946 0321"),
    ("+49 (0)30 12345678 is my office", "phone", "+49 (0)30 12345678"),
    ("call me on 555 0199", "phone", "555 0199"),
    ("card 4111 1111 1111 1111 declined", "credit_card", "4111 1111 1111 1111"),
    ("amex 3782-822463-10005", "credit_card", "3782-822463-10005"),
    ("IBAN DE89 3704 0044 0532 0130 00 please", "iban", "DE89 3704 0044 0532 0130 00"),
    ("iban gb82west12345698765432", "iban", "gb82west12345698765432"),
    ("from 203.0.113.7 at noon", "ip_address", "203.0.113.7"),
    ("from 2001:db8::8a2e:370:7334 at noon", "ip_address", "2001:db8::8a2e:370:7334"),
    ("SSN 078-05-1120", "national_id", "078-05-1120"),
    ("NINO AB123456C", "national_id", "AB123456C"),
    ("DNI 12345678Z", "national_id", "12345678Z"),
    ("CF RSSMRA85T10A562S", "national_id", "RSSMRA85T10A562S"),
    ("Mijn BSN is 111222333", "national_id", "111222333"),
    ("key sk-proj-abcdefghijklmnopqrstuvwxyz0123456789", "api_key",
     "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"),
    ("AKIAIOSFODNN7EXAMPLE in the log", "api_key", "AKIAIOSFODNN7EXAMPLE"),
    ("token ghp_abcdefghijklmnopqrstuvwxyz0123456789", "api_key",
     "ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
    ("Authorization: Bearer abcdef0123456789abcdef", "token", "abcdef0123456789abcdef"),
    ("password: hunter2", "token", "hunter2"),
    ("postgres://admin:s3cr3t@db:5432/x", "token", "s3cr3t"),
])
def test_detects_each_kind(redactor: Redactor, text: str, kind: str, value: str) -> None:
    spans = [(text[s.start:s.end], s.kind) for s in redactor.find(text)]
    assert (value, kind) in spans
    out, counts = redactor.redact(text)
    assert value not in out and placeholder(kind) in out
    assert counts[kind] == 1


@pytest.mark.parametrize("text", [
    "Where is my order 4821?",
    "Order 1234 was placed on 2024-03-15 at 10:30 and costs $1,299.99.",
    "Your order 98765 ships on 15/03/2024.",
    "Please update to version 2.4.1 (build 1.0.0.1234).",
    "commit 9fceb02d0ae598e95dc970b74767f19372d61af8 fixed it",
    "trace 3f2b1c4e-8d7a-4e2b-9c1d-5a6b7c8d9e0f was slow",
    "4111111111111112 fails the Luhn check",
    "Tracking 1Z999AA10123456784",
    "Your password is incorrect.",
    "The token limit is 4096 tokens.",
    "SKU 400-12345-678 is back",
    "icon@2x.png is missing",
    "unix time 1700000000",
    "version 1.2.3.4 is out",
])
def test_near_misses_survive(redactor: Redactor, text: str) -> None:
    out, counts = redactor.redact(text)
    assert out == text and counts == {}


def test_validators() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("DE89 3704 0044 0532 0130 00") and not iban_ok("DE88 3704 0044 0532 0130 00")
    assert dni_ok("12345678Z") and not dni_ok("12345678A")
    assert bsn_ok("111222333") and not bsn_ok("111222334")
    assert nir_ok("1 85 05 78 006 084 91") and not nir_ok("1 85 05 78 006 084 36")


def test_redaction_is_idempotent(redactor: Redactor) -> None:
    text = "Mail a.b@example.com, call +44 20 7946 0958, card 4111-1111-1111-1111."
    once, counts = redactor.redact(text)
    twice, again = redactor.redact(once)
    assert twice == once and again == {}
    assert counts == {"email": 1, "phone": 1, "credit_card": 1}


def test_counts_repeated_values(redactor: Redactor) -> None:
    out, counts = redactor.redact("a@example.com and b@example.com")
    assert out == "[EMAIL] and [EMAIL]" and counts == {"email": 2}


def test_custom_patterns() -> None:
    red = Redactor([CustomPattern("employee_id", r"EMP-\d{6}")])
    out, counts = red.redact("ask EMP-123456 about order 55")
    assert out == "ask [EMPLOYEE_ID] about order 55" and counts == {"employee_id": 1}


@pytest.mark.parametrize("pattern", [CustomPattern("Bad Name", "x"), CustomPattern("ok_name", "(")])
def test_bad_custom_patterns_are_rejected(pattern: CustomPattern) -> None:
    with pytest.raises(RedactionError):
        Redactor([pattern])


def test_too_long_text_fails_closed() -> None:
    red = Redactor(max_chars=100)
    with pytest.raises(RedactionError):
        red.redact("x" * 101)


def test_redact_trace_covers_every_text_field(redactor: Redactor) -> None:
    rng = random.Random(1)
    trace = samples.agent_trace(rng, failure="tool_timeout")
    email = "jo@example.com"
    trace.messages[1].content += f" {email}"
    trace.messages[2].tool_calls[0].function.arguments = f'{{"email": "{email}"}}'
    doc = trace.context_documents.add(title=email, content=f"customer {email}")
    doc.metadata.update({"owner": email, "nested": {"list": [email]}})
    trace.steps.add(name="lookup", input=email, output=email,
                    error=trace_pb2.StepError(message=f"no user {email}"))
    trace.outcome.detail = f"failed for {email}"
    trace.feedback.add(comment=email, corrected_answer=email)
    trace.logprobs.samples.add(text=email)
    trace.tags["contact"] = email
    redacted, counts = redact_trace(trace, redactor)
    assert email.encode() not in redacted.SerializeToString()
    assert counts["email"] == 14
    assert email in trace.messages[1].content  # the input is not modified


def test_unknown_fields_with_pii_are_dropped(redactor: Redactor) -> None:
    trace = trace_pb2.Trace(trace_id="t1")
    # Field 99 (unknown to this version) carrying an e-mail address.
    raw = trace.SerializeToString() + b"\x9a\x06" + bytes([17]) + b"leak@example.com!"
    parsed = trace_pb2.Trace()
    parsed.ParseFromString(raw)
    redacted, counts = redact_trace(parsed, redactor)
    assert b"leak@example.com" not in redacted.SerializeToString()
    assert counts["unknown_fields_dropped"] == 1
    clean = trace_pb2.Trace()
    clean.ParseFromString(trace.SerializeToString() + b"\x9a\x06\x05hello")
    kept, counts = redact_trace(clean, redactor)
    assert kept.SerializeToString() == clean.SerializeToString() and counts == {}


def test_redact_feedback_event(redactor: Redactor) -> None:
    event = samples.feedback_event("t1", "correction", correction="mail me at x@example.com",
                                   comment="my card 4111 1111 1111 1111")
    out, counts = redact_feedback_event(event, redactor)
    assert out.feedback.corrected_answer == "mail me at [EMAIL]"
    assert counts == {"email": 1, "credit_card": 1}
    assert out.envelope.event_id == event.envelope.event_id


def test_struct_values_are_redacted(redactor: Redactor) -> None:
    trace = trace_pb2.Trace()
    doc = trace.context_documents.add()
    doc.metadata.update({"a": "x@example.com", "b": 3})
    out, counts = redact_trace(trace, redactor)
    assert out.context_documents[0].metadata["a"] == "[EMAIL]"
    assert isinstance(out.context_documents[0].metadata, struct_pb2.Struct)
    assert counts == {"email": 1}


def test_feedback_without_text_is_untouched(redactor: Redactor) -> None:
    event = feedback_pb2.FeedbackEvent(trace_id="t", feedback=feedback_pb2.Feedback(kind=1))
    out, counts = redact_feedback_event(event, redactor)
    assert out == event and counts == {}
