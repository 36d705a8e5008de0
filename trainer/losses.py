"""GAN losses and gradient penalties, by name, each with one signature.

A loss gives per-example terms [B] (float32) from D's logits on real and
generated images; the step averages them over the global batch. D(x) =
sigmoid(logit) is the probability that x is real: real images are labelled
1, generated ones 0.

A penalty is a regularizer of D or of G: a per-example term computed from
what the step hands it (`PenaltyInputs` for D's: D as a function of images,
the real and fake batches, a seed; `GeneratorInputs` for G's: G as a
function of its latents). The step weighs it, applies it eagerly or lazily
(`penalties.<name>.interval`) with the network's optimizer, and logs its
mean as `penalties/<name>`. A penalty may keep state across steps (the
path-length penalty's running mean): its variables are part of the
checkpoint and logged as `penalties/<name>_<variable>`.
"""

import dataclasses
import math
from typing import Callable

import ml_collections
import tensorflow as tf

from trainer.registry import Registry

# logits [B] of real and of generated images -> per-example loss [B].
PairLoss = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


@dataclasses.dataclass(frozen=True)
class GanLoss:
  """D's and G's per-example losses, both from (real_logits, fake_logits).

  Attributes:
    discriminator: D's loss.
    generator: G's loss; its real_logits are constants (no path to D's
      weights matters for G's update).
    generator_needs_real: whether G's loss reads D's logits on real images
      (relativistic losses); otherwise the step passes None and saves D's
      pass on the reals in G's update.
    penalties: penalties that belong to the loss (wgan_gp: gp); the config
      resolver adds them to `penalties.names`.
  """
  discriminator: PairLoss
  generator: PairLoss
  generator_needs_real: bool = False
  penalties: tuple[str, ...] = ()


LOSSES: Registry[GanLoss] = Registry("loss", "model.loss")


def _d_cross_entropy(real: tf.Tensor, fake: tf.Tensor) -> tf.Tensor:
  # -log D(real) - log(1 - D(fake)), computed stably from logits.
  return tf.nn.softplus(-real) + tf.nn.softplus(fake)


# The original GAN's D (cross-entropy on logits, reals 1, fakes 0) with G
# maximising log D(G(z)) (Goodfellow et al. 2014): the usual choice.
LOSSES.register("non_saturating")(GanLoss(
    discriminator=_d_cross_entropy,
    generator=lambda real, fake: tf.nn.softplus(-fake)))  # -log D(G(z))

# The original GAN's zero-sum game: G minimises log(1 - D(G(z))), whose
# gradient vanishes while D wins.
LOSSES.register("minimax")(GanLoss(
    discriminator=_d_cross_entropy,
    generator=lambda real, fake: -tf.nn.softplus(fake)))  # log(1 - D(G(z)))

# Hinge loss (Lim and Ye 2017; SAGAN, BigGAN): D's margins at +1 and -1.
LOSSES.register("hinge")(GanLoss(
    discriminator=lambda real, fake: tf.nn.relu(1 - real) + tf.nn.relu(1 + fake),
    generator=lambda real, fake: -fake))

_WASSERSTEIN = dict(discriminator=lambda real, fake: fake - real,
                    generator=lambda real, fake: -fake)
# Wasserstein GAN (Arjovsky et al. 2017): D is a critic of unbounded scores;
# without a penalty or spectral norm nothing keeps it Lipschitz.
LOSSES.register("wgan")(GanLoss(**_WASSERSTEIN))
# WGAN-GP (Gulrajani et al. 2017): wgan with the gp penalty added.
LOSSES.register("wgan_gp")(GanLoss(**_WASSERSTEIN, penalties=("gp",)))

# Relativistic pairing (Jolicoeur-Martineau 2019; R3GAN, Huang et al. 2024):
# the i-th real is paired with the i-th fake; D wants the real to score
# higher than its partner, G the reverse.
LOSSES.register("rpgan")(GanLoss(
    discriminator=lambda real, fake: tf.nn.softplus(fake - real),
    generator=lambda real, fake: tf.nn.softplus(real - fake),
    generator_needs_real=True))


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


@dataclasses.dataclass(frozen=True)
class Penalty:
  """A regularizer: inputs -> unweighted per-example term [b].

  The step adds `scale * weight * term` to the loss of `network` ("d":
  inputs are PenaltyInputs; "g": GeneratorInputs), where `scale` is 1/2
  for the squared-norm penalties (the papers' gamma/2) and 1 otherwise.
  `state` names the float32 scalar variables the penalty keeps, with their
  initial values; `fields` its own config fields beyond weight and
  interval, with their defaults, and `check` their ranges: settings -> a
  message for the first one out of range, or None. `examples` gives how
  many examples the term evaluates for a global batch: (settings, batch)
  -> count (the benchmark's FLOPs count reads it).
  """
  term: Callable[[PenaltyInputs | GeneratorInputs], tf.Tensor]
  scale: float
  needs_fake: bool = False
  network: str = "d"
  state: tuple[tuple[str, float], ...] = ()
  fields: tuple[tuple[str, object], ...] = ()
  check: Callable[[ml_collections.ConfigDict], str | None] = (
      lambda settings: None)
  examples: Callable[[ml_collections.ConfigDict, int], int] = (
      lambda settings, batch: batch)


