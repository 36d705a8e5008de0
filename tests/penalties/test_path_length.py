"""StyleGAN2's path length equals the penalty by hand."""

import ml_collections
import numpy as np
import tensorflow as tf

from trainer.penalties import base as penalties_lib


def _path_length_inputs(matrix, mean, *, batch, shrink=1, decay=0.5,
                        seed=(3, 4)):
  """A linear G by hand: images = w @ matrix, reshaped to [n, 2, 2, 1]."""
  w = tf.constant(np.random.default_rng(0).normal(size=(batch, 3)),
                  tf.float32)  # [B, 3]
  return penalties_lib.GeneratorInputs(
      latents=lambda count: (w[:count], None, w[:count]),
      synthesize=lambda w, labels, z: tf.reshape(w @ matrix, [-1, 2, 2, 1]),
      rows=lambda x: x, batch=batch, seed=tf.constant(seed),
      settings=ml_collections.ConfigDict({"decay": decay,
                                          "batch_shrink": shrink}),
      state={"mean": mean}, mean=tf.reduce_mean)


def test_path_length_equals_the_penalty_by_hand():
  # images = w A: J_w^T y = A y, so the length is |A y| for every w.
  matrix = tf.constant(np.random.default_rng(1).normal(size=(3, 4)),
                       tf.float32)  # [3, 4]
  mean = tf.Variable(1.0)
  pl = penalties_lib.PENALTIES.get("pl")
  inputs = _path_length_inputs(matrix, mean, batch=6, shrink=2)
  term = pl.term(inputs)
  assert term.shape == [3]  # batch / batch_shrink
  y = tf.random.stateless_normal([3, 2, 2, 1], inputs.seed) / 2.0  # / sqrt(HW)
  lengths = np.linalg.norm(tf.reshape(y, [3, 4]).numpy() @ matrix.numpy().T,
                           axis=1)
  moved = 1.0 + 0.5 * (lengths.mean() - 1.0)  # decay 0.5
  np.testing.assert_allclose(mean.numpy(), moved, rtol=1e-5)
  np.testing.assert_allclose(term, (lengths - moved)**2, rtol=1e-4)
  assert (pl.network, pl.scale) == ("g", 1.0)


def test_path_length_has_a_gradient_in_gs_weights():
  matrix = tf.Variable(np.eye(3, 4), dtype=tf.float32)
  inputs = _path_length_inputs(matrix, tf.Variable(0.0), batch=4)
  with tf.GradientTape() as tape:
    term = tf.reduce_sum(penalties_lib.PENALTIES.get("pl").term(inputs))
  grad = tape.gradient(term, matrix)
  assert grad is not None and np.abs(grad.numpy()).sum() > 0
