"""Local Visual Clean: the quantized ResNet in ONNX Runtime.

The board classifies a snapshot every few minutes, so the session is tuned for one small, quick
inference among other work rather than for throughput: a fixed, small thread pool that does not
spin between calls (spinning would burn a core for nothing between snapshots), full graph
optimisation, and one warm-up run at load so that the first real verdict is not slowed by lazy
kernel initialisation. No CPU memory arena: the arena keeps its high-water mark for the life of
the session (about 8 MB more RSS for the shipped model) to save allocations that take well under a
millisecond per inference.

A model whose manifest carries ``calibration``/``ood``/``head`` (see
:mod:`agent.vision.calibration`) has a second output, ``features``; its verdicts are calibrated
and may be ``uncertain`` (with the reason). An old-style model (one output, no calibration) only
ever says clean or dirty, exactly as before.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from agent.vision import CLEAN, DIRTY, LABELS, UNCERTAIN, BgrImage, ModelError, Verdict
from agent.vision.calibration import FEATURES_OUTPUT, LOGITS_OUTPUT
from agent.vision.manifest import ModelManifest, load_manifest, manifest_path_for, sha256_file
from agent.vision.preprocess import FloatArray, load_image, to_model_input

logger = logging.getLogger(__name__)

BACKEND = "onnx"


def create_session(model_path: Path, *, threads: int) -> Any:
    """An onnxruntime CPU session for a board: ``threads`` intra-op threads, no spinning."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_cpu_mem_arena = False
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own pybind types (InvalidProtobuf, Fail...)
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"not a loadable ONNX model ({first_line})", path=model_path) from exc


def dirty_probability(logits: FloatArray) -> float:
    """Softmax probability of the ``dirty`` class from a 1 x 2 logit row (numerically stable)."""
    row = logits.reshape(-1).astype(np.float64)
    if row.shape[0] != len(LABELS) or not np.all(np.isfinite(row)):
        raise ValueError(f"expected {len(LABELS)} finite logits, got {row.tolist()}")
    shifted = np.exp(row - row.max())
    return float(shifted[LABELS.index(DIRTY)] / shifted.sum())


