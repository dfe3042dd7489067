"""Write the golden samples of the current schema version: tests/golden/v<N>/<Event>.json + .bin.

Golden samples are written once per schema version and then committed and never rewritten: the
contract tests check that the committed bytes still decode, with today's bindings, to the
committed JSON. Run this only to create the samples of a new version directory::

    .venv/bin/python tests/golden/make_golden.py            # refuses to overwrite
    .venv/bin/python tests/golden/make_golden.py --force    # only while v<N> is unreleased
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from flywheel.events.codec import EVENT_CLASSES, PACKAGE, encode, from_dict, to_json

GOLDEN_DIR = Path(__file__).resolve().parent
VERSION = "v1"

T0 = "2025-03-14T09:26:53.589Z"
T1 = "2025-03-14T09:26:54.120Z"
T2 = "2025-03-14T09:26:55.870Z"
T3 = "2025-03-14T09:27:01.250Z"
T4 = "2025-03-14T09:31:40Z"
T5 = "2025-03-15T09:26:53Z"
T6 = "2025-03-16T02:00:00Z"

TRACE_ID = "tr_01HQ7ZK9M3V4X5Y6Z7A8B9C0D1"
USER = "u_5f2c9a41e7"
APP = "acme-support"


def _envelope(event: str, n: int, producer: str, trace_id: str = TRACE_ID, when: str = T3) -> dict:
    return {
        "event_id": f"0f8b6c1e-2d3a-4b5c-8d9e-{n:012d}",
        "event_type": f"flywheel.v1.{event}",
        "schema_version": 1,
        "occurred_at": when,
        "producer": producer,
        "trace_id": trace_id,
        "app_id": APP,
    }


MODEL = {"name": "support-assistant", "version": "7"}
CANARY = {"name": "support-assistant", "version": "8"}

TOOLS = [
    {
        "name": "lookup_order",
        "description": "Find an order by its number and return status, items and refund state.",
        "parameters_json": '{"type":"object","properties":{"order_id":{"type":"string"}},'
                           '"required":["order_id"]}',
    },
    {
        "name": "issue_refund",
        "description": "Refund an order in full or in part.",
        "parameters_json": '{"type":"object","properties":{"order_id":{"type":"string"},'
                           '"amount_eur":{"type":"number"}},"required":["order_id"]}',
    },
]

PROMPT = [
    {"role": "system", "name": "policy",
     "content": "You are Acme's support assistant. Use the tools; never promise refunds you "
                "have not issued."},
    {"role": "user", "content": "Hi, I'd like a refund for order A-1042, the kettle arrived "
                                "broken. Email me at [EMAIL]."},
]

ASSISTANT_FINAL = {
    "role": "assistant",
    "content": "I've refunded the full €49.90 for order A-1042. You'll see it on your card "
               "within 5 business days.",
}

MESSAGES = PROMPT + [
    {"role": "assistant", "content": "",
     "tool_calls": [{"id": "call_1", "type": "function",
                     "function": {"name": "lookup_order", "arguments": '{"order_id":"A-1042"}'}}]},
    {"role": "tool", "tool_call_id": "call_1", "name": "lookup_order",
     "content": '{"status":"delivered","total_eur":49.9,"refundable":true}'},
    {"role": "assistant", "content": "",
     "tool_calls": [{"id": "call_2", "type": "function",
                     "function": {"name": "issue_refund",
                                  "arguments": '{"order_id":"A-1042","amount_eur":49.9}'}}]},
    {"role": "tool", "tool_call_id": "call_2", "content": '{"refund_id":"R-77","ok":true}'},
    ASSISTANT_FINAL,
]

ANSWER_B = {"role": "assistant",
            "content": "Sorry about the kettle! I have issued a refund of €49.90 for A-1042."}

RATINGS = {"helpfulness": 6, "correctness": 7, "style": 5}


def _raw_messages() -> list[dict]:
    raw = copy.deepcopy(MESSAGES)
    raw[1]["content"] = raw[1]["content"].replace("[EMAIL]", "jane.doe@example.com")
    return raw


def trace() -> dict:
    """The trace as ingested: raw user text, a timed-out tool call, logprobs, tags."""
    return {
        "envelope": _envelope("Trace", 1, "gateway", when=T3),
        "trace_id": TRACE_ID,
        "session_id": "s_8c1d",
        "user_id": USER,
        "app_id": APP,
        "request_id": "req_3",
        "source": "TRACE_SOURCE_GATEWAY",
        "model": MODEL,
        "messages": _raw_messages(),
        "tools": TOOLS,
        "context_documents": [
            {"id": "kb-118", "title": "Refund policy",
             "content": "Damaged items are refunded in full within 30 days of delivery.",
             "score": 0.87, "source": "kb://policies",
             "metadata": {"lang": "en", "updated": "2025-01-02", "chunk": 3}},
            {"id": "kb-204", "title": "Shipping times", "content": "Orders ship in 2 days.",
             "score": 0.31, "source": "kb://shipping"},
        ],
        "steps": [
            {"step_id": "st_1", "kind": "STEP_KIND_PLAN", "name": "plan",
             "input": "refund request, damaged item",
             "output": "1. look up order 2. refund if eligible", "status": "STEP_STATUS_OK",
             "latency_ms": 412.5, "started_at": T0},
            {"step_id": "st_2", "kind": "STEP_KIND_TOOL_CALL", "name": "lookup_order",
             "input": '{"order_id":"A-1042"}', "status": "STEP_STATUS_TIMEOUT",
             "error": {"type": "TimeoutError", "message": "orders-api did not answer in 2s",
                       "http_status": 504},
             "latency_ms": 2000.0, "started_at": T1, "parent_step_id": "st_1"},
            {"step_id": "st_3", "kind": "STEP_KIND_TOOL_RESULT", "name": "lookup_order",
             "output": '{"status":"delivered","total_eur":49.9,"refundable":true}',
             "status": "STEP_STATUS_OK", "latency_ms": 180.0, "started_at": T2,
             "parent_step_id": "st_2"},
            {"step_id": "st_4", "kind": "STEP_KIND_MODEL_CALL", "name": "support-assistant@7",
             "input": "messages[0:6]", "output": ASSISTANT_FINAL["content"],
             "status": "STEP_STATUS_OK", "latency_ms": 950.25, "started_at": T2},
        ],
        "outcome": {"status": "OUTCOME_STATUS_FAILURE", "failure_source": "FAILURE_SOURCE_SYSTEM",
                    "failure_kind": "tool_timeout",
                    "detail": "first lookup_order call timed out; the retry succeeded"},
        "feedback": [
            {"kind": "FEEDBACK_KIND_THUMBS", "thumbs": "THUMBS_UP", "given_at": T3},
            {"kind": "FEEDBACK_KIND_RATING", "ratings": RATINGS, "comment": "quick and clear",
             "given_at": T3},
        ],
        "logprobs": {
            "token_count": 31, "mean_logprob": -0.42, "min_logprob": -3.75, "mean_entropy": 0.61,
            "samples": [
                {"text": "I've refunded €49.90 for A-1042.", "mean_logprob": -0.38},
                {"text": "I can't issue refunds, please contact billing.", "mean_logprob": -1.9},
            ],
        },
        "tags": {"channel": "web", "locale": "en-GB", "experiment": "canary-8"},
        "started_at": T0,
        "latency_ms": 7660.5,
    }


def redacted_trace() -> dict:
    """The trace after triage's PII redaction (the email became [EMAIL])."""
    t = trace()
    t["messages"] = copy.deepcopy(MESSAGES)
    return t


