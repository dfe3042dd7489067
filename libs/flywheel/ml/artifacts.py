"""Content-addressed model artifacts on disk.

An artifact is a directory ``<root>/artifacts/<kind>/<digest>/`` whose name is a prefix of the
SHA-256 over its content files (every file except ``manifest.json``). Writing goes through a
temporary sibling directory and one ``rename``, so readers never see a half-written artifact;
writing the same content twice yields the same directory and keeps the first manifest.

    staging = new_staging_dir(root, "onnx")
    ...  # write model.onnx, tokenizer files into staging
    path = commit_artifact(root, "onnx", staging, {"source_dir": "..."})
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from flywheel.ml import MLError

MANIFEST_NAME = "manifest.json"
DIGEST_CHARS = 16
_CHUNK = 1 << 20
_STAGING_PREFIX = ".staging-"


class ArtifactError(MLError):
    """An artifact is missing, incomplete or does not match its recorded hashes."""


def artifacts_dir(root: Path, kind: str) -> Path:
    """The directory that holds every artifact of one kind (``<root>/artifacts/<kind>``)."""
    return Path(root) / "artifacts" / kind


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of one file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _content_files(directory: Path) -> Iterator[tuple[str, Path]]:
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory).as_posix()
        if path.is_file() and rel != MANIFEST_NAME:
            yield rel, path


def content_digest(directory: Path) -> str:
    """SHA-256 over the relative names and hashes of every content file (manifest excluded)."""
    digest = hashlib.sha256()
    for rel, path in _content_files(Path(directory)):
        digest.update(f"{rel}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def file_hashes(directory: Path) -> dict[str, str]:
    """Relative name -> SHA-256 of every content file of a directory."""
    return {rel: file_sha256(path) for rel, path in _content_files(Path(directory))}


def new_staging_dir(root: Path, kind: str) -> Path:
    """A fresh temporary directory on the same filesystem as the final artifact."""
    parent = artifacts_dir(root, kind)
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=parent))


def commit_artifact(root: Path, kind: str, staging: Path, manifest: Mapping[str, Any]) -> Path:
    """Move a staging directory to its content address and return the final path.

    The manifest is completed with ``content_sha256``, ``digest`` and ``files`` and written
    into the staging directory before the rename. When an artifact with the same content
    already exists (written earlier or concurrently), the staging directory is discarded.
    """
    staging = Path(staging)
    full = content_digest(staging)
    target = artifacts_dir(root, kind) / full[:DIGEST_CHARS]
    if (target / MANIFEST_NAME).exists():
        shutil.rmtree(staging, ignore_errors=True)
        return target
    record = dict(manifest)
    record.update(content_sha256=full, digest=full[:DIGEST_CHARS], files=file_hashes(staging))
    _write_json(staging / MANIFEST_NAME, record)
    staging.chmod(0o755)  # mkdtemp creates 0700; artifacts are shared read-only with other users
    try:
        os.rename(staging, target)
    except OSError:
        # Lost a race against a writer of the same content: theirs is complete, keep it.
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / MANIFEST_NAME).exists():
            raise ArtifactError(f"could not place artifact at {target}") from None
    return target


def discard_staging(staging: Path) -> None:
    """Remove a staging directory after a failed write."""
    shutil.rmtree(staging, ignore_errors=True)


def read_manifest(artifact_dir: Path) -> dict[str, Any]:
    """The manifest of an artifact, or raise ArtifactError."""
    path = Path(artifact_dir) / MANIFEST_NAME
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"no readable manifest at {path}: {exc}") from None


def verify_artifact(artifact_dir: Path) -> dict[str, Any]:
    """Check every content file against the manifest; return the manifest or raise."""
    manifest = read_manifest(artifact_dir)
    actual = file_hashes(Path(artifact_dir))
    if actual != manifest.get("files"):
        raise ArtifactError(f"content of {artifact_dir} does not match its manifest")
    return manifest


def iter_artifacts(root: Path, kind: str) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every complete artifact of one kind with its manifest (staging dirs skipped)."""
    parent = artifacts_dir(root, kind)
    if not parent.is_dir():
        return
    for path in sorted(parent.iterdir()):
        if path.name.startswith(_STAGING_PREFIX) or not (path / MANIFEST_NAME).is_file():
            continue
        try:
            yield path, read_manifest(path)
        except ArtifactError:
            continue


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
