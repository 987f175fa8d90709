"""Rekognition backend against botocore's Stubber (which validates every request against the real
service model) for each failure the board must survive, plus the retry queue and re-encoding."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import cv2
import numpy as np
import pytest
from botocore.stub import ANY, Stubber

from agent.vision import (
    CloudAuthError,
    CloudModelNotRunningError,
    CloudRequestError,
    CloudThrottledError,
    CloudUnreachableError,
)
from agent.vision.rekognition import (
    RekognitionClassifier,
    RekognitionSettings,
    RetryQueue,
    encode_for_upload,
    upload_bytes,
)

ARN = (
    "arn:aws:rekognition:eu-west-1:123456789012:"
    "project/ducts/version/ducts.2026-11-01/1700000000000"
)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials and no shared config: nothing can reach a real account."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def client(aws_env: None) -> Iterator[Any]:
    rekognition = boto3.client("rekognition", region_name="eu-west-1")
    yield rekognition
    rekognition.close()


@pytest.fixture
def jpeg(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    image = cv2.GaussianBlur(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8), (9, 9), 0)
    path = tmp_path / "snap.jpg"
    cv2.imwrite(str(path), image)
    return path


class SleepRecorder:
    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def make(
    client: Any,
    tmp_path: Path,
    sleep: SleepRecorder | None = None,
    **settings: Any,
) -> RekognitionClassifier:
    return RekognitionClassifier(
        RekognitionSettings(project_version_arn=ARN, region="eu-west-1", **settings),
        retry_queue=RetryQueue(tmp_path / "queue"),
        client=client,
        sleep=sleep or SleepRecorder(),
    )


def expected(min_confidence: float = 50.0) -> dict[str, Any]:
    return {"ProjectVersionArn": ARN, "Image": {"Bytes": ANY}, "MinConfidence": min_confidence}


def labels(*pairs: tuple[str, float]) -> dict[str, Any]:
    return {"CustomLabels": [{"Name": n, "Confidence": c} for n, c in pairs]}


def test_verdict_maps_the_project_labels(client: Any, tmp_path: Path, jpeg: Path) -> None:
    classifier = make(
        client, tmp_path, label_map={"Soiled": "dirty", "OK": "clean"}, min_confidence=70.0
    )
    with Stubber(client) as stub:
        stub.add_response(
            "detect_custom_labels", labels(("OK", 12.0), ("Soiled", 88.0)), expected(70.0)
        )
        verdict = classifier.classify_file(jpeg)
        stub.assert_no_pending_responses()
    assert verdict.label == "dirty"
    assert verdict.confidence == pytest.approx(0.88)
    assert verdict.dirty_probability == pytest.approx(0.88)
    assert verdict.backend == "rekognition"
    assert verdict.model_id == "rekognition:ducts.2026-11-01"
    assert verdict.extra["rekognition_label"] == "Soiled"


def test_clean_label_gives_low_dirty_probability(client: Any, tmp_path: Path, jpeg: Path) -> None:
    classifier = make(client, tmp_path)
    with Stubber(client) as stub:
        stub.add_response("detect_custom_labels", labels(("clean", 96.0)), expected())
        verdict = classifier.classify_file(jpeg)
    assert verdict.label == "clean"
    assert verdict.dirty_probability == pytest.approx(0.04)


def test_file_bytes_are_sent_unchanged_when_small_enough(
    client: Any, tmp_path: Path, jpeg: Path
) -> None:
    classifier = make(client, tmp_path)
    sent = {"ProjectVersionArn": ARN, "Image": {"Bytes": jpeg.read_bytes()}, "MinConfidence": 50.0}
    with Stubber(client) as stub:
        stub.add_response("detect_custom_labels", labels(("dirty", 80.0)), sent)
        classifier.classify_file(jpeg)
        stub.assert_no_pending_responses()


def test_model_not_running_keeps_the_snapshot(client: Any, tmp_path: Path, jpeg: Path) -> None:
    classifier = make(client, tmp_path)
    with Stubber(client) as stub:
        stub.add_client_error(
            "detect_custom_labels", "ResourceNotReadyException", "Model is not running", 400
        )
        with pytest.raises(CloudModelNotRunningError, match="StartProjectVersion") as info:
            classifier.classify_file(jpeg)
    queued = info.value.queued_as
    assert queued is not None and queued.read_bytes() == jpeg.read_bytes()
    assert str(queued) in str(info.value)
    meta = json.loads(queued.with_suffix(".json").read_text())
    assert "not running" in meta["reason"]


def test_throttling_backs_off_then_succeeds(client: Any, tmp_path: Path, jpeg: Path) -> None:
    sleep = SleepRecorder()
    classifier = make(client, tmp_path, sleep)
    with Stubber(client) as stub:
        stub.add_client_error("detect_custom_labels", "ThrottlingException", "slow down", 400)
        stub.add_client_error(
            "detect_custom_labels", "ProvisionedThroughputExceededException", "slow down", 400
        )
        stub.add_response("detect_custom_labels", labels(("dirty", 75.0)), expected())
        verdict = classifier.classify_file(jpeg)
    assert verdict.label == "dirty"
    assert len(sleep.delays) == 2
    assert 0.25 <= sleep.delays[0] <= 0.5  # first ceiling: backoff_base_s
    assert 0.5 <= sleep.delays[1] <= 1.0  # doubled
    assert RetryQueue(tmp_path / "queue").items() == []


def test_throttling_gives_up_after_max_attempts(client: Any, tmp_path: Path, jpeg: Path) -> None:
    sleep = SleepRecorder()
    classifier = make(client, tmp_path, sleep, max_attempts=3, backoff_max_s=0.6)
    with Stubber(client) as stub:
        for _ in range(3):
            stub.add_client_error("detect_custom_labels", "ThrottlingException", "slow", 400)
        with pytest.raises(CloudThrottledError, match="3 attempts") as info:
            classifier.classify_file(jpeg)
        stub.assert_no_pending_responses()
    assert len(sleep.delays) == 2
    assert max(sleep.delays) <= 0.6
    assert info.value.queued_as is not None and info.value.queued_as.exists()


@pytest.mark.parametrize(
    "code", ["UnrecognizedClientException", "AccessDeniedException", "ExpiredTokenException"]
)
def test_rejected_credentials_keep_the_snapshot(
    client: Any, tmp_path: Path, jpeg: Path, code: str
) -> None:
    classifier = make(client, tmp_path)
    with Stubber(client) as stub:
        stub.add_client_error("detect_custom_labels", code, "nope", 403)
        with pytest.raises(CloudAuthError, match=code) as info:
            classifier.classify_file(jpeg)
    assert info.value.queued_as is not None and info.value.queued_as.exists()


def test_bad_request_is_not_queued(client: Any, tmp_path: Path, jpeg: Path) -> None:
    classifier = make(client, tmp_path)
    with Stubber(client) as stub:
        stub.add_client_error("detect_custom_labels", "ResourceNotFoundException", "no ARN", 400)
        with pytest.raises(CloudRequestError, match="ResourceNotFoundException") as info:
            classifier.classify_file(jpeg)
    assert info.value.queued_as is None
    assert RetryQueue(tmp_path / "queue").items() == []


def test_unmapped_and_missing_labels_are_errors(client: Any, tmp_path: Path, jpeg: Path) -> None:
    classifier = make(client, tmp_path)
    with Stubber(client) as stub:
        stub.add_response("detect_custom_labels", labels(("Cat", 99.0)), expected())
        stub.add_response("detect_custom_labels", labels(), expected())
        with pytest.raises(CloudRequestError, match="Cat"):
            classifier.classify_file(jpeg)
        with pytest.raises(CloudRequestError, match="min_confidence=50"):
            classifier.classify_file(jpeg)


def test_missing_credentials(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    classifier = RekognitionClassifier(
        RekognitionSettings(
            project_version_arn=ARN, region="eu-west-1", endpoint_url="http://127.0.0.1:9"
        ),
        retry_queue=RetryQueue(tmp_path / "queue"),
    )
    with pytest.raises(CloudAuthError, match="credentials") as info:
        classifier.classify(np.full((64, 64, 3), 128, np.uint8))
    assert info.value.queued_as is not None and info.value.queued_as.exists()


def test_no_network(aws_env: None, tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    classifier = RekognitionClassifier(
        RekognitionSettings(
            project_version_arn=ARN,
            region="eu-west-1",
            endpoint_url=f"http://127.0.0.1:{port}",
            timeout_s=2.0,
        ),
        retry_queue=RetryQueue(tmp_path / "queue"),
    )
    with pytest.raises(CloudUnreachableError, match="cannot reach") as info:
        classifier.classify(np.full((64, 64, 3), 128, np.uint8))
    assert info.value.queued_as is not None
    queued = cv2.imread(str(info.value.queued_as))
    assert queued is not None and queued.shape == (64, 64, 3)


def test_retry_pending_sends_the_queue_oldest_first(client: Any, tmp_path: Path) -> None:
    queue = RetryQueue(tmp_path / "queue")
    first = queue.put(encode_for_upload(np.zeros((32, 32, 3), np.uint8)), reason="offline")
    second = queue.put(encode_for_upload(np.ones((32, 32, 3), np.uint8)), reason="offline")
    classifier = make(client, tmp_path)
    with Stubber(client) as stub:
        stub.add_response(
            "detect_custom_labels",
            labels(("dirty", 90.0)),
            {
                "ProjectVersionArn": ARN,
                "Image": {"Bytes": first.read_bytes()},
                "MinConfidence": 50.0,
            },
        )
        stub.add_client_error("detect_custom_labels", "ResourceNotReadyException", "stopped", 400)
        done = classifier.retry_pending()
    assert [(p, v.label) for p, v in done] == [(first, "dirty")]
    assert queue.items() == [second]  # still down: the second one waits


def test_s3_object_mode_uploads_then_references(aws_env: None, tmp_path: Path, jpeg: Path) -> None:
    rekognition = boto3.client("rekognition", region_name="eu-west-1")
    s3 = boto3.client("s3", region_name="eu-west-1")
    classifier = RekognitionClassifier(
        RekognitionSettings(
            project_version_arn=ARN, region="eu-west-1", s3_bucket="snaps", s3_prefix="b1/"
        ),
        client=rekognition,
        s3_client=s3,
    )
    with Stubber(rekognition) as rek_stub, Stubber(s3) as s3_stub:
        s3_stub.add_response(
            "put_object", {}, {"Bucket": "snaps", "Key": ANY, "Body": jpeg.read_bytes()}
        )
        rek_stub.add_response(
            "detect_custom_labels",
            labels(("clean", 80.0)),
            {
                "ProjectVersionArn": ARN,
                "Image": {"S3Object": {"Bucket": "snaps", "Name": ANY}},
                "MinConfidence": 50.0,
            },
        )
        assert classifier.classify_file(jpeg).label == "clean"
        s3_stub.assert_no_pending_responses()
        rek_stub.assert_no_pending_responses()


def test_reencoding_stays_under_the_limit() -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (600, 800, 3), dtype=np.uint8)  # incompressible
    data = encode_for_upload(noise, limit=60_000)
    assert len(data) <= 60_000
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is not None
    big = cv2.imencode(".png", noise)[1].tobytes()
    assert len(big) > 60_000
    assert len(upload_bytes(big, limit=60_000)) <= 60_000
    small = cv2.imencode(".png", noise[:40, :40])[1].tobytes()
    assert upload_bytes(small, limit=60_000) == small  # PNG under the limit goes as it is


def test_retry_queue_is_bounded(tmp_path: Path) -> None:
    queue = RetryQueue(tmp_path, max_items=2)
    paths = [queue.put(bytes([i]) * 10, reason="x") for i in range(3)]
    assert queue.items() == paths[1:]
    assert not paths[0].with_suffix(".json").exists()


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="ARN"):
        RekognitionSettings(project_version_arn="ducts")
    with pytest.raises(ValueError, match="min_confidence"):
        RekognitionSettings(project_version_arn=ARN, min_confidence=0.9e3)
    with pytest.raises(ValueError, match="label_map"):
        RekognitionSettings(project_version_arn=ARN, label_map={"x": "filthy"})


def test_the_config_section_is_the_backends_settings() -> None:
    from agent.config import parse_config

    vision = parse_config(
        f'[vision]\nbackend = "rekognition"\n[vision.rekognition]\nproject_version_arn = "{ARN}"\n'
        'min_confidence = 60\nlabel_map = { Dust = "dirty" }\ntimeout_s = 5\n',
        env={},
    ).vision
    settings = vision.rekognition
    assert isinstance(settings, RekognitionSettings)
    assert settings.effective_region == "eu-west-1"
    assert settings.mapping == {"clean": "clean", "dirty": "dirty", "Dust": "dirty"}
    assert (settings.min_confidence, settings.timeout_s) == (60.0, 5.0)
