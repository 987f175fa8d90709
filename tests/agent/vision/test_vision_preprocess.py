"""Pre-processing: JPEG header parsing, reduced-scale decode, cover-resize, crop, normalisation."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.vision import ImageError
from agent.vision.preprocess import (
    decode_image,
    jpeg_size,
    load_image,
    reduction_for,
    to_model_input,
)

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def jpeg_bytes(width: int, height: int, *, progressive: bool = False) -> bytes:
    image = np.zeros((height, width, 3), np.uint8)
    image[:, : width // 2] = (0, 0, 255)
    params = [cv2.IMWRITE_JPEG_PROGRESSIVE, 1] if progressive else []
    return bytes(cv2.imencode(".jpg", image, params)[1].tobytes())


@pytest.mark.parametrize("progressive", [False, True])
def test_jpeg_size_reads_the_frame_header(progressive: bool) -> None:
    assert jpeg_size(jpeg_bytes(1600, 1200, progressive=progressive)) == (1600, 1200)
    assert jpeg_size(b"\x89PNG\r\n\x1a\n....") is None
    assert jpeg_size(b"\xff\xd8\xff") is None


def test_reduction_keeps_enough_pixels() -> None:
    assert reduction_for(1600, 1200, 128) == 8  # 150 px short side
    assert reduction_for(1600, 1200, 160) == 4  # 1/8 would give 150 < 160
    assert reduction_for(640, 480, 128) == 2
    assert reduction_for(200, 150, 128) == 1


def test_large_jpeg_is_decoded_at_reduced_scale(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    path.write_bytes(jpeg_bytes(1600, 1200))
    assert load_image(path, min_short_side=128).shape == (150, 200, 3)
    assert load_image(path, min_short_side=200).shape == (300, 400, 3)
    assert load_image(path).shape == (1200, 1600, 3)


def test_undecodable_and_missing_files_raise_image_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(ImageError, match=r"bad\.jpg"):
        load_image(bad, min_short_side=64)
    with pytest.raises(ImageError, match="no such image"):
        load_image(tmp_path / "absent.jpg")
    with pytest.raises(ImageError):
        decode_image(b"")


def test_model_input_is_centre_cropped_rgb_normalised() -> None:
    # 4:3 image, left half pure red (BGR 0,0,255), right half black: the centre crop straddles.
    image = np.zeros((120, 160, 3), np.uint8)
    image[:, :80] = (0, 0, 255)
    tensor = to_model_input(image, (60, 60), MEAN, STD)
    assert tensor.shape == (1, 3, 60, 60) and tensor.dtype == np.float32
    # cover-resize to 80 x 60, crop columns 10..70 of it: left 30 columns red, right 30 black.
    red_r = (1.0 - MEAN[0]) / STD[0]
    black_r = (0.0 - MEAN[0]) / STD[0]
    assert tensor[0, 0, 30, 5] == pytest.approx(red_r, abs=1e-5)
    assert tensor[0, 1, 30, 5] == pytest.approx(-MEAN[1] / STD[1], abs=1e-5)
    assert tensor[0, 0, 30, 55] == pytest.approx(black_r, abs=1e-5)


def test_model_input_rejects_non_bgr_arrays() -> None:
    with pytest.raises(ImageError, match="BGR"):
        to_model_input(np.zeros((10, 10), np.uint8), (8, 8), MEAN, STD)
