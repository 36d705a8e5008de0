"""GAN losses by name, each with one signature.

A loss gives per-example terms [B] (float32) from D's logits on real and
generated images; the step averages them over the global batch. D(x) =
sigmoid(logit) is the probability that x is real: real images are labelled
1, generated ones 0.

Penalties (regularizers of D or G) are in trainer/penalties/.
"""

import dataclasses
from typing import Callable

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
