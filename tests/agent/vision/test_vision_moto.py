"""Rekognition backend end to end over HTTP against moto's server mode.

moto's DetectCustomLabels ignores the image and answers one canned label (``MyLogo``, confidence
77.77...). That is enough to exercise the real plumbing (boto3 client built by the backend,
signing, endpoint, JSON parsing) and the label mapping.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import boto3
import cv2
import numpy as np
import pytest
from moto.server import ThreadedMotoServer

from agent.vision import CloudRequestError
from agent.vision.factory import VisionConfig, build_classifier
from agent.vision.rekognition import RekognitionClassifier, RekognitionSettings
from hil.render import render_duct

ARN = "arn:aws:rekognition:us-east-1:123456789012:project/ducts/version/ducts.v1/1"
MOTO_LABEL = "MyLogo"
MOTO_CONFIDENCE = 77.7729721069336  # moto/rekognition/models.py, _detect_custom_labels_detections


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    path = tmp_path / "snap.jpg"
    cv2.imwrite(str(path), render_duct(7, 0.8, 640, 480))
    return path


def test_canned_label_is_mapped_to_dirty(moto_endpoint: str, snapshot: Path) -> None:
    classifier = build_classifier(
        VisionConfig(
            backend="rekognition",
            rekognition=RekognitionSettings(
                project_version_arn=ARN,
                region="us-east-1",
                label_map={MOTO_LABEL: "dirty"},
                endpoint_url=moto_endpoint,
            ),
        )
    )
    assert classifier is not None
    verdict = classifier.classify_file(snapshot)
    assert verdict.label == "dirty"
    assert verdict.confidence == pytest.approx(MOTO_CONFIDENCE / 100)
    assert verdict.dirty_probability == pytest.approx(MOTO_CONFIDENCE / 100)
    assert verdict.model_id == "rekognition:ducts.v1"


def test_unusable_picture_never_reaches_the_cloud(moto_endpoint: str, tmp_path: Path) -> None:
    flat = tmp_path / "flat.jpg"
    cv2.imwrite(str(flat), np.full((480, 640, 3), 90, np.uint8))
    settings = RekognitionSettings(
        project_version_arn=ARN,
        region="us-east-1",
        label_map={MOTO_LABEL: "dirty"},
        endpoint_url="http://127.0.0.1:9",  # nothing listens: a cloud call would fail
    )
    classifier = build_classifier(VisionConfig(backend="rekognition", rekognition=settings))
    assert classifier is not None
    verdict = classifier.classify_file(flat)
    assert verdict.label == "unusable"
    assert verdict.reason.startswith("lens covered or fogged")
    assert verdict.dirty_probability is None


def test_canned_label_mapped_to_clean(moto_endpoint: str) -> None:
    classifier = RekognitionClassifier(
        RekognitionSettings(
            project_version_arn=ARN,
            region="us-east-1",
            label_map={MOTO_LABEL: "clean"},
            endpoint_url=moto_endpoint,
        )
    )
    verdict = classifier.classify(np.zeros((100, 100, 3), np.uint8))
    assert verdict.label == "clean"
    assert verdict.dirty_probability == pytest.approx(1 - MOTO_CONFIDENCE / 100)


def test_unmapped_canned_label_is_reported(moto_endpoint: str, snapshot: Path) -> None:
    classifier = RekognitionClassifier(
        RekognitionSettings(project_version_arn=ARN, region="us-east-1", endpoint_url=moto_endpoint)
    )
    with pytest.raises(CloudRequestError, match=MOTO_LABEL):
        classifier.classify_file(snapshot)


def test_s3_object_mode(moto_endpoint: str, snapshot: Path) -> None:
    s3 = boto3.session.Session().client("s3", region_name="us-east-1", endpoint_url=moto_endpoint)
    s3.create_bucket(Bucket="duct-snaps")
    classifier = RekognitionClassifier(
        RekognitionSettings(
            project_version_arn=ARN,
            region="us-east-1",
            label_map={MOTO_LABEL: "dirty"},
            s3_bucket="duct-snaps",
            s3_prefix="board-7/",
            endpoint_url=moto_endpoint,
        )
    )
    assert classifier.classify_file(snapshot).label == "dirty"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="duct-snaps")["Contents"]]
    assert len(keys) == 1 and keys[0].startswith("board-7/")
    body = s3.get_object(Bucket="duct-snaps", Key=keys[0])["Body"].read()
    assert body == snapshot.read_bytes()