def feedback_event() -> dict:
    return {
        "envelope": _envelope("FeedbackEvent", 2, "gateway", when=T4),
        "feedback_id": "fb_91",
        "trace_id": TRACE_ID,
        "user_id": USER,
        "request_id": "req_3",
        "feedback": {
            "kind": "FEEDBACK_KIND_CORRECTION",
            "thumbs": "THUMBS_DOWN",
            "ratings": {"helpfulness": 3, "correctness": 2, "style": 6},
            "comment": "it should mention the return label",
            "corrected_answer": "I've refunded €49.90 for A-1042. No need to send the kettle back.",
            "preference": {"request_id": "pr_12", "chosen": "CHOICE_B"},
            "given_at": T4,
        },
    }


def triage_decision() -> dict:
    return {
        "envelope": _envelope("TriageDecision", 3, "triage", when=T4),
        "decision_id": "td_2",
        "trace_id": TRACE_ID,
        "revision": 2,
        "supersedes_decision_id": "td_1",
        "route": "ROUTE_ANNOTATE",
        "scores": {"quality": 0.74, "feedback": 0.5, "uncertainty": 0.66},
        "reasons": ["late correction feedback", "high disagreement over k=5 samples"],
        "policy_version": "triage-2025.03.1",
        "priority": 0.83,
        "intent": "billing.refund",
        "trace": redacted_trace(),
        "duplicate_of": "tr_01HQ7ZJ2AAAAAAAAAAAAAAAAAA",
        "pii_counts": {"email": 1, "phone": 0},
        "uncertainty": {"k": 5, "disagreement": 0.4, "entropy": 0.95, "model_unavailable": True},
        "failure_source": "FAILURE_SOURCE_SYSTEM",
        "failure_kind": "tool_timeout",
    }


