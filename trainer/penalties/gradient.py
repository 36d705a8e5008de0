"""The gradient penalties of D: R1, R2 and WGAN-GP's."""

import tensorflow as tf

from trainer.penalties import base


def _input_gradient(judge, images: tf.Tensor,
                    labels: tf.Tensor | None) -> tf.Tensor:
  """d sum(D(images)) / d images [B, H, W, C]: each row is its own image's."""
  with tf.GradientTape() as tape:
    tape.watch(images)
    total = tf.reduce_sum(judge(images, labels))  # of logits [B]
  return tape.gradient(total, images)


def _squared_norms(grads: tf.Tensor) -> tf.Tensor:
  return tf.reduce_sum(tf.square(grads), axis=[1, 2, 3])  # [B]


def _r1(inputs: base.PenaltyInputs) -> tf.Tensor:
  """|grad_x D(x)|^2 at real images (Mescheder et al. 2018)."""
  return _squared_norms(_input_gradient(inputs.judge, inputs.real,
                                        inputs.real_labels))


def _r2(inputs: base.PenaltyInputs) -> tf.Tensor:
  """|grad_x D(x)|^2 at generated images."""
  return _squared_norms(_input_gradient(inputs.judge, inputs.fake,
                                        inputs.fake_labels))


def _gp(inputs: base.PenaltyInputs) -> tf.Tensor:
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
base.PENALTIES.register("r1")(base.Penalty(
    term=_r1, scale=0.5,
    fields={
        "weight": 1.0,  # gamma: adds gamma/2 |grad D|^2 on real images
        # Steps between its own updates of D (lazy, StyleGAN2); 1: in D's
        # loss at every update.
        "interval": 16,
    }))
# R2: weight/2 |grad D|^2 on generated images (R3GAN pairs it with R1).
base.PENALTIES.register("r2")(base.Penalty(
    term=_r2, scale=0.5, needs_fake=True,
    fields={
        "weight": 1.0,  # gamma: adds gamma/2 |grad D|^2 on generated images
        # Steps between its own updates of D (lazy, StyleGAN2); 1: in D's
        # loss at every update.
        "interval": 16,
    }))
# WGAN-GP's: weight (|grad D| - 1)^2 on real-fake interpolates.
base.PENALTIES.register("gp")(base.Penalty(
    term=_gp, scale=1.0, needs_fake=True,
    fields={
        "weight": 10.0,  # lambda: adds lambda (|grad D| - 1)^2
        # Steps between its own updates of D; 1: in D's loss at every update.
        "interval": 1,
    }))
