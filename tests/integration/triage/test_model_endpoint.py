"""Uncertainty sampling through a real HTTP endpoint, and a dead endpoint that never stalls."""

from __future__ import annotations

import json
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from flywheel.services.triage import samples
from flywheel.services.triage.logic.decide import eval_bucket
from flywheel.stack.process import free_port

from .conftest import TopicReader, produce, write_policy


class _Chat(BaseHTTPRequestHandler):
    """An OpenAI-compatible /v1/chat/completions that answers n times, two answers differing."""

    calls = 0

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls += 1
        n = body.get("n", 1)
        answers = ["Order 4821 has shipped."] * (n - 2) + ["I am not sure.", "Please call us."]
        payload = json.dumps({"choices": [{"index": i, "message": {"role": "assistant", "content": a}}
                                          for i, a in enumerate(answers[:n])]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        return None


def _traces(n: int) -> list:
    rng = random.Random(8)
    ids = [f"m{i}" for i in range(400) if eval_bucket(f"m{i}") >= 0.1][:n]
    return [samples.chat_trace(rng, tid) for tid in ids]


def test_samples_from_an_openai_compatible_endpoint(triage_settings, workers, tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Chat)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    traces = _traces(10)
    produce(triage_settings, [("traces.raw", *samples.record(t)) for t in traces])
    worker = workers.start(triage_settings, "sampling", hold_s=0.5, tick_interval_s=0.25,
                           policy_path=write_policy(tmp_path / "p.yaml"),
                           model_url=f"http://127.0.0.1:{server.server_port}/v1", k_samples=5)
    reader = TopicReader(triage_settings, ["traces.triaged"])
    try:
        reader.wait_for(lambda: len(reader.records["traces.triaged"]) >= len(traces), 90,
                        "decisions", [worker])
        decisions = reader.events("traces.triaged", "TriageDecision")
        assert all(d.uncertainty.k == 5 and not d.uncertainty.model_unavailable for d in decisions)
        assert all(abs(d.uncertainty.disagreement - 0.4) < 1e-6 for d in decisions)
        assert _Chat.calls >= len(traces)
    finally:
        reader.close()
        server.shutdown()


def test_a_dead_endpoint_marks_items_and_never_stalls(triage_settings, workers, tmp_path: Path) -> None:
    traces = _traces(30)
    produce(triage_settings, [("traces.raw", *samples.record(t)) for t in traces])
    worker = workers.start(triage_settings, "no-model", hold_s=0.5, tick_interval_s=0.25,
                           policy_path=write_policy(tmp_path / "p.yaml"),
                           model_url=f"http://127.0.0.1:{free_port()}/v1", model_timeout_s=1)
    reader = TopicReader(triage_settings, ["traces.triaged"])
    try:
        reader.wait_for(lambda: len(reader.records["traces.triaged"]) >= len(traces), 60,
                        "decisions without the model", [worker])
        decisions = reader.events("traces.triaged", "TriageDecision")
        assert all(d.uncertainty.model_unavailable for d in decisions)
        assert all("model_unavailable" in d.reasons for d in decisions)
    finally:
        reader.close()