def preference_request() -> dict:
    return {
        "envelope": _envelope("PreferenceRequest", 4, "triage", when=T4),
        "request_id": "pr_12",
        "trace_id": TRACE_ID,
        "user_id": USER,
        "prompt": PROMPT,
        "answer_a": {"answer_id": "ans_a", "messages": [ASSISTANT_FINAL], "model": MODEL},
        "answer_b": {"answer_id": "ans_b", "messages": [ANSWER_B], "model": CANARY},
        "expires_at": T5,
    }


def preference_answer() -> dict:
    return {
        "envelope": _envelope("PreferenceAnswer", 5, "preferences", when=T4),
        "request_id": "pr_12",
        "trace_id": TRACE_ID,
        "user_id": USER,
        "chosen": "CHOICE_B",
        "chosen_model": CANARY,
        "rejected_model": MODEL,
        "position_of_chosen": 1,
        "reason": "warmer tone",
        "ratings_a": {"helpfulness": 5, "correctness": 7, "style": 3},
        "ratings_b": {"helpfulness": 6, "correctness": 7, "style": 6},
        "answered_at": T4,
        "prompt": PROMPT,
        "chosen_messages": [ANSWER_B],
        "rejected_messages": [ASSISTANT_FINAL],
    }


def annotation_task() -> dict:
    return {
        "envelope": _envelope("AnnotationTask", 6, "triage", when=T4),
        "task_id": "at_55",
        "trace_id": TRACE_ID,
        "decision_id": "td_2",
        "kind": "ANNOTATION_KIND_PAIRWISE",
        "priority": 0.83,
        "required_annotators": 2,
        "guideline_version": "g-4",
        "reasons": ["high disagreement over k=5 samples"],
        "intent": "billing.refund",
        "trace": redacted_trace(),
        "candidates": [
            {"answer_id": "ans_a", "messages": [ASSISTANT_FINAL], "model": MODEL},
            {"answer_id": "ans_b", "messages": [ANSWER_B], "model": CANARY},
        ],
    }


def annotation_label() -> dict:
    return {
        "envelope": _envelope("AnnotationLabel", 7, "annotation", when=T4),
        "label_id": "al_9",
        "task_id": "at_55",
        "trace_id": TRACE_ID,
        "kind": "ANNOTATION_KIND_PAIRWISE",
        "labeller": {"id": "judge-qwen", "type": "LABELLER_TYPE_JUDGE", "model_name": "qwen2.5-7b"},
        "rating": 0,
        "corrected_messages": PROMPT + [ANSWER_B],
        "choice": "CHOICE_TIE",
        "failure_source": "FAILURE_SOURCE_MODEL",
        "failure_kind": "wrong_tool",
        "unusable": True,
        "reason": "both answers skip the return-label question",
        "guideline_version": "g-4",
        "is_final": True,
        "prompt_version": "judge-pairwise-3",
        "labelled_at": T4,
    }


LINEAGE = {
    "trace_ids": [TRACE_ID, "tr_01HQ7ZJ2AAAAAAAAAAAAAAAAAA"],
    "topic": "flywheel.annotation.labels.v1",
    "partition": 2,
    "offset": "1234567890123",
    "labeller_ids": ["judge-qwen", "ann_17"],
    "user_ids": [USER],
    "event_ids": ["0f8b6c1e-2d3a-4b5c-8d9e-000000000007"],
}


