"""Kernel Inception Distance (Bińkowski et al., 2018).

An unbiased estimate of the squared MMD between real and generated embeddings
with the cubic polynomial kernel k(x, y) = (x·y / D + 1)^3, averaged over
random subsets. Unlike FID it has no bias from the number of samples.
"""

import numpy as np

from trainer.metrics import base

# Subsets are drawn with a fixed seed so that one set of features always gives
# the same value, and runs are compared on the same draws.
_SEED = 0


def _kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """Polynomial kernel matrix [M, M'] of x [M, D] and y [M', D]."""
  return (x @ y.T / x.shape[1] + 1) ** 3


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
  """Unbiased MMD^2 of two samples [M, D] of one size M >= 2.

  Within-set sums leave out the diagonal k(x_i, x_i), whose inclusion is what
  makes the plain estimate biased.
  """
  m = len(x)
  k_xx, k_yy = _kernel(x, x), _kernel(y, y)
  within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy))
  return float(within / (m * (m - 1)) - 2 * _kernel(x, y).mean())


def kernel_inception_distance(real: np.ndarray, fake: np.ndarray, *,
                              num_subsets: int,
                              subset_size: int) -> tuple[float, float]:
  """KID of embeddings real [N, D] and fake [N', D].

  Args:
    real, fake: embeddings; both need at least `subset_size` rows.
    num_subsets: how many subset pairs to average over.
    subset_size: rows per subset, drawn without replacement from each set.

  Returns:
    (mean, std) of the MMD^2 estimates over the subsets; std (ddof=0) shows
    the spread of one subset's estimate, as reported by Bińkowski et al.
  """
  real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
  rng = np.random.default_rng(_SEED)
  estimates = [
      _mmd2_unbiased(real[rng.choice(len(real), subset_size, replace=False)],
                     fake[rng.choice(len(fake), subset_size, replace=False)])
      for _ in range(num_subsets)]
  return float(np.mean(estimates)), float(np.std(estimates))


def _compute(real: base.Features, fake: base.Features,
             settings: base.Settings) -> dict[str, float]:
  kid, kid_std = kernel_inception_distance(
      real.embeddings, fake.embeddings, num_subsets=settings.kid_subsets,
      subset_size=settings.kid_subset_size)
  return {"kid": kid, "kid_std": kid_std}


def _problems(num_real: int, num_fake: int,
              settings: base.Settings) -> list[str]:
  return (
      base.setting_too_small("kid", "eval.kid_subsets", settings.kid_subsets,
                             1)
      # The unbiased estimate averages over pairs of distinct points.
      + base.setting_too_small("kid", "eval.kid_subset_size",
                               settings.kid_subset_size, 2)
      + base.too_few_samples(
          "kid", settings.kid_subset_size, num_real=num_real,
          num_fake=num_fake, reason="one subset of eval.kid_subset_size",
          setting="eval.kid_subset_size"))


base.METRICS.register("kid")(base.Metric(compute=_compute, problems=_problems))