PENALTIES: Registry[Penalty] = Registry("penalty", "penalties.names")


def _input_gradient(judge, images: tf.Tensor,
                    labels: tf.Tensor | None) -> tf.Tensor:
  """d sum(D(images)) / d images [B, H, W, C]: each row is its own image's."""
  with tf.GradientTape() as tape:
    tape.watch(images)
    total = tf.reduce_sum(judge(images, labels))  # of logits [B]
  return tape.gradient(total, images)


def _squared_norms(grads: tf.Tensor) -> tf.Tensor:
  return tf.reduce_sum(tf.square(grads), axis=[1, 2, 3])  # [B]


def _r1(inputs: PenaltyInputs) -> tf.Tensor:
  """|grad_x D(x)|^2 at real images (Mescheder et al. 2018)."""
  return _squared_norms(_input_gradient(inputs.judge, inputs.real,
                                        inputs.real_labels))


def _r2(inputs: PenaltyInputs) -> tf.Tensor:
  """|grad_x D(x)|^2 at generated images."""
  return _squared_norms(_input_gradient(inputs.judge, inputs.fake,
                                        inputs.fake_labels))


def _gp(inputs: PenaltyInputs) -> tf.Tensor:
  """(|grad D(x_hat)| - 1)^2 on random interpolates (Gulrajani et al. 2017).

  Interpolates between a real image and a fake of another class are judged
  under the real label (as in conditional WGAN-GP).
  """
  real, fake = inputs.real, inputs.fake
  eps = tf.random.stateless_uniform([tf.shape(real)[0], 1, 1, 1],
                                    inputs.seed)  # [B, 1, 1, 1]
  mixed = eps * real + (1 - eps) * fake  # [B, H, W, C]
  grads = _input_gradient(inputs.judge, mixed, inputs.real_labels)
  return tf.square(tf.sqrt(_squared_norms(grads) + 1e-12) - 1.0)


# R1: weight/2 |grad D|^2 on real images (Mescheder et al. 2018).
PENALTIES.register("r1")(Penalty(term=_r1, scale=0.5))
# R2: weight/2 |grad D|^2 on generated images (R3GAN pairs it with R1).
PENALTIES.register("r2")(Penalty(term=_r2, scale=0.5, needs_fake=True))
# WGAN-GP's: weight (|grad D| - 1)^2 on real-fake interpolates.
PENALTIES.register("gp")(Penalty(term=_gp, scale=1.0, needs_fake=True))


def _path_length(inputs: GeneratorInputs) -> tf.Tensor:
  """(|J_w^T y| - a)^2: StyleGAN2's path-length regularization.

  For fresh latents w and images y ~ N(0, I) / sqrt(H W), |J_w^T y| is the
  length of the image-space step that a unit step in w makes; a is its
  running mean (decay `penalties.pl.decay`), over the global batch. The
  penalty runs on batch / `batch_shrink` latents, as StyleGAN2 does. For
  ws [b, num_ws, w_dim] the squared length is summed over w_dim and
  averaged over the ws.
  """
  settings, mean_length = inputs.settings, inputs.state["mean"]
  count = _path_length_examples(settings, inputs.batch)
  w, labels, z = inputs.latents(count)
  with tf.GradientTape() as tape:
    tape.watch(w)
    images = inputs.synthesize(w, labels, z)  # [b, H, W, C]
    height, width = images.shape[1], images.shape[2]
    noise = inputs.rows(tf.random.stateless_normal(
        [count, *images.shape[1:]], inputs.seed)) / math.sqrt(height * width)
    total = tf.reduce_sum(images * noise)
  grads = tape.gradient(total, w)  # [b, ..., w_dim]
  squares = tf.reduce_sum(tf.square(grads), axis=-1)  # [b, ...]
  if squares.shape.rank > 1:
    squares = tf.reduce_mean(squares, axis=list(range(1, squares.shape.rank)))
  lengths = tf.sqrt(squares + 1e-12)  # [b]
  moved = mean_length + settings.decay * (
      tf.stop_gradient(inputs.mean(lengths)) - mean_length)
  mean_length.assign(moved)
  return tf.square(lengths - moved)


def _path_length_examples(settings: ml_collections.ConfigDict,
                          batch: int) -> int:
  return batch // settings.batch_shrink


def _check_path_length(settings: ml_collections.ConfigDict) -> str | None:
  if not 0 < settings.decay <= 1:
    return f"decay={settings.decay} is out of range; it must be in (0, 1]"
  if settings.batch_shrink < 1:
    return (f"batch_shrink={settings.batch_shrink} is out of range; it must "
            "be >= 1")
  return None


# StyleGAN2's path length, on G: weight (|J_w^T y| - a)^2.
PENALTIES.register("pl")(Penalty(
    term=_path_length, scale=1.0, network="g", state=(("mean", 0.0),),
    fields=(("decay", 0.01), ("batch_shrink", 2)), check=_check_path_length,
    examples=_path_length_examples))


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
