"""A linear head on the backbone's features: class-balanced logistic regression in numpy.

``remotair model adapt`` keeps the shipped backbone and refits only its last layer on the field
images, which a board can do in seconds without torch. The fitted head is folded into plain
weights and bias (:meth:`LinearHead.folded`) and appended to the model as a MatMul + Add on its
``features`` output (:mod:`agent.vision.onnx_append`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from agent.vision.calibration import Floats
from agent.vision.ood import principal_axes


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

    def folded(self) -> tuple[Floats, Floats]:
        """Weights [D, 2] and bias [2] acting on raw features (the standardisation folded in)."""
        weights = (self.weights / self.scale).T
        bias = self.bias - (self.weights / self.scale) @ self.mean
        return weights, bias


def fit_logistic_regression(
    features: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    l2: float = 1.0,
    iterations: int = 200,
) -> LinearHead:
    """Class-balanced, L2-regularised binary logistic regression by Newton's method (IRLS).

    Each class weighs half of the loss whatever its image count, so a field set of 90 clean and
    10 dirty pictures does not learn "always clean". Features are standardised first; Newton
    steps (with backtracking) in at most min(images, features) + 1 dimensions converge in a few
    dozen steps, well under a second for a few hundred images. The two-class head is written as
    logits (0, w.x + b) so the runtime's softmax gives exactly the fitted probability.
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
    standardised = (f - mean) / scale
    # With fewer images than features the optimum lies in the span of the images: fit in that
    # N-dimensional basis (same L2 penalty, it is rotation invariant) and rotate back.
    basis: Floats | None = None
    if standardised.shape[0] < standardised.shape[1]:
        basis = principal_axes(standardised)[1]
        standardised = standardised @ basis.T
    x = np.hstack([standardised, np.ones((f.shape[0], 1))])
    sample_weight = np.where(y == 1, 0.5 / positives, 0.5 / (y.size - positives))
    penalty = np.full(x.shape[1], l2)
    penalty[-1] = 0.0  # the bias is not shrunk

    def loss(v: Floats) -> float:
        z = x @ v
        return float(sample_weight @ (np.logaddexp(0.0, z) - y * z) + 0.5 * penalty @ (v * v))

    w = np.zeros(x.shape[1])
    current = loss(w)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -30, 30)))
        gradient = x.T @ (sample_weight * (p - y)) + penalty * w
        hessian = (x * (sample_weight * p * (1 - p))[:, None]).T @ x + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        # Newton with backtracking: a near-separable set saturates p and overshoots otherwise
        t = 1.0
        while t > 1e-6:
            candidate = loss(w - t * step)
            if candidate <= current - 1e-4 * t * float(gradient @ step):
                break
            t /= 2.0
        w -= t * step
        improvement, current = current - candidate, candidate
        if improvement < 1e-10 or float(np.max(np.abs(t * step))) < 1e-7:
            break
    coefficients = w[:-1] if basis is None else basis.T @ w[:-1]
    weights = np.vstack([np.zeros(f.shape[1]), coefficients])
    return LinearHead(weights, np.array([0.0, w[-1]]), mean, scale)
