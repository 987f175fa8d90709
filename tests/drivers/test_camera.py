"""The camera interface: Frame, snapshot files, black/frozen frame detection."""

from __future__ import annotations

import errno
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest

import drivers.camera as camera_module
from drivers.camera import Frame, frame_digest, frame_problem, save_snapshot, snapshot_stem
from hil.render import render_duct

WHEN = datetime(2026, 3, 4, 5, 6, 7, 890_000, tzinfo=UTC)


def _frame(
    camera: str = "upstream", *, width: int = 80, height: int = 60, **extra: object
) -> Frame:
    image = np.zeros((height, width, 3), np.uint8)
    image[:, : width // 2] = (0, 0, 255)  # left half red, right half black
    return Frame.of(
        camera,
        image,
        backend="test",
        exposure_us=12_500,
        metadata={"gain": 2.0, **extra},
        captured_at=WHEN,
    )


def test_frame_takes_its_size_from_the_image() -> None:
    frame = _frame(width=80, height=60)
    assert (frame.width, frame.height) == (80, 60)


def test_frame_without_a_time_is_stamped_now_in_utc() -> None:
    before = datetime.now(UTC)
    frame = Frame.of("c", np.zeros((4, 4, 3), np.uint8), backend="test")
    assert frame.captured_at.tzinfo is not None
    assert before <= frame.captured_at <= datetime.now(UTC)


@pytest.mark.parametrize(
    "image",
    [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 4), np.uint8)],
)
def test_frame_refuses_what_is_not_bgr_uint8(image: np.ndarray) -> None:
    with pytest.raises(ValueError, match="BGR uint8"):
        Frame("c", image, 4, 4, None, WHEN, "test")


def test_frame_refuses_a_declared_size_that_does_not_match() -> None:
    with pytest.raises(ValueError, match="declared 5x4"):
        Frame("c", np.zeros((4, 4, 3), np.uint8), 5, 4, None, WHEN, "test")


def test_frame_refuses_a_naive_time() -> None:
    with pytest.raises(ValueError, match="timezone"):
        Frame("c", np.zeros((4, 4, 3), np.uint8), 4, 4, None, datetime(2026, 1, 1), "test")


def test_frame_metadata_is_read_only_and_detached_from_the_caller() -> None:
    extras = {"gain": 1.0}
    frame = Frame.of("c", np.zeros((4, 4, 3), np.uint8), backend="test", metadata=extras)
    extras["gain"] = 9.0
    assert frame.metadata["gain"] == 1.0
    with pytest.raises(TypeError):
        frame.metadata["gain"] = 3.0  # type: ignore[index]


def test_snapshot_stem_is_camera_and_utc_time_to_the_millisecond() -> None:
    assert snapshot_stem(_frame("upstream")) == "upstream-20260304T050607.890Z"


def test_snapshot_stem_converts_local_times_to_utc() -> None:
    local = WHEN.astimezone(timezone(timedelta(hours=2)))
    frame = Frame.of("c", np.zeros((4, 4, 3), np.uint8), backend="t", captured_at=local)
    assert snapshot_stem(frame) == "c-20260304T050607.890Z"


def test_snapshot_stem_keeps_a_hostile_camera_name_inside_the_directory() -> None:
    stem = snapshot_stem(_frame("../../etc/cam 1"))
    assert "/" not in stem
    assert " " not in stem
    assert not stem.startswith(".")


def test_save_snapshot_writes_a_decodable_jpeg_and_its_sidecar(tmp_path: Path) -> None:
    path = save_snapshot(_frame(width=80, height=60), tmp_path / "snaps", quality=95)
    assert path == tmp_path / "snaps" / "upstream-20260304T050607.890Z.jpg"
    decoded = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert decoded.shape == (60, 80, 3)
    # The colours survive the JPEG round trip (red left, black right).
    assert decoded[30, 10, 2] > 200 and decoded[30, 10, 0] < 50
    assert decoded[30, 70].max() < 50
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["image"] == path.name
    assert sidecar["camera"] == "upstream"
    assert (sidecar["width"], sidecar["height"]) == (80, 60)
    assert sidecar["exposure_us"] == 12_500
    assert sidecar["captured_at"] == "2026-03-04T05:06:07.890Z"
    assert sidecar["backend"] == "test"
    assert sidecar["jpeg_quality"] == 95
    assert sidecar["metadata"] == {"gain": 2.0}


