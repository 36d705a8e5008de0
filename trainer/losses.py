"""GAN losses by name, all with one signature.

Each loss gives per-example values [B] from D's logits (float32); the train
step averages them over the global batch. D(x) = sigmoid(logit) is the
probability that x is real: real images are labelled 1, generated ones 0.
"""

import dataclasses
from typing import Callable

import tensorflow as tf

from trainer.registry import Registry

PerExample = Callable[..., tf.Tensor]


@dataclasses.dataclass(frozen=True)
class GanLoss:
  """D's loss from (real_logits, fake_logits), G's from fake_logits."""
  discriminator: PerExample
  generator: PerExample
  # Whether D's loss adds the WGAN-GP gradient penalty (model.gp_weight).
  gradient_penalty: bool = False


LOSSES: Registry = Registry("loss", "model.loss")


def _d_cross_entropy(real: tf.Tensor, fake: tf.Tensor) -> tf.Tensor:
  # -log D(real) - log(1 - D(fake)), computed stably from logits.
  return tf.nn.softplus(-real) + tf.nn.softplus(fake)


LOSSES.register("non_saturating")(GanLoss(
    discriminator=_d_cross_entropy,
    generator=lambda fake: tf.nn.softplus(-fake)))  # -log D(G(z))

LOSSES.register("minimax")(GanLoss(
    discriminator=_d_cross_entropy,
    generator=lambda fake: -tf.nn.softplus(fake)))  # log(1 - D(G(z)))

LOSSES.register("hinge")(GanLoss(
    discriminator=lambda real, fake: tf.nn.relu(1 - real) + tf.nn.relu(1 + fake),
    generator=lambda fake: -fake))

LOSSES.register("wgan_gp")(GanLoss(
    discriminator=lambda real, fake: fake - real,
    generator=lambda fake: -fake,
    gradient_penalty=True))


def gradient_penalty(discriminator: Callable[[tf.Tensor], tf.Tensor],
                     real: tf.Tensor, fake: tf.Tensor,
                     seed: tf.Tensor) -> tf.Tensor:
  """Per-example (||grad D(x_hat)|| - 1)^2 on random interpolates [B].

  Args:
    discriminator: images [B, H, W, C] -> logits [B].
    real, fake: images [B, H, W, C].
    seed: stateless seed [2] for the interpolation weights.
  """
  eps = tf.random.stateless_uniform([tf.shape(real)[0], 1, 1, 1], seed)
  mixed = eps * real + (1 - eps) * fake  # [B, H, W, C]
  with tf.GradientTape() as tape:
    tape.watch(mixed)
    logits = discriminator(mixed)
  grads = tape.gradient(logits, mixed)
  norms = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]) + 1e-12)
  return tf.square(norms - 1.0)
