"""Downloads: the size cap, resuming with Range, and what is accepted as a URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.models.download import DownloadError, DownloadLimits, download
from hil.model_server import ModelServer

DATA = bytes(range(256)) * 4096  # 1 MiB


@pytest.fixture
def served(tmp_path: Path) -> Path:
    directory = tmp_path / "served"
    directory.mkdir()
    (directory / "m.onnx").write_bytes(DATA)
    return directory


def test_resume_appends_to_the_part_file(tmp_path: Path, served: Path) -> None:
    target = tmp_path / "dl" / "m.onnx"
    target.parent.mkdir()
    target.with_name("m.onnx.part").write_bytes(DATA[:1000])
    with ModelServer(served) as server:
        download(server.url("m.onnx"), target, DownloadLimits(size_bytes=len(DATA)))
        assert [r.range for r in server.requests] == ["bytes=1000-"]
    assert target.read_bytes() == DATA
    assert not target.with_name("m.onnx.part").exists()


def test_a_server_sending_more_than_the_manifest_says_is_cut_off(
    tmp_path: Path, served: Path
) -> None:
    with ModelServer(served) as server, pytest.raises(DownloadError) as failed:
        download(server.url("m.onnx"), tmp_path / "m.onnx", DownloadLimits(size_bytes=1000))
    assert failed.value.check == "too large"


def test_too_few_bytes_is_a_size_mismatch(tmp_path: Path, served: Path) -> None:
    with pytest.raises(DownloadError) as failed:
        download(
            (served / "m.onnx").as_uri(), tmp_path / "m.onnx", DownloadLimits(size_bytes=2 << 20)
        )
    assert failed.value.check == "size mismatch"


def test_missing_file_on_the_server(tmp_path: Path, served: Path) -> None:
    with ModelServer(served) as server, pytest.raises(DownloadError) as failed:
        download(server.url("gone.onnx"), tmp_path / "m.onnx", DownloadLimits(size_bytes=10))
    assert failed.value.check == "download refused" and "HTTP 404" in str(failed.value)


def test_every_attempt_dropped_gives_up_with_what_it_kept(tmp_path: Path, served: Path) -> None:
    with ModelServer(served) as server:
        server.faults.drop_after_bytes = 100_000
        server.faults.drops = 10
        with pytest.raises(DownloadError) as failed:
            download(
                server.url("m.onnx"),
                tmp_path / "m.onnx",
                DownloadLimits(size_bytes=len(DATA), attempts=3, retry_pause_s=0),
            )
    assert failed.value.check == "download failed"
    assert f"300000 of {len(DATA)} bytes kept" in str(failed.value)


@pytest.mark.parametrize("url", ["http://example.com/m.onnx", "ftp://127.0.0.1/m.onnx", "m.onnx"])
def test_only_https_file_and_loopback_http(tmp_path: Path, url: str) -> None:
    with pytest.raises(DownloadError) as failed:
        download(url, tmp_path / "m.onnx", DownloadLimits(size_bytes=10))
    assert failed.value.check == "bad url"
