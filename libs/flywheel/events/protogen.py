"""Generate the Python bindings (``*_pb2.py`` and ``*_pb2.pyi``) from the schemas in ``proto/``.

Run from the repository root (``make proto`` does this)::

    python -m flywheel.events.protogen            # writes libs/flywheel/v1/*_pb2.py(i)
    python -m flywheel.events.protogen --out DIR  # writes DIR/flywheel/v1/*_pb2.py(i)

Protos are compiled with ``-Iproto`` (imports read ``import "flywheel/v1/trace.proto";``) and
the well-known types bundled with grpcio-tools. The run is idempotent: files whose content did
not change are left untouched, and bindings whose ``.proto`` was deleted are removed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from importlib import resources
from pathlib import Path

from flywheel.errors import FlywheelError

REPO_ROOT = Path(__file__).resolve().parents[3]
PROTO_ROOT = REPO_ROOT / "proto"
LIBS_DIR = REPO_ROOT / "libs"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi")


class ProtogenError(FlywheelError):
    """protoc failed, or there was nothing to compile."""


def proto_files(proto_root: Path = PROTO_ROOT) -> list[Path]:
    """Every ``.proto`` under ``proto_root``, as paths relative to it, sorted."""
    return sorted(p.relative_to(proto_root) for p in proto_root.rglob("*.proto"))


def _protoc(proto_root: Path, out_dir: Path, files: list[Path]) -> None:
    from grpc_tools import protoc

    well_known = resources.files("grpc_tools") / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{proto_root}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        *[str(f) for f in files],
    ]
    code = protoc.main(args)
    if code != 0:
        raise ProtogenError(f"protoc exited with {code} (its messages are on stderr above)")


def _is_generated(path: Path) -> bool:
    return path.name.endswith(GENERATED_SUFFIXES)


def _sync(staging: Path, out_dir: Path, package_dirs: set[Path]) -> list[Path]:
    """Copy changed files from staging to out_dir; drop stale bindings. Returns changed paths."""
    changed: list[Path] = []
    produced = {p.relative_to(staging) for p in staging.rglob("*") if _is_generated(p)}
    for rel in sorted(produced):
        target = out_dir / rel
        data = (staging / rel).read_bytes()
        if target.exists() and target.read_bytes() == data:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        changed.append(target)
    for pkg in sorted(package_dirs):
        folder = out_dir / pkg
        for existing in sorted(folder.iterdir()) if folder.is_dir() else []:
            if _is_generated(existing) and existing.relative_to(out_dir) not in produced:
                existing.unlink()
                changed.append(existing)
        init = folder / "__init__.py"
        if not init.exists():
            init.write_text(f'"""Generated protobuf bindings for {".".join(pkg.parts)}."""\n')
            changed.append(init)
    return changed


def generate(out_dir: Path = LIBS_DIR, proto_root: Path = PROTO_ROOT) -> list[Path]:
    """Compile every proto under ``proto_root`` into ``out_dir``.

    Returns:
        The files written or removed (empty when the bindings were already up to date).

    Raises:
        ProtogenError: no protos were found or protoc reported an error.
    """
    files = proto_files(proto_root)
    if not files:
        raise ProtogenError(f"no .proto files under {proto_root}")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="protogen-") as tmp:
        staging = Path(tmp)
        _protoc(proto_root, staging, files)
        return _sync(staging, out_dir, {f.parent for f in files})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flywheel.events.protogen", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=LIBS_DIR,
                        help="output root; bindings land in OUT/flywheel/v1 (default: libs/)")
    parser.add_argument("--proto-root", type=Path, default=PROTO_ROOT,
                        help="root of the .proto tree, used as the include path (default: proto/)")
    args = parser.parse_args(argv)
    try:
        changed = generate(args.out.resolve(), args.proto_root.resolve())
    except ProtogenError as exc:
        sys.stderr.write(f"protogen: {exc}\n")
        return 1
    count = len(proto_files(args.proto_root.resolve()))
    sys.stdout.write(f"protogen: {count} protos, {len(changed)} files changed under {args.out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
