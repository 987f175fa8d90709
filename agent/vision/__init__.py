"""Visual Clean: is this duct clean or dirty?

Every backend (the local ONNX model, Amazon Rekognition Custom Labels, the cascade of both) takes a
BGR image and returns a :class:`Verdict`; the rest of the agent never knows which one ran. Backends
live in their own modules and import their heavy libraries (onnxruntime, boto3) only when built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from agent.errors import ExitCode, RemotairError

CLEAN = "clean"
DIRTY = "dirty"
LABELS: tuple[str, str] = (CLEAN, DIRTY)
"""The two verdict labels, in the class-index order of every model and manifest."""
UNCERTAIN = "uncertain"
"""The model cannot tell: calibrated p(dirty) inside the uncertain band, or the image is unlike
anything it was trained on (out of distribution). Cascade mode asks Rekognition instead."""
UNUSABLE = "unusable"
"""The picture itself cannot be judged (too dark, over-exposed, out of focus, lens covered or
fogged); the image-quality gate says so before any model sees it."""
OUTCOMES: tuple[str, ...] = (CLEAN, DIRTY, UNCERTAIN, UNUSABLE)
"""Every verdict label; only clean and dirty move a dirty-duct alarm."""

BgrImage = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class Verdict:
    """One decision about one image.

    ``label`` is one of :data:`OUTCOMES`; ``reason`` says why an ``uncertain`` or ``unusable``
    verdict is one (empty for a plain clean/dirty, and then left out of the wire payload).
    ``confidence`` is the probability of the clean/dirty side the model leans to (0.5-1.0 for
    two classes); ``dirty_probability`` is the (calibrated, when the manifest says how)
    probability of ``dirty`` whatever the label, the value the uncertain band is defined on, None
    when no model looked (``unusable``). A cascade verdict carries the backends' own verdicts in
    ``opinions`` and names the one that decided in
    ``decided_by``.
    """

    label: str
    confidence: float
    backend: str
    model_id: str
    latency_ms: float
    dirty_probability: float | None
    opinions: tuple[Verdict, ...] = ()
    decided_by: str = ""
    pending: bool = False
    """True when the deciding backend could not answer yet (the image waits in a retry queue)."""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    reason: str = ""

    @property
    def decided(self) -> bool:
        """True for a clean or dirty verdict (the only ones an alarm may count)."""
        return self.label in LABELS

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "label": self.label,
            "confidence": round(self.confidence, 4),
            "dirty_probability": rounded(self.dirty_probability),
            "backend": self.backend,
            "model_id": self.model_id,
            "latency_ms": round(self.latency_ms, 2),
            "decided_by": self.decided_by or self.backend,
            "pending": self.pending,
        }
        if self.reason:
            data["reason"] = self.reason
        if self.opinions:
            data["opinions"] = [o.to_dict() for o in self.opinions]
        if self.extra:
            data["extra"] = dict(self.extra)
        return data


def rounded(value: float | None, digits: int = 4) -> float | None:
    """``round`` that keeps None (JSON null), for optional probabilities on the wire."""
    return None if value is None else round(value, digits)


@runtime_checkable
class Classifier(Protocol):
    """Image in, verdict out."""

    @property
    def name(self) -> str:
        """Backend name as it appears in verdicts (``onnx``, ``rekognition``, ``cascade``)."""
        ...

    def classify(self, image: BgrImage) -> Verdict:
        """Classify a decoded BGR image (H x W x 3, uint8)."""
        ...

    def classify_file(self, path: Path) -> Verdict:
        """Classify an image file; backends may decode it more cheaply than a full decode."""
        ...

    def close(self) -> None:
        """Release sessions and clients."""
        ...


class VisionError(RemotairError):
    """Base of every Visual Clean failure."""


class ModelError(VisionError):
    """The model file or its manifest is missing, corrupt, or they do not match each other."""

    exit_code = ExitCode.FAILURE

    def __init__(self, message: str, *, path: Path | str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = Path(path)


class ImageError(VisionError):
    """An image could not be read or decoded."""

    exit_code = ExitCode.FAILURE

    def __init__(self, message: str, *, path: Path | str | None = None) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = Path(path) if path else None


class CloudError(VisionError):
    """Rekognition gave no verdict. ``queued_as`` is where the snapshot was kept, if it was."""

    exit_code = ExitCode.UNAVAILABLE

    def __init__(self, message: str, *, queued_as: Path | None = None) -> None:
        kept = f" (snapshot kept for retry: {queued_as})" if queued_as else ""
        super().__init__(message + kept)
        self.reason = message
        self.queued_as = queued_as


class CloudModelNotRunningError(CloudError):
    """The Custom Labels model version is stopped or starting (``ResourceNotReadyException``)."""


class CloudThrottledError(CloudError):
    """Throttled by the service even after the bounded back-off."""


class CloudAuthError(CloudError):
    """Credentials missing, invalid, expired, or not allowed to call ``DetectCustomLabels``."""

    exit_code = ExitCode.USAGE


class CloudUnreachableError(CloudError):
    """No network, DNS failure, or a timeout talking to the service."""


class CloudRequestError(CloudError):
    """The service rejected the request (bad ARN, image too large, unmapped label...)."""

    exit_code = ExitCode.FAILURE