def sft_example() -> dict:
    return {
        "envelope": _envelope("SftExample", 8, "curator", when=T4),
        "example_id": "sft_301",
        "content_hash": "9b74c9897bac770ffc029102a200c5de4a1f0e7b6b1f7e2f5b4e1a3c2d1e0f9a",
        "messages": MESSAGES,
        "tools": TOOLS,
        "masks": [{"message_index": 6, "char_start": 0, "char_end": 47, "weight": 0.0},
                  {"message_index": 6, "char_start": 48, "char_end": 98, "weight": 0.5}],
        "source": "agent_fix",
        "transforms": ["pam", "tool_call_format"],
        "intent": "billing.refund",
        "lineage": LINEAGE,
    }


def dpo_example() -> dict:
    return {
        "envelope": _envelope("DpoExample", 9, "curator", when=T4),
        "example_id": "dpo_88",
        "content_hash": "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
        "prompt": PROMPT,
        "chosen": [ANSWER_B],
        "rejected": [ASSISTANT_FINAL],
        "tools": TOOLS,
        "chosen_model": CANARY,
        "rejected_model": MODEL,
        "source": "user_preference",
        "transforms": ["prompt_erasure"],
        "intent": "billing.refund",
        "lineage": LINEAGE,
    }


def eval_example() -> dict:
    return {
        "envelope": _envelope("EvalExample", 10, "curator", when=T4),
        "example_id": "ev_7",
        "content_hash": "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9",
        "prompt": PROMPT,
        "reference": [ASSISTANT_FINAL],
        "tools": TOOLS,
        "kind": "EVAL_KIND_MODEL",
        "intent": "billing.refund",
        "metric": "tool_call_match",
        "lineage": LINEAGE,
    }


def dataset_batch() -> dict:
    return {
        "envelope": _envelope("DatasetBatch", 11, "curator", trace_id="", when=T6),
        "batch_id": "support-assistant-b0009",
        "model_line": "support-assistant",
        "version": 9,
        "sft_path": "var/artifacts/sha256/9b/9b74c989.../sft.jsonl",
        "dpo_path": "var/artifacts/sha256/2c/2c26b46b.../dpo.jsonl",
        "manifest_path": "var/artifacts/sha256/4e/4e07408562.../manifest.json",
        "content_hash": "4e07408562bedb8b60ce05c1decfe3ad16b72230967de01f640b7e4729b49fce",
        "eval_set_path": "var/artifacts/sha256/fc/fcde2b2e.../eval.jsonl",
        "eval_set_hash": "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9",
        "counts": {"sft": "512", "dpo": "128", "replay": "64"},
        "replay_share": 0.1,
        "created_at": T6,
    }


def model_candidate() -> dict:
    return {
        "envelope": _envelope("ModelCandidate", 12, "trainer", trace_id="", when=T6),
        "model_line": "support-assistant",
        "version": 8,
        "parent_version": 7,
        "base_model": "var/models/tiny-llama",
        "adapter_path": "var/artifacts/adapters/support-assistant/8",
        "merged_path": "var/artifacts/merged/support-assistant/8",
        "batch_ids": ["support-assistant-b0008", "support-assistant-b0009"],
        "metrics": {"eval.judge_score": 0.71, "eval.loss": 1.42, "forgetting.b0003": 0.02},
        "gate": {"passed": True, "reasons": ["eval.judge_score 0.71 >= 0.68",
                                             "forgetting 0.02 <= 0.05"]},
        "status": "gated",
    }


def model_release() -> dict:
    return {
        "envelope": _envelope("ModelRelease", 13, "exporter", trace_id="", when=T6),
        "release_id": "rel_8_canary",
        "model_line": "support-assistant",
        "version": 8,
        "action": "RELEASE_ACTION_CANARY",
        "artifact_path": "var/artifacts/onnx/support-assistant/8/model.onnx",
        "artifact_hash": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "canary_share": 0.1,
        "actor": "exporter",
        "reason": "gate passed; parity max abs diff 2.1e-4",
        "previous_version": 7,
    }


def dead_letter() -> dict:
    return {
        "envelope": _envelope("DeadLetter", 14, "triage", when=T4),
        "source_topic": "flywheel.traces.raw.v1",
        "partition": 4,
        "offset": "98765",
        "key": "dHJfMDFIUTdaSzlNM1Y0WDVZNlo3QThCOUMwRDE=",
        "value": "CgASAP8=",
        "error_type": "EventDecodeError",
        "error_message": "flywheel.v1.Trace: invalid protobuf (5 bytes): Error parsing message",
        "service": "triage",
        "failed_at": T4,
        "attempt": 3,
    }


