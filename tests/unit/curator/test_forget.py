"""Forgetting a user rewrites every batch that held their data."""

from __future__ import annotations

import json
import os

from curator_builders import LINE, make_trace, sft_record
from curator_builders import batch_content as content

from flywheel.db.engine import session_scope
from flywheel.db.models import BatchExample, BatchStatus, Example
from flywheel.services.curator.logic.examples import CurationRules, build_eval
from flywheel.services.curator.logic.forget import forget_user, load_forgotten_users
from flywheel.v1.examples_pb2 import EvalKind, Lineage


def test_forget_rewrites_batches_and_deletes_files(store, tmp_path) -> None:  # noqa: ANN001
    first = store.write(content([sft_record(1, "alice"), sft_record(2, "bob")]))
    second = store.write(content([sft_record(3, "carol")],
                                 replay_sft=[r for r in store.replay_candidates(LINE, "sft")
                                             if "alice" in r.user_ids]))
    untouched = store.write(content([sft_record(4, "dave")]))
    old_files = [first.sft_path, second.sft_path,
                 str(store.manifest_path(LINE, first.batch_id))]

    report = forget_user(store, "alice", tmp_path)

    assert report.examples == {"sft": 1}
    assert [old for old, _ in report.superseded] == [first.batch_id, second.batch_id]
    by_id = {b.batch_id: b for b in store.batches(LINE)}
    assert by_id[first.batch_id].status == BatchStatus.SUPERSEDED
    assert by_id[untouched.batch_id].status == BatchStatus.WRITTEN
    for old, new in report.superseded:
        replacement = by_id[new]
        assert replacement.manifest["supersedes"] == old
        assert replacement.version > untouched.version
        text = open(replacement.sft_path).read()
        assert "question 1" not in text
        assert by_id[old].manifest["superseded_by"] == new
        assert all("alice" not in e["user_ids"] for e in by_id[old].manifest["examples"])
    assert "question 2" in open(by_id[report.superseded[0][1]].sft_path).read()
    for path in old_files:
        assert not os.path.exists(path)
    with session_scope(store.engine) as s:
        assert all("alice" not in e.user_ids for e in s.query(Example).all())
        assert s.query(BatchExample).filter(
            BatchExample.example_id == sft_record(1).example_id).count() == 0
    assert load_forgotten_users(tmp_path) == {"alice"}
    # replacements are not announced by the curator
    assert [b.batch_id for b in store.unannounced(LINE)] == [untouched.batch_id]


def test_forget_removes_eval_examples_and_rewrites_their_eval_files(store, tmp_path) -> None:  # noqa: ANN001
    trace = make_trace("t", "When are you open?", "9 to 6", user="erin")
    ev = build_eval(trace.messages[:2], trace.messages[2:], tools=[],
                    kind=EvalKind.EVAL_KIND_MODEL, intent="hours",
                    lineage=Lineage(trace_ids=["t"], user_ids=["erin"]), rules=CurationRules())
    store.add_eval(ev, "when are you open", "model_eval")
    batch = store.write(content([sft_record(1, "bob")], eval_rows=store.eval_rows()))
    eval_path = store.root / batch.manifest["files"]["eval"]["path"]
    assert ev.example_id in eval_path.read_text()

    report = forget_user(store, "erin", tmp_path)

    assert report.examples == {"eval": 1}
    [(old, new)] = report.superseded
    assert old == batch.batch_id
    replacement = store.batch(new)
    assert replacement.manifest["files"]["eval"] is None
    assert not eval_path.exists()
    assert store.eval_rows() == []


def test_forget_unknown_user_changes_nothing(store, tmp_path) -> None:  # noqa: ANN001
    row = store.write(content([sft_record(1)]))
    report = forget_user(store, "nobody", tmp_path)
    assert report.to_dict() == {"user_id": "nobody", "examples": {}, "superseded": [],
                                "files_deleted": []}
    assert store.batch(row.batch_id).status == BatchStatus.WRITTEN
    assert json.loads((tmp_path / "curator" / "forgotten_users.json").read_text()) == ["nobody"]
