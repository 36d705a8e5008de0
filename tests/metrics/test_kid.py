"""KID: unbiased MMD^2 with the cubic kernel, over random subsets."""

import itertools

import numpy as np
import pytest

from trainer.metrics import kid


def _brute_force_mmd2(x: np.ndarray, y: np.ndarray) -> float:
  """The unbiased estimate written out pair by pair."""
  def k(a, b):
    return (a @ b / len(a) + 1)**3
  m = len(x)
  within = sum(k(x[i], x[j]) + k(y[i], y[j])
               for i, j in itertools.permutations(range(m), 2))
  across = sum(k(a, b) for a in x for b in y)
  return within / (m * (m - 1)) - 2 * across / m**2


def test_whole_sets_give_the_unbiased_estimate():
  # With subsets as large as the sets, every subset is the whole set.
  rng = np.random.default_rng(0)
  real, fake = rng.normal(size=(15, 3)), rng.normal(size=(15, 3)) + 0.3
  value, std = kid.kernel_inception_distance(real, fake, num_subsets=3,
                                             subset_size=15)
  assert value == pytest.approx(_brute_force_mmd2(real, fake), rel=1e-10)
  assert std == pytest.approx(0, abs=1e-12)


def test_one_distribution_gives_about_zero():
  rng = np.random.default_rng(1)
  real, fake = rng.normal(size=(2, 2000, 16))
  value, std = kid.kernel_inception_distance(real, fake, num_subsets=20,
                                             subset_size=500)
  assert std > 0
  assert abs(value) < 3 * std


def test_shifted_distributions_give_a_clearly_positive_value():
  rng = np.random.default_rng(2)
  real, fake = rng.normal(size=(2, 2000, 16))
  value, std = kid.kernel_inception_distance(real, fake + 0.5, num_subsets=20,
                                             subset_size=500)
  assert value > 10 * std


def test_is_reproducible():
  rng = np.random.default_rng(3)
  real, fake = rng.normal(size=(2, 300, 8))
  first = kid.kernel_inception_distance(real, fake, num_subsets=5,
                                        subset_size=100)
  assert kid.kernel_inception_distance(real, fake, num_subsets=5,
                                       subset_size=100) == first