def pipeline_health() -> dict:
    return {
        "envelope": _envelope("PipelineHealth", 15, "triage", trace_id="", when=T4),
        "service": "triage",
        "instance": "triage-5d9f7-abcde",
        "counters": {"processed": "1200", "deadlettered": "3", "routed.annotate": "41"},
        "gauges": {"lag": 12.0, "batch_fill": 0.4},
        "window_seconds": 60.0,
    }


SAMPLES = {
    "Trace": trace,
    "FeedbackEvent": feedback_event,
    "TriageDecision": triage_decision,
    "PreferenceRequest": preference_request,
    "PreferenceAnswer": preference_answer,
    "AnnotationTask": annotation_task,
    "AnnotationLabel": annotation_label,
    "SftExample": sft_example,
    "DpoExample": dpo_example,
    "EvalExample": eval_example,
    "DatasetBatch": dataset_batch,
    "ModelCandidate": model_candidate,
    "ModelRelease": model_release,
    "DeadLetter": dead_letter,
    "PipelineHealth": pipeline_health,
}


_TYPE_NAMES = {
    value: name[len("TYPE_"):].lower()
    for name, value in vars(FieldDescriptor).items()
    if name.startswith("TYPE_")
}


def _walk(desc: Descriptor):
    yield desc
    for nested in desc.nested_types:
        yield from _walk(nested)


def _field_shape(field: FieldDescriptor) -> dict:
    ref = field.message_type or field.enum_type
    return {
        "number": field.number,
        "type": _TYPE_NAMES[field.type],
        "type_name": ref.full_name if ref else "",
        "repeated": field.is_repeated,
    }


def _package_files() -> list:
    """Every file of the package reachable from the registered events, by name."""
    seen: dict[str, object] = {}
    todo = [cls.DESCRIPTOR.file for cls in EVENT_CLASSES.values()]
    while todo:
        f = todo.pop()
        if f.package == PACKAGE and f.name not in seen:
            seen[f.name] = f
            todo.extend(f.dependencies)
    return [seen[name] for name in sorted(seen)]


def schema_snapshot() -> dict:
    """Every message field (number, type, cardinality) and enum value of the package.

    The contract tests compare today's descriptors with the committed snapshot: a field may be
    added, but never renumbered, retyped or removed without being reserved.
    """
    messages: dict[str, dict] = {}
    enums: dict[str, dict] = {}
    for f in _package_files():
        for top in f.message_types_by_name.values():
            for desc in _walk(top):
                messages[desc.full_name] = {fd.name: _field_shape(fd) for fd in desc.fields}
                for enum in desc.enum_types:
                    enums[enum.full_name] = {v.name: v.number for v in enum.values}
        for enum in f.enum_types_by_name.values():
            enums[enum.full_name] = {v.name: v.number for v in enum.values}
    return {"messages": dict(sorted(messages.items())), "enums": dict(sorted(enums.items()))}


def write(out: Path, force: bool) -> list[Path]:
    """Write every sample as canonical JSON and binary; refuse to overwrite unless forced."""
    missing = {c.DESCRIPTOR.name for c in EVENT_CLASSES.values()} - set(SAMPLES)
    if missing:
        raise SystemExit(f"no golden sample for: {', '.join(sorted(missing))}")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, build in SAMPLES.items():
        msg = from_dict(build(), name, ignore_unknown=False, require_envelope=True)
        for path, data in ((out / f"{name}.json", (to_json(msg, indent=2) + "\n").encode()),
                           (out / f"{name}.bin", encode(msg))):
            if path.exists() and not force:
                raise SystemExit(f"{path} exists; golden samples are never rewritten")
            path.write_bytes(data)
            written.append(path)
    snapshot = out / "schema.json"
    if snapshot.exists() and not force:
        raise SystemExit(f"{snapshot} exists; golden samples are never rewritten")
    snapshot.write_text(json.dumps(schema_snapshot(), indent=2) + "\n")
    written.append(snapshot)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=GOLDEN_DIR / VERSION)
    parser.add_argument("--force", action="store_true", help="overwrite existing samples")
    args = parser.parse_args()
    written = write(args.out, args.force)
    sys.stdout.write(f"wrote {len(written)} files to {args.out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
