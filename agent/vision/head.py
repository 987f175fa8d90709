"""A linear head on the backbone's features: class-balanced logistic regression in numpy.

``remotair model adapt`` keeps the shipped backbone and refits only its last layer on the field
images, which a board can do in seconds without torch. The head then lives in the manifest (the
``"head"`` field, :meth:`LinearHead.to_dict`) and the ONNX backend applies it to the model's
``features`` output instead of using its ``logits``: the backbone file stays byte-identical to the
one it was adapted from (its hash proves it), no protobuf editing is needed on the board, and the
head is covered by whatever protects the manifest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.vision.calibration import Floats, decode_array, encode_array


@dataclass(frozen=True, slots=True, eq=False)
class LinearHead:
    """``logits = standardised(features) @ weights.T + bias`` for two classes (clean, dirty)."""

    weights: Floats
    """[2, D]."""
    bias: Floats
    """[2]."""
    mean: Floats
    """[D] feature mean the weights were fitted on (standardisation)."""
    scale: Floats
    """[D] feature standard deviation (floored)."""

    @property
    def dims(self) -> int:
        return int(self.weights.shape[1])

    def logits(self, features: npt.ArrayLike) -> Floats:
        f = np.atleast_2d(np.asarray(features, dtype=np.float64))
        if f.shape[1] != self.dims:
            raise ValueError(f"features have {f.shape[1]} values, the head expects {self.dims}")
        result: Floats = ((f - self.mean) / self.scale) @ self.weights.T + self.bias
        return result

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "logistic-regression",
            "weights": encode_array(self.weights),
            "bias": encode_array(self.bias),
            "mean": encode_array(self.mean),
            "scale": encode_array(self.scale),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LinearHead:
        weights = decode_array(data["weights"])
        bias = decode_array(data["bias"])
        mean = decode_array(data["mean"])
        scale = decode_array(data["scale"])
        d = weights.shape[1] if weights.ndim == 2 else -1
        if weights.shape != (2, d) or bias.shape != (2,) or mean.shape != scale.shape != (d,):
            raise ValueError(
                f"head arrays do not fit: weights {list(weights.shape)}, bias {list(bias.shape)},"
                f" mean {list(mean.shape)}, scale {list(scale.shape)}"
            )
        if np.any(scale <= 0):
            raise ValueError("head scale must be positive")
        return cls(weights, bias, mean, scale)


def fit_logistic_regression(
    features: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    l2: float = 1e-2,
    iterations: int = 200,
) -> LinearHead:
    """Class-balanced, L2-regularised binary logistic regression by Newton's method (IRLS).

    Each class weighs half of the loss whatever its image count, so a field set of 90 clean and
    10 dirty pictures does not learn "always clean". Features are standardised first; with a few
    hundred images and 512 features one Newton step is a 513 x 513 solve, which converges in
    about ten steps. The two-class head is written as logits (0, w.x + b) so the runtime's softmax
    gives exactly the fitted probability.
    """
    f = np.atleast_2d(np.asarray(features, dtype=np.float64))
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    if f.shape[0] != y.shape[0]:
        raise ValueError(f"need one label per feature row, got {y.shape[0]} and {f.shape[0]}")
    positives = float(y.sum())
    if positives == 0 or positives == y.size:
        raise ValueError("logistic regression needs images of both classes")
    mean = f.mean(axis=0)
    scale = np.maximum(f.std(axis=0), 1e-6)
    x = np.hstack([(f - mean) / scale, np.ones((f.shape[0], 1))])
    sample_weight = np.where(y == 1, 0.5 / positives, 0.5 / (y.size - positives))
    penalty = np.full(x.shape[1], l2)
    penalty[-1] = 0.0  # the bias is not shrunk
    w = np.zeros(x.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -30, 30)))
        gradient = x.T @ (sample_weight * (p - y)) + penalty * w
        hessian = (x * (sample_weight * p * (1 - p))[:, None]).T @ x + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if float(np.max(np.abs(step))) < 1e-7:
            break
    weights = np.vstack([np.zeros(f.shape[1]), w[:-1]])
    return LinearHead(weights, np.array([0.0, w[-1]]), mean, scale)
