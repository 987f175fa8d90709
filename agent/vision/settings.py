"""The ``[vision]`` section and its ``[vision.rekognition]`` table, as the backends take them.

:func:`agent.vision.factory.build_classifier` is given :class:`VisionConfig` as the loader built
it, and the Rekognition backend its :class:`RekognitionSettings`: no second copy, no second check.
"""

from __future__ import annotations

import importlib.resources
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, TypeAlias

from agent.config_base import ConfigPath, Problem, Section, setting
from agent.vision import CLEAN, DIRTY, LABELS

VisionBackend: TypeAlias = Literal["onnx", "rekognition", "cascade", "off"]
BACKENDS: tuple[str, ...] = ("onnx", "rekognition", "cascade", "off")
SHIPPED_MODEL = "visual_clean_resnet18_int8.onnx"
REKOGNITION = "rekognition"
_ARN = re.compile(r"arn:aws[a-z-]*:rekognition:[a-z0-9-]+:\d{12}:project/.+/version/.+")


def shipped_model_path() -> Path:
    """The int8 ResNet-18 committed in ``models/`` (installed as package data)."""
    return Path(str(importlib.resources.files("models").joinpath(SHIPPED_MODEL)))


class RekognitionSettings(Section):
    """Amazon Rekognition Custom Labels (backend "rekognition", or "cascade" when uncertain)."""

    project_version_arn: str | None = setting(
        None,
        "model version ARN (DetectCustomLabels ProjectVersionArn)",
        example="arn:aws:rekognition:eu-west-1:123456789012:project/ducts/version/v1/1",
    )
    region: str | None = setting(
        None, "AWS region", auto="the region in project_version_arn", example="eu-west-1"
    )
    min_confidence: float = setting(
        50.0, "MinConfidence in percent: labels below are not returned", ge=0, le=100
    )
    label_map: dict[str, str] = setting(
        default_factory=dict,
        description='Custom Labels label -> "clean" or "dirty" (labels named clean/dirty map '
        "themselves)",
        example={"Clean duct": "clean", "Dust": "dirty"},
    )
    s3_bucket: str | None = setting(
        None, "send images through this S3 bucket instead of inline bytes", example="ducts"
    )
    s3_prefix: str = setting("remotair/snapshots/", "key prefix inside s3_bucket")
    timeout_s: float = setting(10.0, "request timeout", gt=0)
    max_attempts: int = setting(4, "calls per image when throttled (the first one included)", ge=1)
    backoff_base_s: float = setting(0.5, "first back-off after a throttled call", gt=0)
    backoff_max_s: float = setting(8.0, "longest back-off after a throttled call", gt=0)
    endpoint_url: str | None = setting(
        None, "a private endpoint (VPC endpoint) instead of AWS's public one"
    )

    @property
    def mapping(self) -> dict[str, str]:
        """The effective label map: ``clean``/``dirty`` themselves, then ``label_map``."""
        return {CLEAN: CLEAN, DIRTY: DIRTY, **self.label_map}

    @property
    def effective_region(self) -> str | None:
        """``region``, else the region inside the ARN (``arn:aws:rekognition:REGION:...``)."""
        if self.region:
            return self.region
        parts = (self.project_version_arn or "").split(":")
        return parts[3] if len(parts) > 3 and parts[3] else None

    @property
    def model_id(self) -> str:
        """``rekognition:<version name>`` from ``...:project/P/version/V/123``."""
        parts = (self.project_version_arn or "").split("/")
        name = parts[3] if len(parts) >= 4 and parts[2] == "version" else parts[-1]
        return f"{REKOGNITION}:{name}"

    def problems(self) -> Iterator[Problem]:
        arn = self.project_version_arn
        if arn is not None and not _ARN.fullmatch(arn):
            yield ("project_version_arn",), f"{arn!r} is not a Rekognition project version ARN"
        for label, verdict in self.label_map.items():
            if verdict not in LABELS:
                yield ("label_map", label), f'{verdict!r} must be "clean" or "dirty"'


class VisionConfig(Section):
    """Visual Clean: how a snapshot becomes a clean/dirty verdict."""

    backend: VisionBackend = setting(
        "onnx", "onnx (local), rekognition (cloud), cascade (local, cloud if uncertain), off"
    )
    model: ConfigPath = setting(
        default_factory=shipped_model_path,
        description="ONNX model (its manifest sits beside it)",
        auto=f"the shipped models/{SHIPPED_MODEL}",
        example="/etc/remotair/model.onnx",
    )
    threads: int = setting(1, "ONNX Runtime intra-op threads", ge=1)
    uncertain_low: float = setting(
        0.35, "dirty probability above which a verdict is uncertain", ge=0, le=1
    )
    uncertain_high: float = setting(
        0.65, "dirty probability below which a verdict is uncertain", ge=0, le=1
    )
    quality_gate: bool = setting(
        True,
        "check each picture before any model: too dark, over-exposed, pixel noise (a sensor or"
        " cable fault), lens covered or fogged, out of focus give the verdict unusable",
    )
    rekognition: RekognitionSettings = setting(
        default_factory=RekognitionSettings, description="[vision.rekognition]"
    )

    def problems(self) -> Iterator[Problem]:
        if self.uncertain_low >= self.uncertain_high:
            yield (
                ("uncertain_high",),
                f"{self.uncertain_high:g} must be greater than uncertain_low "
                f"{self.uncertain_low:g}",
            )
        if self.backend in ("rekognition", "cascade") and not self.rekognition.project_version_arn:
            yield (
                ("rekognition", "project_version_arn"),
                f'backend "{self.backend}" needs [vision.rekognition] project_version_arn',
            )
