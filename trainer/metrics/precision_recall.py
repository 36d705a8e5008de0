"""Improved precision and recall (Kynkäänniemi et al., 2019).

Each set's support is estimated as the union of balls around its points, each
reaching the point's k-th nearest neighbour within its own set. Precision is
the fraction of generated points inside the real support (quality); recall is
the fraction of real points inside the generated support (coverage).
"""

from typing import Iterator

import numpy as np

from trainer.metrics import base

# Distances are computed in blocks of at most this many float64 values (64 MiB)
# so that N = 50,000 points never need an N x N matrix (20 GB).
_CHUNK_ELEMENTS = 2**23


def _squared_distances(queries: np.ndarray, points: np.ndarray,
                       chunk_elements: int) -> Iterator[tuple[int, np.ndarray]]:
  """Yields (first row, squared distances [rows, P]) for blocks of queries.

  Args:
    queries: [Q, D] float64.
    points: [P, D] float64.
    chunk_elements: the most values in one block; at least one row is used.
  """
  rows = max(1, chunk_elements // len(points))
  point_norms = np.einsum("ij,ij->i", points, points)  # [P]
  for start in range(0, len(queries), rows):
    chunk = queries[start:start + rows]  # [rows, D]
    # ||a||^2 + ||b||^2 - 2 a.b, in place to keep one block in memory.
    block = chunk @ points.T
    block *= -2
    block += np.einsum("ij,ij->i", chunk, chunk)[:, None]
    block += point_norms
    # Cancellation can leave tiny negative values where the true one is ~0.
    np.maximum(block, 0.0, out=block)
    yield start, block


def _radii(points: np.ndarray, k: int, chunk_elements: int) -> np.ndarray:
  """Squared distance [P] from each point to its k-th nearest other point."""
  radii = np.empty(len(points))
  for start, block in _squared_distances(points, points, chunk_elements):
    rows = np.arange(len(block))
    block[rows, start + rows] = np.inf  # A point is not its own neighbour.
    kth = np.partition(block, k - 1, axis=1)[:, k - 1]
    radii[start:start + len(block)] = kth
  return radii


def _fraction_inside(queries: np.ndarray, points: np.ndarray,
                     radii: np.ndarray, chunk_elements: int) -> float:
  """Fraction of queries within (<=) the radius of at least one point."""
  inside = sum(np.count_nonzero(np.any(block <= radii, axis=1))
               for _, block in _squared_distances(queries, points,
                                                  chunk_elements))
  return float(inside / len(queries))


def precision_recall(real: np.ndarray, fake: np.ndarray, *, k: int,
                     chunk_elements: int = _CHUNK_ELEMENTS
                     ) -> tuple[float, float]:
  """Precision and recall of embeddings fake [N', D] against real [N, D].

  Args:
    real, fake: embeddings, each with more than k rows.
    k: which nearest neighbour sets a point's radius.
    chunk_elements: the most distances held at once (memory bound).

  Returns:
    (precision, recall), each in [0, 1].
  """
  real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
  precision = _fraction_inside(fake, real, _radii(real, k, chunk_elements),
                               chunk_elements)
  recall = _fraction_inside(real, fake, _radii(fake, k, chunk_elements),
                            chunk_elements)
  return precision, recall


def _compute(real: base.Features, fake: base.Features,
             settings: base.Settings) -> dict[str, float]:
  precision, recall = precision_recall(real.embeddings, fake.embeddings,
                                       k=settings.pr_k)
  return {"precision": precision, "recall": recall}


def _problems(num_real: int, num_fake: int,
              settings: base.Settings) -> list[str]:
  return (base.setting_too_small("precision_recall", "eval.pr_k",
                                 settings.pr_k, 1)
          + base.too_few_samples(
              "precision_recall", settings.pr_k + 1, num_real=num_real,
              num_fake=num_fake,
              reason="eval.pr_k neighbours besides each point",
              setting="eval.pr_k"))


base.METRICS.register("precision_recall")(
    base.Metric(compute=_compute, problems=_problems))
