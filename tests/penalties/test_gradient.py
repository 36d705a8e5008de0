"""R1, R2 and WGAN-GP's penalty equal what they are by hand."""

import numpy as np
import pytest
import tensorflow as tf

from trainer.penalties import base as penalties_lib


def _inputs(judge, real, fake, seed=(1, 2)) -> penalties_lib.PenaltyInputs:
  return penalties_lib.PenaltyInputs(judge=judge, real=real, real_labels=None,
                              fake=fake, fake_labels=None,
                              seed=tf.constant(seed), settings=None, state={},
                              mean=tf.reduce_mean)


# A tiny D by hand: logit = sum(w * x^2) per image, so grad_x = 2 w x and
# |grad|^2 = sum(4 w^2 x^2).
_W = tf.constant(np.linspace(-1, 1, 2 * 2 * 1).reshape(2, 2, 1),
                 tf.float32)  # [H, W, C]


def _tiny_d(images, labels):
  del labels
  return tf.reduce_sum(_W * tf.square(images), axis=[1, 2, 3])


@pytest.mark.parametrize("name,on", [("r1", "real"), ("r2", "fake")])
def test_r1_and_r2_equal_the_penalty_by_hand(name, on):
  rng = np.random.default_rng(0)
  real = tf.constant(rng.normal(size=(3, 2, 2, 1)), tf.float32)
  fake = tf.constant(rng.normal(size=(3, 2, 2, 1)), tf.float32)
  term = penalties_lib.PENALTIES.get(name).term(_inputs(_tiny_d, real, fake))
  x = (real if on == "real" else fake).numpy()
  expected = np.sum(4 * _W.numpy()**2 * x**2, axis=(1, 2, 3))
  np.testing.assert_allclose(term, expected, rtol=1e-5)
  assert penalties_lib.PENALTIES.get(name).scale == 0.5  # the papers' gamma / 2


def test_penalties_have_a_gradient_in_ds_weights():
  # The double backward pass: the penalty moves D's weights.
  w = tf.Variable(tf.ones([2, 2, 1]))
  judge = lambda images, labels: tf.reduce_sum(w * tf.square(images),
                                               axis=[1, 2, 3])
  real = tf.ones([2, 2, 2, 1])
  with tf.GradientTape() as tape:
    term = tf.reduce_sum(penalties_lib.PENALTIES.get("r1").term(
        _inputs(judge, real, real)))
  grad = tape.gradient(term, w)
  # d/dw of sum(4 w^2 x^2) over 2 images with x = 1: 16 w.
  np.testing.assert_allclose(grad, np.full([2, 2, 1], 16.0), rtol=1e-5)


def test_gradient_penalty_of_a_unit_slope_critic_is_zero():
  # D(x) = sum(x) / sqrt(n) has gradient norm 1 everywhere.
  n = 4 * 4 * 1
  critic = lambda x, labels: tf.reduce_sum(x, axis=[1, 2, 3]) / np.sqrt(n)
  real, fake = tf.ones([3, 4, 4, 1]), -tf.ones([3, 4, 4, 1])
  gp = penalties_lib.PENALTIES.get("gp")
  np.testing.assert_allclose(gp.term(_inputs(critic, real, fake)), np.zeros(3),
                             atol=1e-6)
  steep = lambda x, labels: 3 * critic(x, labels)
  np.testing.assert_allclose(gp.term(_inputs(steep, real, fake)),
                             np.full(3, 4.0), rtol=1e-5)  # (3 - 1)^2
  assert gp.scale == 1.0