def test_save_snapshot_leaves_no_temporary_file(tmp_path: Path) -> None:
    save_snapshot(_frame(), tmp_path)
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".jpg", ".json"]


def test_two_snapshots_in_the_same_millisecond_do_not_overwrite_each_other(tmp_path: Path) -> None:
    first = save_snapshot(_frame(), tmp_path)
    second = save_snapshot(_frame(), tmp_path)
    assert first != second
    assert first.exists() and second.exists()
    assert second.with_suffix(".json").exists()


def test_metadata_that_json_cannot_hold_is_written_as_text(tmp_path: Path) -> None:
    path = save_snapshot(_frame(timestamp_ns=np.int64(5), size=(3, 4)), tmp_path)
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["metadata"]["timestamp_ns"] == "5"
    assert sidecar["metadata"]["size"] == [3, 4]


def test_save_snapshot_into_an_impossible_directory_names_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError) as caught:
        save_snapshot(_frame(), blocker / "snaps")
    assert str(blocker / "snaps") in str(caught.value)


def test_a_full_disk_surfaces_as_enospc_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(camera_module.os, "fsync", full_disk)
    with pytest.raises(OSError) as caught:
        save_snapshot(_frame(), tmp_path)
    assert caught.value.errno == errno.ENOSPC
    assert caught.value.filename is not None
    assert str(tmp_path) in caught.value.filename
    assert "No space left" in str(caught.value)
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind


@pytest.mark.parametrize("quality", [0, 101])
def test_save_snapshot_refuses_a_quality_jpeg_does_not_have(tmp_path: Path, quality: int) -> None:
    with pytest.raises(ValueError, match="quality"):
        save_snapshot(_frame(), tmp_path, quality=quality)


def test_black_frame_is_detected() -> None:
    problem = frame_problem(np.zeros((120, 160, 3), np.uint8))
    assert problem is not None and "black" in problem


def test_near_black_frame_with_sensor_noise_is_detected() -> None:
    noisy = np.random.default_rng(1).integers(0, 6, (120, 160, 3), dtype=np.uint8)
    problem = frame_problem(noisy)
    assert problem is not None and "black" in problem


def test_dark_frame_with_a_lit_area_is_not_black() -> None:
    image = np.full((120, 160, 3), 3, np.uint8)
    image[:, :20] = 180  # the near wall lit by the LED
    assert frame_problem(image) is None


def test_rendered_duct_frames_pass() -> None:
    for seed in range(6):
        assert frame_problem(render_duct(seed, 1.0, 128, 96)) is None


def test_frozen_frame_is_detected() -> None:
    image = render_duct(1, 0.2, 96, 72)
    problem = frame_problem(image.copy(), previous=image)
    assert problem is not None and "frozen" in problem


def test_frames_one_pixel_apart_are_not_frozen() -> None:
    image = render_duct(1, 0.2, 96, 72)
    changed = image.copy()
    changed[10, 10, 0] ^= 1
    assert frame_problem(changed, previous=image) is None


def test_a_frozen_frame_is_detected_by_the_digest_of_the_previous_one() -> None:
    image = render_duct(1, 0.2, 96, 72)
    problem = frame_problem(image.copy(), previous=frame_digest(image))
    assert problem is not None and "frozen" in problem


def test_frames_one_pixel_apart_have_different_digests() -> None:
    image = render_duct(1, 0.2, 96, 72)
    changed = image.copy()
    changed[10, 10, 0] ^= 1
    assert frame_problem(changed, previous=frame_digest(image)) is None


def test_same_bytes_in_another_shape_are_not_a_freeze() -> None:
    image = render_duct(1, 0.2, 96, 72)
    reshaped = image.reshape(72 * 2, 48, 3)
    assert frame_problem(reshaped, previous=frame_digest(image)) is None


def test_a_previous_frame_of_another_size_is_not_a_freeze() -> None:
    assert frame_problem(render_duct(1, 0.2, 96, 72), previous=render_duct(1, 0.2, 64, 48)) is None
