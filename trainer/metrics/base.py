"""What every metric shares: its inputs, its settings, and its registry.

A metric module registers a `Metric` in `METRICS` under the name that
`eval.metrics` uses. Checking sample counts is separate from computing, so a
run can reject a config before it generates or embeds any images.
"""

import dataclasses
from typing import Callable

import numpy as np

from trainer.registry import Registry

# The config fields that set how many real and generated images are embedded.
NUM_REAL_FIELD = "eval.num_real"
NUM_FAKE_FIELD = "eval.num_samples"


@dataclasses.dataclass(frozen=True)
class Features:
  """What a feature extractor gives for a set of images.

  Attributes:
    embeddings: [N, D] float64, e.g. Inception pool features.
    probabilities: [N, K] float64 class probabilities, rows sum to 1. The
      class of an image is the argmax of its row; K is the number of modes
      (10 for MNIST, 1000 for Stacked MNIST).
  """
  embeddings: np.ndarray
  probabilities: np.ndarray

  def __post_init__(self):
    if self.embeddings.ndim != 2 or self.probabilities.ndim != 2:
      raise ValueError(
          f"features must be 2-D, got embeddings {self.embeddings.shape} and "
          f"probabilities {self.probabilities.shape}")
    if len(self.embeddings) != len(self.probabilities):
      raise ValueError(
          f"{len(self.embeddings)} embeddings but {len(self.probabilities)} "
          "rows of probabilities")

  @property
  def num_samples(self) -> int:
    return len(self.embeddings)


@dataclasses.dataclass(frozen=True)
class Settings:
  """Metric options, set from the `eval` config section of the same names."""
  kid_subsets: int = 100
  kid_subset_size: int = 1000
  pr_k: int = 3
  is_splits: int = 10


@dataclasses.dataclass(frozen=True)
class Metric:
  """A metric by its two steps.

  Attributes:
    compute: (real, fake, settings) -> {key: value}.
    problems: (num_real, num_fake, settings) -> one message per sample count
      or setting that is too small for this metric; [] if it can run. Cheap.
  """
  compute: Callable[[Features, Features, Settings], dict[str, float]]
  problems: Callable[[int, int, Settings], list[str]]


METRICS: Registry[Metric] = Registry("metric", "eval.metrics")


def too_few_samples(metric: str, minimum: int, *, num_real: int | None = None,
                    num_fake: int | None = None, reason: str = "",
                    setting: str | None = None) -> list[str]:
  """One message for each given set with fewer than `minimum` samples.

  Args:
    metric: the metric's registered name.
    minimum: the smallest count it can run on.
    num_real, num_fake: the counts to check; None skips a set.
    reason: why `minimum` is needed, shown after it.
    setting: the config field that sets `minimum`, if any; lowering it is the
      other fix.

  Returns:
    e.g. ["metric 'kid' needs at least 1000 real samples (one subset of
    eval.kid_subset_size), got 500; raise eval.num_real or lower
    eval.kid_subset_size"], or [] if the counts suffice.
  """
  why = f" ({reason})" if reason else ""
  or_lower = f" or lower {setting}" if setting else ""
  return [f"metric {metric!r} needs at least {minimum} {kind} samples{why}, "
          f"got {count}; raise {field}{or_lower}"
          for kind, count, field in (("real", num_real, NUM_REAL_FIELD),
                                     ("generated", num_fake, NUM_FAKE_FIELD))
          if count is not None and count < minimum]


def setting_too_small(metric: str, field: str, value: int,
                      minimum: int) -> list[str]:
  """[] if value >= minimum, else one message naming the config field."""
  if value >= minimum:
    return []
  return [f"metric {metric!r} needs {field} >= {minimum}, got {value}; "
          f"raise {field}"]


def kl_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
  """KL(p || q) in nats along the last axis, with 0 log 0 = 0.

  Logs are taken of max(x, tiny) so that zeros give no warnings or NaNs: a
  zero in p contributes nothing, and a zero in q where p > 0 gives a large
  finite term rather than inf.
  """
  tiny = np.finfo(np.float64).tiny
  log_ratio = np.log(np.maximum(p, tiny)) - np.log(np.maximum(q, tiny))
  return np.sum(p * log_ratio, axis=-1)
