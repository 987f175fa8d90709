"""write_atomic: the new content in place, no temporary file left behind."""

from __future__ import annotations

from pathlib import Path

from agent.atomic_file import write_atomic


def test_replaces_the_content_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    write_atomic(target, b"new content")
    assert target.read_bytes() == b"new content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
