"""Out of distribution: is this picture unlike anything the model was trained on?

A class-conditional Mahalanobis distance on the model's ``features`` output, with the covariance
shared by the classes and approximated by probabilistic PCA, so the statistics stay a few tens of
kB in the manifest (its ``"ood"`` field, described in :mod:`agent.vision.calibration`).
numpy only: the training pipeline and ``remotair model adapt`` on the board fit it alike.

The manifest's ``method`` names the feature map applied before the distance (:data:`OOD_METHODS`).
``ppca-mahalanobis-sqrt`` takes the signed square root of each feature first (the "power
normalisation" of Perronnin et al. 2010): pooled ReLU features are heavy-tailed, and on version 6
the square root shortened the in-distribution tail so that, with the threshold at the 99th
percentile, a checkerboard scores 3.4x the threshold instead of 0.9x (model card, Outcomes).
An agent that does not know a method refuses the manifest by name rather than score features
in the wrong space.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.vision.calibration import (
    DEFAULT_OOD_DIMS,
    DEFAULT_OOD_QUANTILE,
    OOD_METHOD,
    CalibrationError,
    Floats,
    decode_array,
    encode_array,
)


def signed_sqrt(features: Floats) -> Floats:
    result: Floats = np.sign(features) * np.sqrt(np.abs(features))
    return result


def _identity(features: Floats) -> Floats:
    return features


OOD_METHODS: dict[str, Callable[[Floats], Floats]] = {
    "ppca-mahalanobis": _identity,
    "ppca-mahalanobis-sqrt": signed_sqrt,
}
"""Feature map of each OOD method, applied to the ``features`` rows before fitting and scoring."""


def _feature_map(method: str) -> Callable[[Floats], Floats]:
    try:
        return OOD_METHODS[method]
    except KeyError:
        known = ", ".join(repr(m) for m in OOD_METHODS)
        raise ValueError(
            f"unknown OOD method {method!r}; this agent knows {known}: update the agent"
        ) from None


@dataclass(frozen=True, slots=True, eq=False)
class OodDetector:
    """Class-conditional Mahalanobis distance with a probabilistic-PCA shared covariance.

    ``score(f) = min_c  sum_i ((f - mu_c) . v_i)^2 / lambda_i  +  |residual|^2 / sigma^2``, where
    ``v_i, lambda_i`` are the top eigenvectors/values of the within-class covariance and
    ``sigma^2`` the mean of the remaining eigenvalues: the full Mahalanobis distance of the PPCA
    model, whose residual term catches what the training images never varied in. ``f`` is the
    feature row after the ``method``'s feature map.
    """

    class_means: Floats
    components: Floats
    eigenvalues: Floats
    noise_variance: float
    threshold: float
    quantile: float = DEFAULT_OOD_QUANTILE
    images: int = 0
    method: str = OOD_METHOD

    def __post_init__(self) -> None:
        _feature_map(self.method)

    @property
    def dims(self) -> int:
        return int(self.components.shape[1])

    def score(self, features: npt.ArrayLike) -> Floats:
        """OOD score of each feature row [N, D]; higher means further from the training data."""
        f = np.atleast_2d(np.asarray(features, dtype=np.float64))
        if f.shape[1] != self.dims:
            raise ValueError(
                f"features have {f.shape[1]} values, the OOD model expects {self.dims}"
            )
        f = _feature_map(self.method)(f)
        best = np.full(f.shape[0], np.inf)
        for mean in self.class_means:
            centred = f - mean
            projected = centred @ self.components.T
            inside = (projected**2 / self.eigenvalues).sum(axis=1)
            residual = (centred**2).sum(axis=1) - (projected**2).sum(axis=1)
            best = np.minimum(best, inside + np.maximum(residual, 0.0) / self.noise_variance)
        return best

    def is_out(self, features: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        result: npt.NDArray[np.bool_] = self.score(features) > self.threshold
        return result

    def with_threshold(self, scores: npt.ArrayLike, quantile: float) -> OodDetector:
        """The same model with its threshold at ``quantile`` of in-distribution ``scores``."""
        s = np.asarray(scores, dtype=np.float64).reshape(-1)
        if s.size == 0:
            raise CalibrationError("need in-distribution scores to place the OOD threshold")
        return replace(self, threshold=float(np.quantile(s, quantile)), quantile=quantile)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "threshold": round(self.threshold, 6),
            "quantile": self.quantile,
            "images": self.images,
            "noise_variance": float(self.noise_variance),
            "class_means": encode_array(self.class_means),
            "components": encode_array(self.components),
            "eigenvalues": encode_array(self.eigenvalues),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OodDetector:
        method = str(data.get("method"))
        _feature_map(method)
        means = decode_array(data["class_means"])
        components = decode_array(data["components"])
        eigenvalues = decode_array(data["eigenvalues"])
        if (
            means.ndim != 2
            or components.ndim != 2
            or means.shape[1] != components.shape[1]
            or eigenvalues.shape != (components.shape[0],)
        ):
            raise ValueError(
                f"OOD arrays do not fit: class_means {list(means.shape)}, components "
                f"{list(components.shape)}, eigenvalues {list(eigenvalues.shape)}"
            )
        noise = float(data["noise_variance"])
        if noise <= 0 or np.any(eigenvalues <= 0):
            raise ValueError("OOD variances must be positive")
        return cls(
            means,
            components,
            eigenvalues,
            noise,
            float(data["threshold"]),
            float(data.get("quantile", DEFAULT_OOD_QUANTILE)),
            int(data.get("images", 0)),
            method,
        )


def principal_axes(rows: npt.ArrayLike) -> tuple[Floats, Floats]:
    """Squared singular values (descending) and right singular vectors [r, D] of ``rows``.

    Through the eigen-decomposition of the smaller of the Gram matrix (N x N) and the scatter
    matrix (D x D): an order of magnitude faster than an SVD on the board's CPU for the shapes
    seen here (tens to hundreds of images, 512 features). Directions with no variance are dropped.
    """
    x = np.atleast_2d(np.asarray(rows, dtype=np.float64))
    if x.shape[0] <= x.shape[1]:
        values, u = np.linalg.eigh(x @ x.T)
        order = np.argsort(values)[::-1]
        values, u = values[order], u[:, order]
        keep = values > max(float(values[0]), 0.0) * 1e-12
        values, u = values[keep], u[:, keep]
        vt: Floats = (u.T @ x) / np.sqrt(values)[:, None]
        return values, vt
    values, v = np.linalg.eigh(x.T @ x)
    order = np.argsort(values)[::-1]
    return np.maximum(values[order], 0.0), v[:, order].T


def fit_ood_statistics(
    features: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    dims: int = DEFAULT_OOD_DIMS,
    method: str = OOD_METHOD,
) -> OodDetector:
    """Class means and PPCA within-class covariance from (training) features; no threshold yet."""
    f = _feature_map(method)(np.atleast_2d(np.asarray(features, dtype=np.float64)))
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    if f.shape[0] != y.shape[0]:
        raise CalibrationError(f"need one label per feature row, got {y.shape[0]} and {len(f)}")
    classes = np.unique(y)
    if classes.size < 2:
        raise CalibrationError("OOD statistics need images of both classes")
    means = np.stack([f[y == c].mean(axis=0) for c in range(int(classes.max()) + 1)])
    centred = f - means[y]
    squared, vt = principal_axes(centred)
    variances = squared / max(1, f.shape[0] - classes.size)
    k = max(1, min(dims, variances.size - 1, f.shape[1] - 1))
    floor = max(float(variances[0]) * 1e-6, 1e-12)
    rest = f.shape[1] - k
    noise = float(variances[k:].sum() / rest) if rest > 0 else floor
    return OodDetector(
        class_means=means,
        components=vt[:k].copy(),
        eigenvalues=np.maximum(variances[:k], floor),
        noise_variance=max(noise, floor),
        threshold=math.inf,
        images=int(y.size),
        method=method,
    )


def fit_ood(
    train_features: npt.ArrayLike,
    train_labels: npt.ArrayLike,
    val_features: npt.ArrayLike,
    *,
    dims: int = DEFAULT_OOD_DIMS,
    quantile: float = DEFAULT_OOD_QUANTILE,
    method: str = OOD_METHOD,
) -> OodDetector:
    """Statistics from the training features, threshold at ``quantile`` of the validation scores."""
    detector = fit_ood_statistics(train_features, train_labels, dims=dims, method=method)
    return detector.with_threshold(detector.score(val_features), quantile)
