"""Losses and penalties: real is labelled 1, fake 0, each player's loss falls
as it wins, and the penalties equal what they are by hand."""

import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from trainer import losses
from trainer.errors import UserError

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


def _inputs(judge, real, fake, seed=(1, 2)) -> losses.PenaltyInputs:
  return losses.PenaltyInputs(judge=judge, real=real, real_labels=None,
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
  term = losses.PENALTIES.get(name).term(_inputs(_tiny_d, real, fake))
  x = (real if on == "real" else fake).numpy()
  expected = np.sum(4 * _W.numpy()**2 * x**2, axis=(1, 2, 3))
  np.testing.assert_allclose(term, expected, rtol=1e-5)
  assert losses.PENALTIES.get(name).scale == 0.5  # the papers' gamma / 2


def test_penalties_have_a_gradient_in_ds_weights():
  # The double backward pass: the penalty moves D's weights.
  w = tf.Variable(tf.ones([2, 2, 1]))
  judge = lambda images, labels: tf.reduce_sum(w * tf.square(images),
                                               axis=[1, 2, 3])
  real = tf.ones([2, 2, 2, 1])
  with tf.GradientTape() as tape:
    term = tf.reduce_sum(losses.PENALTIES.get("r1").term(
        _inputs(judge, real, real)))
  grad = tape.gradient(term, w)
  # d/dw of sum(4 w^2 x^2) over 2 images with x = 1: 16 w.
  np.testing.assert_allclose(grad, np.full([2, 2, 1], 16.0), rtol=1e-5)


def test_gradient_penalty_of_a_unit_slope_critic_is_zero():
  # D(x) = sum(x) / sqrt(n) has gradient norm 1 everywhere.
  n = 4 * 4 * 1
  critic = lambda x, labels: tf.reduce_sum(x, axis=[1, 2, 3]) / np.sqrt(n)
  real, fake = tf.ones([3, 4, 4, 1]), -tf.ones([3, 4, 4, 1])
  gp = losses.PENALTIES.get("gp")
  np.testing.assert_allclose(gp.term(_inputs(critic, real, fake)), np.zeros(3),
                             atol=1e-6)
  steep = lambda x, labels: 3 * critic(x, labels)
  np.testing.assert_allclose(gp.term(_inputs(steep, real, fake)),
                             np.full(3, 4.0), rtol=1e-5)  # (3 - 1)^2
  assert gp.scale == 1.0


def test_wgan_gp_is_wgan_with_the_gp_penalty():
  assert losses.LOSSES.get("wgan_gp").penalties == ("gp",)
  assert losses.LOSSES.get("wgan").penalties == ()


def test_lazy_ratio_counts_the_added_updates():
  entry = (("r1", losses.PENALTIES.get("r1"), 1.0),)
  eager = losses.PenaltyGroup("d", 1, entry)
  assert losses.lazy_ratio([eager]) == 1.0
  assert losses.lazy_ratio([losses.PenaltyGroup("d", 16, entry)]) == 16 / 17
  # Two lazy groups: 1 + 1/4 + 1/8 updates per minibatch.
  assert losses.lazy_ratio([losses.PenaltyGroup("d", 4, entry),
                            losses.PenaltyGroup("d", 8, entry)]) == (
                                pytest.approx(1 / (1 + 1 / 4 + 1 / 8)))


def test_penalty_groups_are_per_network():
  config = ml_collections.ConfigDict({
      "names": "r1,pl,r2", "r1": {"weight": 1.0, "interval": 16},
      "r2": {"weight": 2.0, "interval": 16},
      "pl": {"weight": 2.0, "interval": 4}})
  (d_group,) = losses.penalty_groups(config, "d")
  assert (d_group.network, d_group.interval) == ("d", 16)
  assert [name for name, _, _ in d_group.penalties] == ["r1", "r2"]
  (g_group,) = losses.penalty_groups(config, "g")
  assert (g_group.network, g_group.interval) == ("g", 4)
  assert [name for name, _, _ in g_group.penalties] == ["pl"]


def _path_length_inputs(matrix, mean, *, batch, shrink=1, decay=0.5,
                        seed=(3, 4)):
  """A linear G by hand: images = w @ matrix, reshaped to [n, 2, 2, 1]."""
  w = tf.constant(np.random.default_rng(0).normal(size=(batch, 3)),
                  tf.float32)  # [B, 3]
  return losses.GeneratorInputs(
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
  pl = losses.PENALTIES.get("pl")
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
    term = tf.reduce_sum(losses.PENALTIES.get("pl").term(inputs))
  grad = tape.gradient(term, matrix)
  assert grad is not None and np.abs(grad.numpy()).sum() > 0


def test_unknown_loss_and_penalty_list_the_valid_ones():
  with pytest.raises(UserError, match="hinge, minimax, non_saturating, "
                     "rpgan, wgan, wgan_gp"):
    losses.LOSSES.get("lsgan")
  with pytest.raises(UserError, match="penalties.names; valid: gp, pl, r1, r2"):
    losses.PENALTIES.get("r3")
