"""Improved precision and recall: known answers, chunking and memory."""

import tracemalloc

import numpy as np
import pytest

from trainer.metrics import precision_recall as pr


def _brute_force(real: np.ndarray, fake: np.ndarray,
                 k: int) -> tuple[float, float]:
  """All distances at once, by differences; for small sets only."""
  def distances(a, b):
    return np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)

  # Sorted distances to the own set start with the point itself (0).
  real_radii = np.sort(distances(real, real), axis=1)[:, k]
  fake_radii = np.sort(distances(fake, fake), axis=1)[:, k]
  precision = np.mean(np.any(distances(fake, real) <= real_radii, axis=1))
  recall = np.mean(np.any(distances(real, fake) <= fake_radii, axis=1))
  return precision, recall


def test_a_set_against_itself_gives_one_and_one():
  embeddings = np.random.default_rng(0).normal(size=(500, 16))
  assert pr.precision_recall(embeddings, embeddings, k=3) == (1.0, 1.0)


def test_far_apart_sets_give_zero_and_zero():
  rng = np.random.default_rng(1)
  real, fake = rng.normal(size=(2, 300, 8))
  assert pr.precision_recall(real, fake + 100, k=3) == (0.0, 0.0)


def test_a_point_on_the_radius_is_inside():
  # k = 1 on a line: real points 0..3 and generated 4, 5 all have radius 1.
  # Generated 4 is exactly 1 from real 3 and so inside its ball, and real 3
  # inside the ball of 4; nothing else is within 1 of the other set.
  # Integers keep the distances exact.
  real = np.arange(4.0)[:, None]
  fake = np.array([[4.0], [5.0]])
  assert pr.precision_recall(real, fake, k=1) == (0.5, 0.25)


def test_covering_half_of_the_real_support():
  # Real: two far-apart unit squares, equal counts. Generated: fresh points
  # in the first square only. Each is inside the real support (precision
  # ~1); only the real points of the first square are covered (recall ~0.5,
  # at most 0.5).
  rng = np.random.default_rng(2)
  first, second = rng.uniform(size=(2, 1000, 2))
  real = np.vstack([first, second + 10])
  fake = rng.uniform(size=(1000, 2))
  precision, recall = pr.precision_recall(real, fake, k=3)
  assert precision > 0.95
  assert 0.45 < recall <= 0.5


@pytest.mark.parametrize("chunk_elements", [1, 37, 10**6])
@pytest.mark.parametrize("k", [1, 3])
def test_chunks_agree_with_brute_force(chunk_elements, k):
  # Overlapping sets so that neither value is 0 or 1.
  rng = np.random.default_rng(3)
  real = rng.normal(size=(60, 5))
  fake = 1.5 * rng.normal(size=(45, 5)) + 0.5
  result = pr.precision_recall(real, fake, k=k, chunk_elements=chunk_elements)
  assert result == pytest.approx(_brute_force(real, fake, k), abs=1e-12)
  assert 0 < min(result) and max(result) < 1


def test_memory_stays_below_one_distance_matrix():
  num = 3000
  embeddings = np.random.default_rng(4).normal(size=(num, 8))
  tracemalloc.start()
  try:
    pr.precision_recall(embeddings, embeddings, k=3, chunk_elements=2**16)
    _, peak = tracemalloc.get_traced_memory()
  finally:
    tracemalloc.stop()
  assert peak < num * num * 8 / 10  # A tenth of one float64 [N, N] matrix.
