"""Visual Clean in the cloud: Amazon Rekognition Custom Labels ``DetectCustomLabels``.

The image goes as bytes (JPEG or PNG, re-encoded when needed to stay under the service's 4 MB
limit) or, when an S3 bucket is configured, as an S3 object uploaded first. ``MinConfidence``
filters weak labels, and a configurable map turns the project's label names into ``clean`` /
``dirty``.

The cloud fails in ways a board must survive: the model version stopped (it is billed per running
hour, so someone stops it), throttling, expired or missing credentials, no network. Throttling and
transient server errors are retried with a bounded exponential back-off; whatever still fails
leaves the snapshot in a :class:`RetryQueue` directory (durable, bounded) and raises a typed
:class:`~agent.vision.CloudError` that names where the snapshot was kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np

from agent.atomic_file import write_atomic
from agent.vision import (
    DIRTY,
    BgrImage,
    CloudAuthError,
    CloudError,
    CloudModelNotRunningError,
    CloudRequestError,
    CloudThrottledError,
    CloudUnreachableError,
    ImageError,
    Verdict,
    VisionError,
)
from agent.vision.preprocess import decode_image, jpeg_size
from agent.vision.settings import RekognitionSettings

logger = logging.getLogger(__name__)

BACKEND = "rekognition"
MAX_IMAGE_BYTES = 4 * 1024 * 1024
"""DetectCustomLabels accepts at most 4 MB of image bytes."""
_THROTTLE_CODES = frozenset(
    {"ThrottlingException", "ProvisionedThroughputExceededException", "LimitExceededException"}
)
_TRANSIENT_CODES = frozenset({"InternalServerError", "ServiceUnavailableException"})
_AUTH_CODES = frozenset(
    {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
    }
)
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class RetryQueue:
    """A directory of snapshots waiting for the cloud: ``<stamp>.jpg`` + ``<stamp>.json``.

    Writes are atomic (temporary file, fsync, rename), so a power cut leaves either a whole entry
    or none. The queue is bounded: beyond ``max_items`` the oldest snapshot is dropped (and logged)
    so that a board cut off from the cloud for months does not fill its SD card.
    """

    def __init__(self, directory: Path, *, max_items: int = 500) -> None:
        if max_items < 1:
            raise ValueError("max_items must be >= 1")
        self.directory = directory
        self.max_items = max_items

    def put(self, image: bytes, *, reason: str, suffix: str = ".jpg") -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(image).hexdigest()[:12]
        stem = f"{time.time_ns():020d}-{digest}"
        path = self.directory / f"{stem}{suffix}"
        write_atomic(path, image)
        meta = {"reason": reason, "queued_at_ns": time.time_ns(), "bytes": len(image)}
        write_atomic(path.with_suffix(".json"), json.dumps(meta).encode())
        self._trim()
        logger.warning("vision snapshot queued for cloud retry path=%s reason=%s", path, reason)
        return path

    def items(self) -> list[Path]:
        """Queued snapshots, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(
            p
            for p in self.directory.iterdir()
            if p.suffix in (".jpg", ".png") and not p.name.startswith(".")
        )

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        path.with_suffix(".json").unlink(missing_ok=True)

    def _trim(self) -> None:
        items = self.items()
        for old in items[: max(0, len(items) - self.max_items)]:
            logger.warning("vision retry queue full, dropping oldest path=%s", old)
            self.remove(old)


