"""Inception Score (Salimans et al., 2016) of the generated images.

exp(E_x KL(p(y|x) || p(y))): high when each image is classified confidently
and the classes are spread evenly. It ranges from 1 to K for K classes and
does not look at the real images.
"""

import numpy as np

from trainer.metrics import base


def inception_score(probabilities: np.ndarray, *,
                    splits: int) -> tuple[float, float]:
  """The score of class probabilities [N, K], over `splits` splits.

  As in Salimans et al., the rows are cut into `splits` consecutive parts
  (sizes differ by at most one when `splits` does not divide N) and p(y) is
  the mean prediction within each part.

  Returns:
    (mean, std) of the per-split scores.
  """
  scores = []
  for part in np.array_split(np.asarray(probabilities, np.float64), splits):
    marginal = part.mean(axis=0)  # p(y) [K]
    scores.append(np.exp(base.kl_divergence(part, marginal).mean()))
  return float(np.mean(scores)), float(np.std(scores))


def _compute(real: base.Features, fake: base.Features,
             settings: base.Settings) -> dict[str, float]:
  del real  # The score looks at the generated images alone.
  score, std = inception_score(fake.probabilities, splits=settings.is_splits)
  return {"inception_score": score, "inception_score_std": std}


def _problems(num_real: int, num_fake: int,
              settings: base.Settings) -> list[str]:
  del num_real
  return (base.setting_too_small("inception_score", "eval.is_splits",
                                 settings.is_splits, 1)
          + base.too_few_samples(
              "inception_score", settings.is_splits, num_fake=num_fake,
              reason="one per split of eval.is_splits",
              setting="eval.is_splits"))


base.METRICS.register("inception_score")(
    base.Metric(compute=_compute, problems=_problems))
