"""Losses: real is labelled 1, fake 0, and each player's loss falls as it wins."""

import numpy as np
import pytest
import tensorflow as tf

from trainer import losses
from trainer.errors import UserError

LOW, HIGH = tf.constant([-4.0, -3.0]), tf.constant([3.0, 4.0])


@pytest.mark.parametrize("name", losses.LOSSES.names())
def test_discriminator_loss_is_lower_when_it_tells_real_from_fake(name):
  loss = losses.LOSSES.get(name)
  right = loss.discriminator(real=HIGH, fake=LOW)
  wrong = loss.discriminator(real=LOW, fake=HIGH)
  assert right.shape == (2,)  # per example
  assert np.all(right.numpy() < wrong.numpy())


@pytest.mark.parametrize("name", losses.LOSSES.names())
def test_generator_loss_is_lower_when_d_believes_the_fakes(name):
  loss = losses.LOSSES.get(name)
  assert np.all(loss.generator(HIGH).numpy() < loss.generator(LOW).numpy())


def test_cross_entropy_values():
  # D(x) = sigmoid(logit): -log D(real) - log(1 - D(fake)) at logit 0 is 2 log 2.
  loss = losses.LOSSES.get("non_saturating")
  zero = tf.zeros([1])
  np.testing.assert_allclose(loss.discriminator(zero, zero), [2 * np.log(2)],
                             rtol=1e-6)
  np.testing.assert_allclose(loss.generator(tf.constant([2.0])),
                             [-np.log(1 / (1 + np.exp(-2.0)))], rtol=1e-6)
  # Stable from logits: no inf where a sigmoid-then-log would overflow.
  assert np.isfinite(loss.discriminator(tf.constant([-200.0]),
                                        tf.constant([200.0])).numpy()).all()


def test_gradient_penalty_of_a_unit_slope_critic_is_zero():
  # D(x) = sum(x) / sqrt(n) has gradient norm 1 everywhere.
  n = 4 * 4 * 1
  critic = lambda x: tf.reduce_sum(x, axis=[1, 2, 3]) / np.sqrt(n)
  real, fake = tf.ones([3, 4, 4, 1]), -tf.ones([3, 4, 4, 1])
  penalty = losses.gradient_penalty(critic, real, fake, tf.constant([1, 2]))
  np.testing.assert_allclose(penalty, np.zeros(3), atol=1e-6)
  steep = lambda x: 3 * critic(x)
  np.testing.assert_allclose(
      losses.gradient_penalty(steep, real, fake, tf.constant([1, 2])),
      np.full(3, 4.0), rtol=1e-5)  # (3 - 1)^2


def test_unknown_loss_lists_the_valid_ones():
  with pytest.raises(UserError, match="hinge, minimax, non_saturating, wgan_gp"):
    losses.LOSSES.get("lsgan")
