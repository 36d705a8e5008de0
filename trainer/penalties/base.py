"""What a penalty is, the registry of them, and how the step groups them.

A penalty is a regularizer of D or of G: a per-example term computed from
what the step hands it (`PenaltyInputs` for D's: D as a function of images,
the real and fake batches, a seed; `GeneratorInputs` for G's: G as a
function of its latents). The step weighs it, applies it eagerly or lazily
(`penalties.<name>.interval`) with the network's optimizer, and logs its
mean as `penalties/<name>`. A penalty may keep state across steps (the
path-length penalty's running mean): its variables are part of the
checkpoint and logged as `penalties/<name>_<variable>`.

Each penalty is registered in a module of this package, with its config
section's fields and defaults (weight, interval and its own); the base
config (trainer/defaults.py) gets `penalties.<name>` from there.
"""

import dataclasses
from typing import Callable

import ml_collections
import tensorflow as tf

from trainer.registry import Registry


@dataclasses.dataclass(frozen=True)
class PenaltyInputs:
  """What a penalty of D may read; all images float32 [B, H, W, C].

  Attributes:
    judge: (images, labels) -> D's logits [B], through the step's
      augmentation, differentiable in the images and in D's weights.
    real, real_labels: the real batch (labels None if unconditional).
    fake, fake_labels: generated images with no path to G; None in a lazy
      group whose penalties all have needs_fake False.
    seed: a stateless seed [2] for the penalty's own random draws.
    settings: the penalty's section of the config (penalties.<name>).
    state: the penalty's variables by name (Penalty.state).
    mean: per-example values [b] -> their mean over the global batch, the
      same scalar on every replica.
  """
  judge: Callable[[tf.Tensor, tf.Tensor | None], tf.Tensor]
  real: tf.Tensor
  real_labels: tf.Tensor | None
  fake: tf.Tensor | None
  fake_labels: tf.Tensor | None
  seed: tf.Tensor
  settings: ml_collections.ConfigDict
  state: dict[str, tf.Variable]
  mean: Callable[[tf.Tensor], tf.Tensor]


@dataclasses.dataclass(frozen=True)
class GeneratorInputs:
  """What a penalty of G may read.

  Attributes:
    latents: n -> (w, labels, z): this replica's share of n fresh latents
      of the global batch, in G's intermediate space (ws [b, num_ws, w_dim]
      for a style-based G, z [b, latent_dim] for one without a mapping),
      differentiable in G's mapping weights; labels [b] or None; the zs
      [b, latent_dim] they were mapped from.
    synthesize: (w, labels, z) -> images [b, H, W, C] float32,
      differentiable in w and G's weights. G's noise inputs are drawn from
      the bits of z: w's last bits depend on how the batch is split over
      replicas (a matmul of 2 rows rounds unlike one of 4), so noise drawn
      from them would differ between 1 and 2 replicas.
    rows: a tensor drawn for n global rows -> this replica's rows of it.
    batch: the global batch size.
    seed, settings, state, mean: as in PenaltyInputs.
  """
  latents: Callable[[int], tuple[tf.Tensor, tf.Tensor | None, tf.Tensor]]
  synthesize: Callable[[tf.Tensor, tf.Tensor | None, tf.Tensor], tf.Tensor]
  rows: Callable[[tf.Tensor], tf.Tensor]
  batch: int
  seed: tf.Tensor
  settings: ml_collections.ConfigDict
  state: dict[str, tf.Variable]
  mean: Callable[[tf.Tensor], tf.Tensor]


# Identity, not the fields, tells penalties apart: each is registered once.
@dataclasses.dataclass(frozen=True, eq=False)
class Penalty:
  """A regularizer: inputs -> unweighted per-example term [b].

  The step adds `scale * weight * term` to the loss of `network` ("d":
  inputs are PenaltyInputs; "g": GeneratorInputs), where `scale` is 1/2
  for the squared-norm penalties (the papers' gamma/2) and 1 otherwise.
  `state` names the float32 scalar variables the penalty keeps, with their
  initial values. `fields` is its config section penalties.<name> with the
  defaults: "weight" and "interval" (steps between its own updates; 1: in
  its network's loss), then fields of its own, whose ranges `check` checks:
  settings -> a message for the first one out of range, or None. A comment
  above or beside a field in the registration is its help in
  docs/config-reference.md. `examples` gives how many examples the term
  evaluates for a global batch: (settings, batch) -> count (the
  benchmark's FLOPs count reads it).
  """
  term: Callable[[PenaltyInputs | GeneratorInputs], tf.Tensor]
  scale: float
  fields: dict[str, object]
  needs_fake: bool = False
  network: str = "d"
  state: tuple[tuple[str, float], ...] = ()
  check: Callable[[ml_collections.ConfigDict], str | None] = (
      lambda settings: None)
  examples: Callable[[ml_collections.ConfigDict, int], int] = (
      lambda settings, batch: batch)


PENALTIES: Registry[Penalty] = Registry("penalty", "penalties.names")


@dataclasses.dataclass(frozen=True)
class PenaltyGroup:
  """Penalties of one network that share an interval, applied together.

  Interval 1 is eager: the terms join every update's loss of the network
  (`network`, "d" or "g"). A lazy group (interval N > 1) is a separate
  update of the network on the steps whose counter is a multiple of N, with
  the terms multiplied by N (StyleGAN2).
  """
  network: str
  interval: int
  penalties: tuple[tuple[str, Penalty, float], ...]  # (name, penalty, weight)


def penalty_groups(penalties_config, network: str) -> list[PenaltyGroup]:
  """The named penalties of `network` in a resolved config, by interval."""
  by_interval: dict[int, list] = {}
  for name in [n for n in penalties_config.names.split(",") if n]:
    settings, penalty = penalties_config[name], PENALTIES.get(name)
    if penalty.network == network:
      by_interval.setdefault(int(settings.interval), []).append(
          (name, penalty, float(settings.weight)))
  return [PenaltyGroup(network, interval, tuple(entries))
          for interval, entries in sorted(by_interval.items())]


def lazy_ratio(groups: list[PenaltyGroup]) -> float:
  """Optimizer steps per minibatch, inverted: 1 / (1 + sum of 1/N).

  A lazy group of interval N adds one update every N steps. Scaling Adam's
  learning rate by this ratio and raising its betas to its power keeps the
  step size and the moments' horizons per minibatch those of an eager run
  (StyleGAN2's mb_ratio N / (N + 1), for any number of lazy groups). The
  groups are one network's.
  """
  return 1.0 / (1.0 + sum(1.0 / g.interval for g in groups if g.interval > 1))
