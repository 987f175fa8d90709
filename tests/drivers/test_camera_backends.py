"""Camera backends: folder replay, OpenCV VideoCapture (on a generated video file), picamera2
(with a stand-in module, and without the library)."""

from __future__ import annotations

import importlib
import sys
import threading
import types
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import pytest

from drivers.camera import Camera, Frame, save_snapshot
from drivers.camera_opencv import OpenCVCamera
from drivers.camera_picamera2 import Picamera2Camera, to_bgr
from drivers.camera_replay import ReplayCamera
from drivers.errors import CameraError
from hil.clock import SimClock

BGR_RED = (0, 0, 255)

# --------------------------------------------------------------------------------------------
# Replay


def _solid(value: int, width: int = 32, height: int = 24) -> np.ndarray:
    return np.full((height, width, 3), value, np.uint8)


@pytest.fixture
def replay_folder(tmp_path: Path) -> Path:
    # Written out of order, with a stranger in the folder: replay goes by name, images only.
    cv2.imwrite(str(tmp_path / "b.png"), _solid(120))
    cv2.imwrite(str(tmp_path / "a.JPG"), _solid(40))
    cv2.imwrite(str(tmp_path / "c.png"), _solid(200))
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_replay_serves_images_in_name_order_and_loops(replay_folder: Path) -> None:
    camera = ReplayCamera("replayed", replay_folder)
    sources = [Path(str(camera.capture().metadata["source"])).name for _ in range(4)]
    assert sources == ["a.JPG", "b.png", "c.png", "a.JPG"]


def test_replay_frames_carry_the_image_and_its_size(replay_folder: Path) -> None:
    frame = ReplayCamera("replayed", replay_folder).capture()
    assert isinstance(frame, Frame)
    assert (frame.camera, frame.backend) == ("replayed", "replay")
    assert (frame.width, frame.height) == (32, 24)
    assert abs(float(frame.image.mean()) - 40) < 3  # a.JPG, through JPEG
    assert frame.exposure_us is None


def test_replay_without_loop_stops_with_a_clear_error(replay_folder: Path) -> None:
    camera = ReplayCamera("replayed", replay_folder, loop=False)
    for _ in range(3):
        camera.capture()
    with pytest.raises(CameraError, match="all 3 images") as caught:
        camera.capture()
    assert caught.value.camera == "replayed"


