"""The committed bindings in libs/flywheel/v1 are exactly what protoc makes from proto/."""

from __future__ import annotations

from pathlib import Path

from flywheel.events import protogen

COMMITTED = protogen.LIBS_DIR / "flywheel" / "v1"


def _generated(folder: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes()
        for p in sorted(folder.iterdir())
        if p.name.endswith(protogen.GENERATED_SUFFIXES)
    }


def test_committed_bindings_match_the_protos(tmp_path: Path) -> None:
    protogen.generate(out_dir=tmp_path)
    fresh = _generated(tmp_path / "flywheel" / "v1")
    committed = _generated(COMMITTED)
    assert fresh, "protoc produced nothing"
    missing = sorted(set(fresh) - set(committed))
    stale = sorted(set(committed) - set(fresh))
    changed = sorted(n for n in set(fresh) & set(committed) if fresh[n] != committed[n])
    assert not (missing or stale or changed), (
        "libs/flywheel/v1 is out of date with proto/: run make proto "
        f"(missing: {missing}, stale: {stale}, changed: {changed})"
    )


def test_protogen_is_idempotent_and_removes_stale_bindings(tmp_path: Path) -> None:
    first = protogen.generate(out_dir=tmp_path)
    assert first
    assert protogen.generate(out_dir=tmp_path) == []
    stale = tmp_path / "flywheel" / "v1" / "gone_pb2.py"
    stale.write_text("# a binding whose proto was deleted\n")
    assert protogen.generate(out_dir=tmp_path) == [stale]
    assert not stale.exists()


def test_protogen_cli_writes_to_out(tmp_path: Path) -> None:
    assert protogen.main(["--out", str(tmp_path)]) == 0
    assert (tmp_path / "flywheel" / "v1" / "trace_pb2.py").exists()
    assert (tmp_path / "flywheel" / "v1" / "trace_pb2.pyi").exists()


def test_protogen_reports_protoc_errors(tmp_path: Path) -> None:
    bad = tmp_path / "proto" / "flywheel" / "v1"
    bad.mkdir(parents=True)
    (bad / "broken.proto").write_text('syntax = "proto3";\npackage flywheel.v1;\nmessage {')
    assert protogen.main(["--out", str(tmp_path / "out"), "--proto-root",
                          str(tmp_path / "proto")]) == 1