def encode_for_upload(image: BgrImage, *, limit: int = MAX_IMAGE_BYTES) -> bytes:
    """JPEG bytes under ``limit``: lower quality first, then halve the size until it fits."""
    current = image
    while True:
        for quality in (92, 85, 75, 60):
            ok, buffer = cv2.imencode(".jpg", current, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if not ok:
                raise ImageError("cannot encode image as JPEG")
            if buffer.nbytes <= limit:
                return bytes(buffer.tobytes())
        height, width = current.shape[:2]
        if min(height, width) < 64:
            raise ImageError(f"cannot bring the image under {limit} bytes")
        current = cast(
            BgrImage, cv2.resize(current, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
        )


def upload_bytes(data: bytes, *, limit: int = MAX_IMAGE_BYTES, source: Path | str = "") -> bytes:
    """The file's own bytes if the service takes them as they are, else a re-encoded JPEG."""
    is_jpeg = jpeg_size(data) is not None
    if (is_jpeg or data.startswith(_PNG_MAGIC)) and len(data) <= limit:
        return data
    return encode_for_upload(decode_image(data, source=source or "<bytes>"), limit=limit)


class RekognitionClassifier:
    """``DetectCustomLabels`` as a :class:`~agent.vision.Classifier`."""

    def __init__(
        self,
        settings: RekognitionSettings,
        *,
        retry_queue: RetryQueue | None = None,
        client: Any = None,
        s3_client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if not settings.project_version_arn:
            raise VisionError("[vision.rekognition] project_version_arn is required")
        self.settings = settings
        self.arn: str = settings.project_version_arn
        self.retry_queue = retry_queue
        self._client = client if client is not None else self._make_client("rekognition")
        self._s3 = s3_client
        if settings.s3_bucket and self._s3 is None:
            self._s3 = self._make_client("s3")
        self._sleep = sleep
        self._rng = rng or random.Random()

    @property
    def name(self) -> str:
        return BACKEND

    def _make_client(self, service: str) -> Any:
        import boto3
        from botocore.config import Config

        config = Config(
            connect_timeout=self.settings.timeout_s,
            read_timeout=self.settings.timeout_s,
            retries={"max_attempts": 1, "mode": "standard"},  # throttling is retried here
        )
        # A session of our own: boto3's module-level default session caches credentials forever.
        session = boto3.session.Session()
        return session.client(
            service,
            region_name=self.settings.effective_region,
            endpoint_url=self.settings.endpoint_url or None,
            config=config,
        )

    def classify(self, image: BgrImage) -> Verdict:
        return self.classify_bytes(encode_for_upload(image))

    def classify_file(self, path: Path) -> Verdict:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ImageError(f"cannot read image: {exc.strerror or exc}", path=path) from exc
        return self.classify_bytes(upload_bytes(data, source=path))

    def classify_bytes(self, data: bytes) -> Verdict:
        """Classify JPEG/PNG bytes (at most 4 MB); queue them for retry if the cloud fails."""
        started = time.perf_counter()
        try:
            response = self._detect(data)
        except CloudError as exc:
            if isinstance(exc, CloudRequestError) or self.retry_queue is None:
                raise
            suffix = ".png" if data.startswith(_PNG_MAGIC) else ".jpg"
            queued = self.retry_queue.put(data, reason=exc.reason, suffix=suffix)
            raise type(exc)(exc.reason, queued_as=queued) from exc
        return self._verdict(response, (time.perf_counter() - started) * 1000.0)

    def retry_pending(self, *, limit: int = 20) -> list[tuple[Path, Verdict]]:
        """Send queued snapshots (oldest first) until one fails; returns what got a verdict."""
        if self.retry_queue is None:
            return []
        done: list[tuple[Path, Verdict]] = []
        for path in self.retry_queue.items()[:limit]:
            started = time.perf_counter()
            try:
                response = self._detect(path.read_bytes())
                verdict = self._verdict(response, (time.perf_counter() - started) * 1000.0)
            except CloudRequestError as exc:
                logger.error(
                    "vision queued snapshot rejected, dropping path=%s error=%s", path, exc
                )
                self.retry_queue.remove(path)
                continue
            except CloudError as exc:
                logger.info("vision cloud still unavailable pending=%d reason=%s", len(done), exc)
                break
            done.append((path, verdict))
            self.retry_queue.remove(path)
        return done

    def _image_argument(self, data: bytes) -> dict[str, Any]:
        if not self.settings.s3_bucket:
            return {"Bytes": data}
        key = f"{self.settings.s3_prefix}{hashlib.sha256(data).hexdigest()[:16]}.jpg"
        self._call(lambda: self._s3.put_object(Bucket=self.settings.s3_bucket, Key=key, Body=data))
        return {"S3Object": {"Bucket": self.settings.s3_bucket, "Name": key}}

    def _detect(self, data: bytes) -> dict[str, Any]:
        image = self._image_argument(data)
        response: dict[str, Any] = self._call(
            lambda: self._client.detect_custom_labels(
                ProjectVersionArn=self.arn,
                Image=image,
                MinConfidence=float(self.settings.min_confidence),
            )
        )
        return response

    def _call(self, request: Callable[[], Any]) -> Any:
        """Run one AWS request with bounded back-off; translate every failure to a CloudError."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            HTTPClientError,
            NoCredentialsError,
            ParamValidationError,
            PartialCredentialsError,
        )
        from botocore.exceptions import ConnectionError as BotoConnectionError

        attempt = 0
        while True:
            attempt += 1
            try:
                return request()
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                message = str(exc.response.get("Error", {}).get("Message", "")) or code
                retryable = code in _THROTTLE_CODES or code in _TRANSIENT_CODES
                if retryable and attempt < self.settings.max_attempts:
                    delay = self._backoff(attempt)
                    logger.info(
                        "vision cloud retry code=%s attempt=%d delay_s=%.2f", code, attempt, delay
                    )
                    self._sleep(delay)
                    continue
                raise self._client_error(code, message, attempt) from exc
            except (NoCredentialsError, PartialCredentialsError) as exc:
                raise CloudAuthError(f"no usable AWS credentials ({exc})") from exc
            except (BotoConnectionError, HTTPClientError) as exc:
                raise CloudUnreachableError(f"cannot reach Rekognition ({exc})") from exc
            except ParamValidationError as exc:
                raise CloudRequestError(f"invalid request ({exc})") from exc
            except BotoCoreError as exc:
                raise CloudUnreachableError(f"AWS client error ({exc})") from exc

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.settings.backoff_max_s, self.settings.backoff_base_s * 2.0**attempt / 2)
        return float(ceiling / 2 + self._rng.uniform(0, ceiling / 2))

    def _client_error(self, code: str, message: str, attempts: int) -> CloudError:
        if code == "ResourceNotReadyException":
            return CloudModelNotRunningError(
                f"model version is not running ({message}); start it with StartProjectVersion:"
                f" {self.arn}"
            )
        if code in _THROTTLE_CODES:
            return CloudThrottledError(
                f"throttled by Rekognition after {attempts} attempts ({code})"
            )
        if code in _TRANSIENT_CODES:
            return CloudUnreachableError(
                f"Rekognition unavailable after {attempts} attempts ({code})"
            )
        if code in _AUTH_CODES:
            return CloudAuthError(f"AWS credentials rejected ({code}: {message})")
        return CloudRequestError(f"Rekognition rejected the request ({code}: {message})")

    def _verdict(self, response: Mapping[str, Any], latency_ms: float) -> Verdict:
        labels = response.get("CustomLabels", [])
        mapping = self.settings.mapping
        mapped = [
            (mapping[item["Name"]], float(item["Confidence"]) / 100.0, item["Name"])
            for item in labels
            if item.get("Name") in mapping
        ]
        if not mapped:
            names = [item.get("Name") for item in labels]
            if names:
                raise CloudRequestError(
                    f"Rekognition labels {names} are not in label_map {mapping}"
                )
            raise CloudRequestError(
                f"Rekognition returned no label at or above min_confidence="
                f"{self.settings.min_confidence:g}%"
            )
        label, confidence, raw = max(mapped, key=lambda m: m[1])
        confidence = float(np.clip(confidence, 0.0, 1.0))
        return Verdict(
            label=label,
            confidence=confidence,
            backend=BACKEND,
            model_id=self.settings.model_id,
            latency_ms=latency_ms,
            dirty_probability=confidence if label == DIRTY else 1.0 - confidence,
            extra={"rekognition_label": raw},
        )

    def close(self) -> None:
        for client in (self._client, self._s3):
            close = getattr(client, "close", None)
            if callable(close):
                close()
