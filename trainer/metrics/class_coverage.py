"""Mode coverage by a classifier: how many classes G makes, and how evenly.

The standard mode-collapse measure on MNIST (K = 10) and Stacked MNIST
(K = 1000): each image's class is the argmax of its probabilities.
"""

import numpy as np

from trainer.metrics import base

# Weight of the uniform distribution mixed into both class histograms, so that
# a class generated but absent from the real images gives a large finite KL
# (at most about log(K / _UNIFORM_WEIGHT)) instead of inf.
_UNIFORM_WEIGHT = 1e-6


def _histogram(probabilities: np.ndarray) -> np.ndarray:
  """Smoothed class frequencies [K] of probabilities [N, K]."""
  num_classes = probabilities.shape[1]
  counts = np.bincount(np.argmax(probabilities, axis=1),
                       minlength=num_classes)
  return ((1 - _UNIFORM_WEIGHT) * counts / counts.sum()
          + _UNIFORM_WEIGHT / num_classes)


def class_coverage(real: np.ndarray, fake: np.ndarray) -> tuple[int, float]:
  """Modes and class KL of probabilities fake [N', K] against real [N, K].

  Smoothing: both normalized histograms are mixed with the uniform
  distribution, h' = (1 - w) h + w / K with w = _UNIFORM_WEIGHT = 1e-6.
  Applying the same map to both (rather than adding counts to the real one
  only) keeps KL(h || h) exactly 0 for sets of different sizes and for
  classes absent from both, as most of the 1000 Stacked MNIST classes can
  be; other values change by O(w).

  Returns:
    (modes, mode_kl): the number of distinct classes among the generated
    images, and KL(fake histogram || real histogram) in nats.
  """
  modes = len(np.unique(np.argmax(fake, axis=1)))
  mode_kl = float(base.kl_divergence(_histogram(fake), _histogram(real)))
  return modes, mode_kl


def _compute(real: base.Features, fake: base.Features,
             settings: base.Settings) -> dict[str, float]:
  del settings
  modes, mode_kl = class_coverage(real.probabilities, fake.probabilities)
  return {"modes": float(modes), "mode_kl": mode_kl}


def _problems(num_real: int, num_fake: int,
              settings: base.Settings) -> list[str]:
  del settings
  return base.too_few_samples("class_coverage", 1, num_real=num_real,
                              num_fake=num_fake, reason="for a histogram")


base.METRICS.register("class_coverage")(
    base.Metric(compute=_compute, problems=_problems))