def test_replay_of_a_missing_directory_names_it(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="does not exist") as caught:
        ReplayCamera("replayed", tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(caught.value)


def test_replay_of_a_folder_without_images_names_it(tmp_path: Path) -> None:
    (tmp_path / "readme.md").write_text("x")
    with pytest.raises(CameraError, match=r"no \.jpg") as caught:
        ReplayCamera("replayed", tmp_path)
    assert str(tmp_path) in str(caught.value)


def test_replay_names_the_file_it_cannot_decode(tmp_path: Path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    camera = ReplayCamera("replayed", tmp_path)
    with pytest.raises(CameraError, match=r"broken\.jpg"):
        camera.capture()


def test_replayed_snapshots_keep_their_exposure(tmp_path: Path) -> None:
    original = Frame.of("upstream", _solid(90), backend="sim", exposure_us=21_000)
    save_snapshot(original, tmp_path)
    frame = ReplayCamera("again", tmp_path).capture()
    assert frame.exposure_us == 21_000
    assert frame.metadata["original_camera"] == "upstream"


def test_replay_after_close_refuses(replay_folder: Path) -> None:
    camera = ReplayCamera("replayed", replay_folder)
    camera.close()
    with pytest.raises(CameraError, match="closed"):
        camera.capture()


# --------------------------------------------------------------------------------------------
# OpenCV VideoCapture


@pytest.fixture
def video_file(tmp_path: Path) -> Path:
    """Six 64x48 frames, frame i filled with 40 * i (so a read tells which frame it was)."""
    path = tmp_path / "duct.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    assert writer.isOpened()
    for i in range(6):
        writer.write(_solid(40 * i, 64, 48))
    writer.release()
    return path


def _frame_number(frame: Frame) -> int:
    return round(float(frame.image.mean()) / 40)


def test_opencv_camera_drops_warmup_frames_then_captures(video_file: Path) -> None:
    camera = OpenCVCamera("usb", str(video_file), 64, 48, warmup_frames=2, stale_frames=0)
    frame = camera.capture()
    assert _frame_number(frame) == 2
    assert (frame.width, frame.height) == (64, 48)
    assert (frame.camera, frame.backend) == ("usb", "opencv")
    assert "requested_size" not in frame.metadata
    camera.close()


def test_opencv_camera_skips_buffered_frames_on_each_capture(video_file: Path) -> None:
    camera = OpenCVCamera("usb", str(video_file), 64, 48, warmup_frames=0, stale_frames=1)
    assert [_frame_number(camera.capture()) for _ in range(3)] == [1, 3, 5]
    camera.close()


def test_opencv_camera_reports_the_size_it_really_got(video_file: Path) -> None:
    camera = OpenCVCamera("usb", str(video_file), 640, 480, warmup_frames=0)
    frame = camera.capture()
    assert (frame.width, frame.height) == (64, 48)
    assert frame.metadata["requested_size"] == "640x480"
    camera.close()


def test_opencv_camera_at_end_of_stream_raises(video_file: Path) -> None:
    camera = OpenCVCamera("usb", str(video_file), 64, 48, warmup_frames=6)
    with pytest.raises(CameraError, match="no frame") as caught:
        camera.capture()
    assert caught.value.camera == "usb"
    camera.close()


def test_opencv_camera_that_cannot_open_names_the_device(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-video.avi")
    with pytest.raises(CameraError, match="cannot open") as caught:
        OpenCVCamera("usb", missing, 64, 48)
    assert missing in str(caught.value)
    assert caught.value.camera == "usb"


def test_opencv_camera_read_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    class HungCapture:
        def __init__(self, *args: object) -> None:
            pass

        def isOpened(self) -> bool:
            return True

        def set(self, prop: int, value: float) -> bool:
            return True

        def read(self) -> tuple[bool, None]:
            release.wait(5.0)
            return False, None

        def release(self) -> None:
            pass

    monkeypatch.setattr("drivers.camera_opencv.cv2.VideoCapture", HungCapture)
    camera = OpenCVCamera("usb", 0, 64, 48, warmup_frames=0, read_timeout_s=0.05)
    try:
        with pytest.raises(CameraError, match=r"within 0\.05 s"):
            camera.capture()
        with pytest.raises(CameraError, match="still hung"):
            camera.capture()
    finally:
        release.set()
        camera.close()


def test_opencv_camera_after_close_refuses(video_file: Path) -> None:
    camera = OpenCVCamera("usb", str(video_file), 64, 48, warmup_frames=0)
    camera.close()
    camera.close()  # idempotent
    with pytest.raises(CameraError, match="closed"):
        camera.capture()


# --------------------------------------------------------------------------------------------
# picamera2


def _red_in(pixel_format: str) -> tuple[int, ...]:
    """How libcamera lays out a pure red pixel in memory (picamera2 manual, appendix A)."""
    return {
        "RGB888": (0, 0, 255),
        "BGR888": (255, 0, 0),
        "XRGB8888": (0, 0, 255, 255),
        "XBGR8888": (255, 0, 0, 255),
    }[pixel_format]


class FakePicamera2:
    """Stands in for picamera2.Picamera2: records calls, serves a red scene in the asked format."""

    calls: ClassVar[list[tuple[Any, ...]]] = []
    fail_on_open: ClassVar[Exception | None] = None
    hang: ClassVar[bool] = False

    def __init__(self, camera_num: int = 0) -> None:
        FakePicamera2.calls.append(("init", camera_num))
        if FakePicamera2.fail_on_open is not None:
            raise FakePicamera2.fail_on_open
        self._config: dict[str, Any] = {}

    def create_still_configuration(self, main: dict[str, Any]) -> dict[str, Any]:
        FakePicamera2.calls.append(("create_still_configuration", main))
        return {"main": dict(main), "use_case": "still"}

    def configure(self, config: dict[str, Any]) -> None:
        FakePicamera2.calls.append(("configure", config["main"]["size"]))
        self._config = config

    def start(self) -> None:
        FakePicamera2.calls.append(("start",))

    def capture_request(self, wait: bool | None = None) -> str:
        FakePicamera2.calls.append(("capture_request", wait))
        return "job"

    def wait(self, job: str, timeout: float | None = None) -> FakeRequest:
        FakePicamera2.calls.append(("wait", job, timeout))
        if FakePicamera2.hang:
            raise TimeoutError
        width, height = self._config["main"]["size"]
        pixel = _red_in(self._config["main"]["format"])
        return FakeRequest(np.tile(np.array(pixel, np.uint8), (height, width, 1)))

    def stop(self) -> None:
        FakePicamera2.calls.append(("stop",))

    def close(self) -> None:
        FakePicamera2.calls.append(("close",))


class FakeRequest:
    def __init__(self, array: np.ndarray) -> None:
        self._array = array

    def make_array(self, name: str) -> np.ndarray:
        FakePicamera2.calls.append(("make_array", name))
        return self._array

    def get_metadata(self) -> dict[str, object]:
        FakePicamera2.calls.append(("get_metadata",))
        return {"ExposureTime": 16_667, "AnalogueGain": 2.5, "SensorTemperature": 40.0}

    def release(self) -> None:
        FakePicamera2.calls.append(("release",))


@pytest.fixture
def fake_picamera2(monkeypatch: pytest.MonkeyPatch) -> type[FakePicamera2]:
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", module)
    FakePicamera2.calls = []
    FakePicamera2.fail_on_open = None
    FakePicamera2.hang = False
    return FakePicamera2


def test_picamera2_backend_imports_without_the_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # makes `import picamera2` fail
    monkeypatch.delitem(sys.modules, "drivers.camera_picamera2")
    module = importlib.import_module("drivers.camera_picamera2")
    assert module.Picamera2Camera.backend == "picamera2"


def test_picamera2_missing_is_a_clear_camera_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # makes `import picamera2` fail
    with pytest.raises(CameraError, match="picamera2 is not installed") as caught:
        Picamera2Camera("upstream", 0, 640, 480)
    assert caught.value.camera == "upstream"
    assert "apt install python3-picamera2" in str(caught.value)


def test_picamera2_starts_a_still_pipeline_and_lets_exposure_settle(
    fake_picamera2: type[FakePicamera2],
) -> None:
    clock = SimClock()
    camera = Picamera2Camera("downstream", 1, 1640, 1232, settle_s=1.5, clock=clock)
    assert fake_picamera2.calls == [
        ("init", 1),
        ("create_still_configuration", {"size": (1640, 1232), "format": "RGB888"}),
        ("configure", (1640, 1232)),
        ("start",),
    ]
    assert clock.monotonic() == pytest.approx(1.5)
    assert isinstance(camera, Camera)


def test_picamera2_capture_reads_one_request_and_releases_it(
    fake_picamera2: type[FakePicamera2],
) -> None:
    camera = Picamera2Camera("upstream", 0, 64, 48, settle_s=0.0, clock=SimClock())
    fake_picamera2.calls.clear()
    frame = camera.capture()
    assert fake_picamera2.calls == [
        ("capture_request", False),
        ("wait", "job", 5.0),
        ("make_array", "main"),
        ("get_metadata",),
        ("release",),
    ]
    assert (frame.width, frame.height) == (64, 48)
    assert frame.exposure_us == 16_667
    assert frame.metadata["AnalogueGain"] == 2.5
    assert frame.metadata["index"] == 0
    assert (frame.camera, frame.backend) == ("upstream", "picamera2")
    assert tuple(frame.image[0, 0]) == BGR_RED
    assert tuple(frame.image[-1, -1]) == BGR_RED


@pytest.mark.parametrize("pixel_format", ["RGB888", "BGR888", "XRGB8888", "XBGR8888"])
def test_every_picamera2_rgb_format_converts_to_bgr(pixel_format: str) -> None:
    memory = np.tile(np.array(_red_in(pixel_format), np.uint8), (4, 6, 1))
    bgr = to_bgr(memory, pixel_format)
    assert bgr.shape == (4, 6, 3)
    assert bgr.flags["C_CONTIGUOUS"]
    assert tuple(bgr[2, 3]) == BGR_RED


def test_an_unknown_picamera2_format_is_refused() -> None:
    with pytest.raises(ValueError, match="YUV420"):
        to_bgr(np.zeros((6, 4), np.uint8), "YUV420")


def test_picamera2_capture_timeout_is_a_camera_error(fake_picamera2: type[FakePicamera2]) -> None:
    camera = Picamera2Camera("upstream", 0, 64, 48, settle_s=0.0, capture_timeout_s=2.0)
    fake_picamera2.hang = True
    with pytest.raises(CameraError, match="no frame within 2 s") as caught:
        camera.capture()
    assert caught.value.camera == "upstream"


def test_picamera2_that_cannot_open_names_the_index(fake_picamera2: type[FakePicamera2]) -> None:
    fake_picamera2.fail_on_open = IndexError("list index out of range")
    with pytest.raises(CameraError, match="index 3") as caught:
        Picamera2Camera("upstream", 3, 64, 48, settle_s=0.0)
    assert caught.value.camera == "upstream"


def test_picamera2_close_stops_and_releases_once(fake_picamera2: type[FakePicamera2]) -> None:
    camera = Picamera2Camera("upstream", 0, 64, 48, settle_s=0.0)
    fake_picamera2.calls.clear()
    camera.close()
    camera.close()
    assert fake_picamera2.calls == [("stop",), ("close",)]
    with pytest.raises(CameraError, match="closed"):
        camera.capture()
