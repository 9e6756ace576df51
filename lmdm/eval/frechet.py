"""Fréchet distance between Gaussians fitted to embeddings (as in FID/FAD), numpy only.

    FD = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a^1/2 S_b S_a^1/2)^1/2)

The matrix square roots come from symmetric eigen-decompositions (negative eigenvalues from
round-off are clipped to 0), so the result is >= 0 up to round-off and exactly the squared mean
distance when the covariances are equal.
"""

from __future__ import annotations

import attrs
import numpy as np


@attrs.frozen(eq=False)
class Gaussian:
    mean: np.ndarray  # [D]
    cov: np.ndarray  # [D, D]
    count: int  # how many embeddings it was fitted to

    @property
    def dim(self) -> int:
        return len(self.mean)


def fit_gaussian(embeddings: np.ndarray) -> Gaussian:
    """[N, D] -> mean and (maximum-likelihood, 1/N) covariance. One row gives a zero covariance."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"embeddings must be [N >= 1, D], got shape {x.shape}")
    mean = x.mean(axis=0)
    centred = x - mean
    return Gaussian(mean, centred.T @ centred / len(x), len(x))


def psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric positive semi-definite [D, D] -> its symmetric square root."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(a: Gaussian, b: Gaussian) -> float:
    if a.dim != b.dim:
        raise ValueError(f"cannot compare {a.dim}-d and {b.dim}-d embeddings")
    root_a = psd_sqrt(a.cov)
    middle = root_a @ b.cov @ root_a  # [D, D], symmetric PSD, same eigenvalues as S_a S_b
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum()
    distance = float(np.sum((a.mean - b.mean) ** 2) + np.trace(a.cov) + np.trace(b.cov) - 2.0 * cross)
    return max(distance, 0.0)


def drift(embeddings: np.ndarray, reference: Gaussian) -> float:
    """Mean over windows of the squared Mahalanobis distance to the reference, divided by D.

    embeddings [N, D] -> float. Windows drawn from the reference score 1 on average (exactly 1 for
    the windows the reference was fitted to). Used per segment to show a stream drifting away
    from the corpus over time. The covariance gets a ridge of 1e-6 * its mean variance, so a
    reference of fewer than D windows still works, but then directions it never saw count a lot.
    """
    x = np.asarray(embeddings, dtype=np.float64) - reference.mean  # [N, D]
    ridge = 1e-6 * max(np.trace(reference.cov), 1e-12) / reference.dim
    values, vectors = np.linalg.eigh(reference.cov + ridge * np.eye(reference.dim))
    whitened = (x @ vectors) / np.sqrt(np.clip(values, ridge, None))  # [N, D]
    return float(np.mean(np.sum(whitened**2, axis=1)) / reference.dim)
