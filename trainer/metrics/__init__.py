"""Evaluation metrics on extracted features, looked up by name.

Usage:
  metrics.check_sample_counts(config.eval.metrics, num_real, num_fake,
                              settings)  # before generating anything
  values = metrics.compute(config.eval.metrics, real, fake, settings)

Registered names (eval.metrics) and the keys they return:
  fid: fid
  kid: kid, kid_std
  inception_score: inception_score, inception_score_std
  precision_recall: precision, recall
  class_coverage: modes, mode_kl
"""

from typing import Sequence

from trainer.errors import UserError
# Imported for their registrations in METRICS.
from trainer.metrics import class_coverage  # pylint: disable=unused-import
from trainer.metrics import fid  # pylint: disable=unused-import
from trainer.metrics import inception_score  # pylint: disable=unused-import
from trainer.metrics import kid  # pylint: disable=unused-import
from trainer.metrics import precision_recall  # pylint: disable=unused-import
from trainer.metrics.base import Features
from trainer.metrics.base import METRICS
from trainer.metrics.base import Settings

__all__ = ["Features", "METRICS", "Settings", "check_sample_counts",
           "compute"]


def check_sample_counts(names: Sequence[str], num_real: int, num_fake: int,
                        settings: Settings) -> None:
  """Checks that the metrics can run, before any expensive work.

  Args:
    names: metric names, as in eval.metrics.
    num_real, num_fake: how many real and generated images will be embedded.
    settings: the metric options.

  Raises:
    UserError: for an unknown name (listing the valid ones), or with one
      message naming, for every count or setting that is too small, the
      metric, what it needs, what it got and the config field to change.
  """
  metrics = {name: METRICS.get(name) for name in names}
  problems = [message for metric in metrics.values()
              for message in metric.problems(num_real, num_fake, settings)]
  if problems:
    raise UserError("\n".join(problems))


def _check_same_dimensions(real: Features, fake: Features) -> None:
  for field in ("embeddings", "probabilities"):
    real_dim = getattr(real, field).shape[1]
    fake_dim = getattr(fake, field).shape[1]
    if real_dim != fake_dim:
      raise ValueError(f"real {field} have {real_dim} columns but generated "
                       f"ones have {fake_dim}")


def compute(names: Sequence[str], real: Features, fake: Features,
            settings: Settings) -> dict[str, float]:
  """Computes the named metrics of generated features against real ones.

  Args:
    names: metric names, as in eval.metrics.
    real, fake: features of the real and of the generated images.
    settings: the metric options.

  Returns:
    The keys of every named metric (see the module docstring), as floats.

  Raises:
    UserError: as check_sample_counts, for the actual counts.
    ValueError: if real and fake features differ in dimension.
  """
  check_sample_counts(names, real.num_samples, fake.num_samples, settings)
  _check_same_dimensions(real, fake)
  values = {}
  for name in names:
    values.update(METRICS.get(name).compute(real, fake, settings))
  return values