class OnnxClassifier:
    """Classify with an ONNX model described by its manifest (see :mod:`agent.vision.manifest`)."""

    def __init__(
        self,
        model_path: Path,
        *,
        manifest_path: Path | None = None,
        threads: int = 2,
        warm_up: bool = True,
    ) -> None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.model_path = model_path
        self.manifest: ModelManifest = load_manifest(manifest_path or manifest_path_for(model_path))
        self._verify_file()
        self._session = create_session(model_path, threads=threads)
        self._verify_io()
        self._input_name = self.manifest.input_name
        if warm_up:
            self._session.run(
                None, {self._input_name: np.zeros(self.manifest.input_shape, np.float32)}
            )
        logger.info(
            "vision model loaded model=%s threads=%d input=%s",
            self.manifest.model_id,
            threads,
            "x".join(map(str, self.manifest.input_shape)),
        )

    @property
    def name(self) -> str:
        return BACKEND

    @property
    def model_id(self) -> str:
        return self.manifest.model_id

    def _verify_file(self) -> None:
        if not self.model_path.is_file():
            raise ModelError("model file not found", path=self.model_path)
        if self.model_path.name != self.manifest.model_file:
            raise ModelError(
                f"manifest describes {self.manifest.model_file!r}, not this file",
                path=self.model_path,
            )
        actual = sha256_file(self.model_path)
        if actual != self.manifest.sha256:
            raise ModelError(
                f"sha256 mismatch: file is {actual[:16]}..., manifest expects"
                f" {self.manifest.sha256[:16]}... (wrong or damaged model; refusing it)",
                path=self.model_path,
            )

    def _verify_io(self) -> None:
        inputs = self._session.get_inputs()
        outputs = {o.name: list(o.shape) for o in self._session.get_outputs()}
        if len(inputs) != 1:
            raise ModelError(f"expected 1 input, model has {len(inputs)}", path=self.model_path)
        model_input = inputs[0]
        shape = list(model_input.shape)
        expected = list(self.manifest.input_shape)
        if model_input.name != self.manifest.input_name or shape != expected:
            raise ModelError(
                f"input mismatch: model has {model_input.name!r} {shape}, manifest says"
                f" {self.manifest.input_name!r} {expected}",
                path=self.model_path,
            )
        self._features_name: str | None = FEATURES_OUTPUT if FEATURES_OUTPUT in outputs else None
        if self.manifest.logits_output:
            self._logits_name = self.manifest.logits_output
        elif len(outputs) == 1:  # old style: the logits, whatever their name
            self._logits_name = next(iter(outputs))
        else:
            self._logits_name = LOGITS_OUTPUT
        if self._logits_name not in outputs:
            raise ModelError(
                f"no output {self._logits_name!r} to decide on; model has {sorted(outputs)}",
                path=self.model_path,
            )
        out_shape = outputs[self._logits_name]
        if out_shape[-1] != len(self.manifest.labels):
            raise ModelError(
                f"output has {out_shape[-1]} classes, manifest lists {len(self.manifest.labels)}",
                path=self.model_path,
            )
        if self.manifest.needs_features:
            if self._features_name is None:
                raise ModelError(
                    f"manifest has an OOD score, the model has no {FEATURES_OUTPUT!r} output",
                    path=self.model_path,
                )
            width = outputs[self._features_name][-1]
            if self.manifest.ood is not None and width != self.manifest.ood.dims:
                raise ModelError(
                    f"{FEATURES_OUTPUT!r} has {width} values, the manifest's OOD score expects"
                    f" {self.manifest.ood.dims}",
                    path=self.model_path,
                )

    def run(self, tensor: FloatArray) -> FloatArray:
        """Raw ``session.run`` on a prepared input tensor; returns the logits decided on."""
        return self.outputs(tensor)[0]

    def outputs(self, tensor: FloatArray) -> tuple[FloatArray, FloatArray | None]:
        """The logits decided on [1, 2] and, when the model has them, its features [1, D]."""
        names = [self._logits_name]
        if self._features_name is not None:
            names.append(self._features_name)
        results = self._session.run(names, {self._input_name: tensor})
        logits: FloatArray = np.asarray(results[0], dtype=np.float32)
        features = np.asarray(results[1], dtype=np.float32) if len(results) > 1 else None
        return logits, features

    def _verdict(self, tensor: FloatArray, started: float) -> Verdict:
        logits, features = self.outputs(tensor)
        manifest = self.manifest
        calibration = manifest.calibration
        p_dirty = (
            float(calibration.p_dirty(logits)[0])
            if calibration is not None
            else dirty_probability(logits)
        )
        leaning = DIRTY if p_dirty >= manifest.decision_threshold else CLEAN
        reasons: list[str] = []
        extra: dict[str, object] = {}
        if calibration is not None and calibration.in_band(p_dirty):
            low, high = calibration.uncertain_band
            reasons.append(
                f"calibrated p(dirty) {p_dirty:.3f} inside the uncertain band"
                f" [{low:.3f}, {high:.3f}]"
            )
        if manifest.ood is not None and features is not None:
            score = float(manifest.ood.score(features)[0])
            extra["ood_score"] = round(score, 2)
            if score > manifest.ood.threshold:
                reasons.append(
                    f"out of distribution: feature distance {score:.0f} above"
                    f" {manifest.ood.threshold:.0f} (unlike the images the model learnt from)"
                )
        if reasons:
            extra["leaning"] = leaning
        return Verdict(
            label=UNCERTAIN if reasons else leaning,
            confidence=p_dirty if leaning == DIRTY else 1.0 - p_dirty,
            backend=BACKEND,
            model_id=manifest.model_id,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            dirty_probability=p_dirty,
            reason="; ".join(reasons),
            extra=extra,
        )

    def classify(self, image: BgrImage) -> Verdict:
        started = time.perf_counter()
        tensor = to_model_input(
            image, self.manifest.input_size, self.manifest.mean, self.manifest.std
        )
        return self._verdict(tensor, started)

    def classify_file(self, path: Path) -> Verdict:
        """File -> verdict; the latency includes reading and (reduced-scale) decoding."""
        started = time.perf_counter()
        image = load_image(path, min_short_side=min(self.manifest.input_size))
        tensor = to_model_input(
            image, self.manifest.input_size, self.manifest.mean, self.manifest.std
        )
        return self._verdict(tensor, started)

    def close(self) -> None:
        self._session = None
