"""Fréchet Inception Distance (Heusel et al., 2017).

The Fréchet distance between Gaussians fitted to the real and the generated
embeddings:
  ||m1 - m2||^2 + tr(C1) + tr(C2) - 2 tr(sqrt(C1 C2)).
"""

import numpy as np

from trainer.metrics import base

_MIN_SAMPLES = 2  # A covariance with ddof=1 needs two samples.


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
  """The symmetric square root of a symmetric PSD matrix [D, D].

  Round-off can make eigenvalues of a rank-deficient covariance slightly
  negative; they are clipped to 0, which they are in exact arithmetic.
  """
  eigenvalues, eigenvectors = np.linalg.eigh(matrix)
  roots = np.sqrt(np.clip(eigenvalues, 0.0, None))
  return (eigenvectors * roots) @ eigenvectors.T


def frechet_distance(mean1: np.ndarray, cov1: np.ndarray, mean2: np.ndarray,
                     cov2: np.ndarray) -> float:
  """The Fréchet distance between N(mean1, cov1) and N(mean2, cov2).

  tr(sqrt(C1 C2)) is computed without complex numbers: C1 C2 is similar to
  the symmetric PSD matrix S C2 S with S = sqrt(C1), so both have the same
  eigenvalues and tr(sqrt(C1 C2)) is the sum of their square roots. Unlike a
  general matrix square root of C1 C2, this stays real and stable when the
  covariances are singular (fewer samples than dimensions).

  Args:
    mean1, mean2: means [D].
    cov1, cov2: covariances [D, D], symmetric positive semi-definite.

  Returns:
    The distance, >= 0.
  """
  mean1, cov1, mean2, cov2 = (np.asarray(x, np.float64)
                              for x in (mean1, cov1, mean2, cov2))
  sqrt_cov1 = _sqrt_psd(cov1)
  product = sqrt_cov1 @ cov2 @ sqrt_cov1  # [D, D]
  # Symmetrize the round-off so that eigvalsh sees the matrix it assumes.
  product = (product + product.T) / 2
  trace_sqrt = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh(product), 0.0, None)))
  diff = mean1 - mean2
  distance = diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * trace_sqrt
  # The exact value is >= 0; only round-off makes it negative (~1e-12).
  return float(max(distance, 0.0))


def _gaussian(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Mean [D] and covariance [D, D] (ddof=1) of embeddings [N, D]."""
  embeddings = np.asarray(embeddings, np.float64)
  # np.cov gives a scalar for D = 1; FID needs a [1, 1] matrix there too.
  return (embeddings.mean(axis=0),
          np.atleast_2d(np.cov(embeddings, rowvar=False)))


def _compute(real: base.Features, fake: base.Features,
             settings: base.Settings) -> dict[str, float]:
  del settings  # FID has no options.
  return {"fid": frechet_distance(*_gaussian(real.embeddings),
                                  *_gaussian(fake.embeddings))}


def _problems(num_real: int, num_fake: int,
              settings: base.Settings) -> list[str]:
  del settings
  return base.too_few_samples("fid", _MIN_SAMPLES, num_real=num_real,
                              num_fake=num_fake, reason="for a covariance")


base.METRICS.register("fid")(base.Metric(compute=_compute, problems=_problems))
