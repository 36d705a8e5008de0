"""The package API: names, returned keys, and sample-count checks."""

import numpy as np
import pytest

from trainer import metrics
from trainer.errors import UserError

KEYS = {
    "fid": {"fid"},
    "kid": {"kid", "kid_std"},
    "inception_score": {"inception_score", "inception_score_std"},
    "precision_recall": {"precision", "recall"},
    "class_coverage": {"modes", "mode_kl"},
}
SMALL = metrics.Settings(kid_subsets=4, kid_subset_size=20, pr_k=3,
                         is_splits=5)


def _features(rng: np.random.Generator, num: int) -> metrics.Features:
  logits = rng.normal(size=(num, 10))
  probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
  return metrics.Features(embeddings=rng.normal(size=(num, 6)),
                          probabilities=probabilities)


def test_the_registered_names_are_the_documented_ones():
  assert set(metrics.METRICS.names()) == set(KEYS)


@pytest.mark.parametrize("names", [[name] for name in KEYS] + [list(KEYS)])
def test_compute_returns_exactly_the_documented_keys(names):
  rng = np.random.default_rng(0)
  values = metrics.compute(names, _features(rng, 50), _features(rng, 40),
                           SMALL)
  assert set(values) == set().union(*(KEYS[name] for name in names))
  assert all(type(value) is float for value in values.values())


@pytest.mark.parametrize("name, num_real, num_fake, settings, field", [
    ("fid", 1, 10, SMALL, "eval.num_real"),
    ("fid", 10, 1, SMALL, "eval.num_samples"),
    ("kid", 19, 50, SMALL, "eval.num_real"),
    ("kid", 50, 19, SMALL, "eval.num_samples"),
    ("kid", 50, 50, metrics.Settings(kid_subset_size=1),
     "eval.kid_subset_size"),
    ("kid", 50, 50, metrics.Settings(kid_subsets=0, kid_subset_size=20),
     "eval.kid_subsets"),
    ("inception_score", 50, 4, SMALL, "eval.num_samples"),
    ("inception_score", 50, 50, metrics.Settings(is_splits=0),
     "eval.is_splits"),
    ("precision_recall", 3, 50, SMALL, "eval.num_real"),
    ("precision_recall", 50, 3, SMALL, "eval.num_samples"),
    ("precision_recall", 50, 50, metrics.Settings(pr_k=0), "eval.pr_k"),
    ("class_coverage", 0, 1, SMALL, "eval.num_real"),
    ("class_coverage", 1, 0, SMALL, "eval.num_samples"),
])
def test_too_small_counts_name_the_metric_and_the_field(
    name, num_real, num_fake, settings, field):
  with pytest.raises(UserError) as error:
    metrics.check_sample_counts([name], num_real, num_fake, settings)
  assert repr(name) in str(error.value)
  assert field in str(error.value)


def test_the_smallest_valid_counts_pass():
  # One more than each failing count above (2 for fid, subset size for kid).
  metrics.check_sample_counts(list(KEYS), num_real=20, num_fake=20,
                              settings=SMALL)
  metrics.check_sample_counts(["precision_recall"], 4, 4, SMALL)
  metrics.check_sample_counts(["inception_score"], 0, 5, SMALL)


def test_one_message_lists_every_problem():
  with pytest.raises(UserError) as error:
    metrics.check_sample_counts(["fid", "kid"], 1, 1, SMALL)
  message = str(error.value)
  assert "'fid'" in message and "'kid'" in message
  assert "eval.num_real" in message and "eval.num_samples" in message


def test_an_unknown_name_lists_the_valid_ones():
  with pytest.raises(UserError) as error:
    metrics.check_sample_counts(["fid", "fdi"], 100, 100, SMALL)
  assert "'fdi'" in str(error.value) and "eval.metrics" in str(error.value)
  assert all(name in str(error.value) for name in KEYS)


def test_compute_checks_the_actual_counts_first():
  rng = np.random.default_rng(1)
  with pytest.raises(UserError, match="eval.num_samples"):
    metrics.compute(["kid"], _features(rng, 50), _features(rng, 10), SMALL)
