"""Modes and class KL from argmax class histograms."""

import numpy as np
import pytest

from trainer.metrics import class_coverage


def _one_hot(classes: np.ndarray, num_classes: int) -> np.ndarray:
  return np.eye(num_classes)[classes]


@pytest.mark.parametrize("num_classes, present", [(10, 10), (1000, 10)])
def test_equal_histograms_give_zero_kl(num_classes, present):
  # (1000, 10): Stacked MNIST with most classes absent from both sets.
  classes = np.arange(present)
  real = _one_hot(np.repeat(classes, 3), num_classes)  # Sizes differ.
  fake = _one_hot(classes, num_classes)
  modes, mode_kl = class_coverage.class_coverage(real, fake)
  assert modes == present
  assert abs(mode_kl) <= 1e-12


def test_one_class_gives_one_mode_and_the_kl_to_uniform():
  real = _one_hot(np.arange(10), 10)
  fake = _one_hot(np.full(20, 4), 10)
  modes, mode_kl = class_coverage.class_coverage(real, fake)
  assert modes == 1
  # KL(one class || uniform over 10) = log 10, up to the smoothing.
  assert mode_kl == pytest.approx(np.log(10), rel=1e-4)


def test_a_class_absent_from_the_real_histogram_gives_a_finite_kl():
  real = _one_hot(np.arange(5), 10)
  fake = _one_hot(np.arange(10), 10)
  modes, mode_kl = class_coverage.class_coverage(real, fake)
  assert modes == 10
  # Half the mass on classes absent from the real set: more than log 2, but
  # bounded by the documented smoothing (weight 1e-6) near log(10 / 1e-6).
  assert np.log(2) < mode_kl < np.log(10 / 1e-6)
