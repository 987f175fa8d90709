"""Local first, the cloud only when the local model is unsure.

Most snapshots are plainly clean or plainly dirty and the board decides them alone, for free and
offline. Only an image the local model calls ``uncertain`` (its calibrated probability in the
manifest's band, or out of distribution), or whose local ``dirty_probability`` falls inside the
configured band ``[uncertain_low, uncertain_high]``, goes to Rekognition, whose answer then
decides. An ``unusable`` picture goes nowhere: the cloud cannot judge it either. If the cloud
cannot answer, the local opinion stands and the verdict says so (``pending`` when the snapshot
waits in the retry queue), so a verdict always comes back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from agent.vision import LABELS, UNCERTAIN, BgrImage, Classifier, CloudError, Verdict

logger = logging.getLogger(__name__)

BACKEND = "cascade"


class CascadeClassifier:
    """Combine a local and a cloud :class:`~agent.vision.Classifier` through an uncertainty band."""

    def __init__(
        self,
        local: Classifier,
        cloud: Classifier,
        *,
        uncertain_low: float,
        uncertain_high: float,
    ) -> None:
        if not 0.0 <= uncertain_low <= uncertain_high <= 1.0:
            raise ValueError(
                "need 0 <= uncertain_low <= uncertain_high <= 1,"
                f" got {uncertain_low}, {uncertain_high}"
            )
        self.local = local
        self.cloud = cloud
        self.uncertain_low = uncertain_low
        self.uncertain_high = uncertain_high

    @property
    def name(self) -> str:
        return BACKEND

    def is_uncertain(self, verdict: Verdict) -> bool:
        """Whether the cloud should decide: the local model said uncertain, or its clean/dirty
        verdict has a dirty probability inside the configured band."""
        if verdict.label == UNCERTAIN:
            return True
        p = verdict.dirty_probability
        return (
            verdict.label in LABELS
            and p is not None
            and self.uncertain_low <= p <= self.uncertain_high
        )

    def classify(self, image: BgrImage) -> Verdict:
        started = time.perf_counter()
        return self._decide(self.local.classify(image), lambda: self.cloud.classify(image), started)

    def classify_file(self, path: Path) -> Verdict:
        started = time.perf_counter()
        return self._decide(
            self.local.classify_file(path), lambda: self.cloud.classify_file(path), started
        )

    def _decide(self, local: Verdict, ask_cloud: Callable[[], Verdict], started: float) -> Verdict:
        if not self.is_uncertain(local):
            return self._combine(local, (local,), started)
        try:
            cloud = ask_cloud()
        except CloudError as exc:
            logger.warning(
                "vision cascade cloud failed, local verdict stands label=%s p_dirty=%s error=%s",
                local.label,
                local.dirty_probability,
                exc,
            )
            extra: dict[str, object] = {"cloud_error": exc.reason}
            if exc.queued_as is not None:
                extra["queued_as"] = str(exc.queued_as)
            return self._combine(
                local, (local,), started, pending=exc.queued_as is not None, extra=extra
            )
        reason = f"local {local.label}" + (f" ({local.reason})" if local.reason else "")
        return self._combine(cloud, (local, cloud), started, reason=reason + ", cloud decided")

    def _combine(
        self,
        decider: Verdict,
        opinions: tuple[Verdict, ...],
        started: float,
        *,
        pending: bool = False,
        extra: dict[str, object] | None = None,
        reason: str | None = None,
    ) -> Verdict:
        return Verdict(
            label=decider.label,
            confidence=decider.confidence,
            backend=BACKEND,
            model_id=decider.model_id,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            dirty_probability=decider.dirty_probability,
            opinions=opinions,
            decided_by=decider.backend,
            pending=pending,
            extra=dict(decider.extra) | dict(extra or {}),
            reason=decider.reason if reason is None else reason,
        )

    def close(self) -> None:
        self.local.close()
        self.cloud.close()
