"""Losses: real is labelled 1, fake 0, and each player's loss falls as it
wins."""

import numpy as np
import pytest
import tensorflow as tf

from trainer.errors import UserError
from trainer import losses

LOW, HIGH = tf.constant([-4.0, -3.0]), tf.constant([3.0, 4.0])
MIDDLE = tf.constant([0.0, 0.5])


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
  real = MIDDLE if loss.generator_needs_real else None
  assert np.all(loss.generator(real, HIGH).numpy()
                < loss.generator(real, LOW).numpy())


def test_cross_entropy_values():
  # D(x) = sigmoid(logit): -log D(real) - log(1 - D(fake)) at logit 0 is 2 log 2.
  loss = losses.LOSSES.get("non_saturating")
  zero = tf.zeros([1])
  np.testing.assert_allclose(loss.discriminator(zero, zero), [2 * np.log(2)],
                             rtol=1e-6)
  np.testing.assert_allclose(loss.generator(None, tf.constant([2.0])),
                             [-np.log(1 / (1 + np.exp(-2.0)))], rtol=1e-6)
  # Stable from logits: no inf where a sigmoid-then-log would overflow.
  assert np.isfinite(loss.discriminator(tf.constant([-200.0]),
                                        tf.constant([200.0])).numpy()).all()


def test_rpgan_pairs_each_real_with_its_fake():
  loss = losses.LOSSES.get("rpgan")
  real, fake = tf.constant([2.0, -1.0]), tf.constant([0.5, 3.0])
  softplus = lambda x: np.log1p(np.exp(x))
  np.testing.assert_allclose(loss.discriminator(real, fake),
                             softplus(np.array([0.5 - 2.0, 3.0 + 1.0])),
                             rtol=1e-6)
  np.testing.assert_allclose(loss.generator(real, fake),
                             softplus(np.array([2.0 - 0.5, -1.0 - 3.0])),
                             rtol=1e-6)
  # Only the difference counts: shifting both logits changes nothing.
  np.testing.assert_allclose(loss.discriminator(real + 7, fake + 7),
                             loss.discriminator(real, fake), rtol=1e-5)
  assert loss.generator_needs_real


def test_wgan_gp_is_wgan_with_the_gp_penalty():
  assert losses.LOSSES.get("wgan_gp").penalties == ("gp",)
  assert losses.LOSSES.get("wgan").penalties == ()


def test_an_unknown_loss_lists_the_valid_ones():
  with pytest.raises(UserError, match="hinge, minimax, non_saturating, "
                     "rpgan, wgan, wgan_gp"):
    losses.LOSSES.get("lsgan")
