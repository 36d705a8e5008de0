"""Inception Score at its two ends: K for confident uniform, 1 for constant."""

import numpy as np
import pytest

from trainer.metrics import inception_score


@pytest.mark.parametrize("num_classes, splits", [(10, 10), (1000, 2)])
def test_confident_uniform_predictions_give_the_number_of_classes(
    num_classes, splits):
  # Every split holds each class once, predicted with certainty.
  probabilities = np.tile(np.eye(num_classes), (splits, 1))
  score, std = inception_score.inception_score(probabilities, splits=splits)
  assert score == pytest.approx(num_classes, abs=1e-6)
  assert std == pytest.approx(0, abs=1e-6)


def test_a_constant_prediction_gives_one():
  logits = np.random.default_rng(0).normal(size=10)
  row = np.exp(logits) / np.exp(logits).sum()
  score, _ = inception_score.inception_score(np.tile(row, (100, 1)),
                                             splits=10)
  assert score == pytest.approx(1, abs=1e-12)


def test_confident_predictions_of_one_class_give_one():
  probabilities = np.zeros((100, 10))
  probabilities[:, 3] = 1
  score, _ = inception_score.inception_score(probabilities, splits=10)
  assert score == pytest.approx(1, abs=1e-12)
