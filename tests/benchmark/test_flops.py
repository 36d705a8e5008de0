"""FLOPs counts of the networks and steps, checked against TF's profiler."""

import keras
import pytest
import tensorflow as tf

from tests.conftest import load_config
from trainer.benchmark import flops
from trainer.benchmark import tutorial
from trainer.models import ARCHITECTURES

# The tutorial's networks, multiply-adds by hand: G is dense 100 -> 7x7x256,
# then transposed convolutions 5x5 from 7x7x256 to 7x7x128, 7x7x128 to
# 14x14x64 and 14x14x64 to 28x28x1; D is 5x5 convolutions to 14x14x64 and
# 7x7x128, then dense 6272 -> 1.
G_MACS = (100 * 7 * 7 * 256 + 7 * 7 * 25 * 256 * 128 + 7 * 7 * 25 * 128 * 64
          + 14 * 14 * 25 * 64 * 1)
D_MACS = 14 * 14 * 25 * 1 * 64 + 7 * 7 * 25 * 64 * 128 + 7 * 7 * 128


def test_tutorial_networks_by_hand():
  assert flops.forward_flops(tutorial.generator()) == 2 * G_MACS
  assert flops.forward_flops(tutorial.discriminator()) == 2 * D_MACS
  step = flops.tutorial_step_flops(2 * G_MACS, 2 * D_MACS)
  assert round(step / 1e6) == 435  # "434 MFLOPs per example" in the issue


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_the_seed_dcgan_has_the_tutorials_flops(spectral_norm):
  # Spectral normalization wraps the layers; they are counted all the same.
  config = load_config(**{"model.d_spectral_norm": spectral_norm,
                          "model.g_spectral_norm": spectral_norm})
  g, d = ARCHITECTURES.get("dcgan")(config.model, "float32")
  assert flops.forward_flops(g) == 2 * G_MACS
  assert flops.forward_flops(d) == 2 * D_MACS


def _profiled_flops(model: keras.Model) -> int:
  """TensorFlow's own count of a forward pass of one example."""
  spec = tf.TensorSpec([1, *model.input_shape[1:]])
  graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(
      spec).graph
  options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
  options["output"] = "none"
  return tf.compat.v1.profiler.profile(graph=graph,
                                       options=options).total_float_ops


@pytest.mark.parametrize("build", [tutorial.generator, tutorial.discriminator])
def test_count_agrees_with_tensorflows_profiler(build):
  model = build()
  counted, profiled = flops.forward_flops(model), _profiled_flops(model)
  # The profiler also counts batch norm, biases and activations, which the
  # layer count leaves out: a few percent at most.
  assert counted <= profiled <= 1.05 * counted, (counted, profiled)


def test_our_step_counts_n_disc_updates_of_d():
  one = flops.gan_step_flops(100, 10, flops.StepShape(n_disc=1))
  two = flops.gan_step_flops(100, 10, flops.StepShape(n_disc=2))
  assert one == 4 * 100 + 9 * 10
  assert two - one == 100 + 6 * 10  # one more D update


def test_a_simultaneous_step_does_the_tutorials_work():
  assert flops.gan_step_flops(100, 10, flops.StepShape(simultaneous=True)) == (
      flops.tutorial_step_flops(100, 10))


def test_penalties_count_their_double_backward_per_application():
  plain = flops.gan_step_flops(100, 10, flops.StepShape(n_disc=2))
  eager = flops.gan_step_flops(100, 10, flops.StepShape(n_disc=2,
                                                        eager_penalties=1))
  assert eager - plain == 2 * 7 * 10  # in each of the 2 D updates
  # Lazy every 4 steps: R1 alone, then R1 and R2 (R2 draws fresh fakes).
  lazy_r1 = flops.gan_step_flops(100, 10, flops.StepShape(lazy=((4, 1, False),)))
  lazy_both = flops.gan_step_flops(100, 10,
                                   flops.StepShape(lazy=((4, 2, True),)))
  base = flops.gan_step_flops(100, 10, flops.StepShape())
  assert lazy_r1 - base == 7 * 10 / 4
  assert lazy_both - base == (2 * 7 * 10 + 100) / 4
  # rpgan's G update judges the reals too.
  assert flops.gan_step_flops(100, 10, flops.StepShape(
      generator_needs_real=True)) - base == 10


def test_step_shape_of_a_config():
  from trainer import benchmark  # pylint: disable=g-import-not-at-top
  config = load_config(**{"model.loss": "rpgan", "penalties.names": "r1,r2,gp",
                          "penalties.r1.interval": 16,
                          "penalties.r2.interval": 16,
                          "penalties.gp.interval": 1})
  assert benchmark.step_shape(config) == flops.StepShape(
      n_disc=1, eager_penalties=1, lazy=((16, 2, True),),
      generator_needs_real=True)


def _profiled(fn, *specs) -> int:
  graph = tf.function(fn).get_concrete_function(*specs).graph
  options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
  options["output"] = "none"
  return tf.compat.v1.profiler.profile(graph=graph,
                                       options=options).total_float_ops


def test_a_penalty_costs_what_tensorflows_profiler_counts():
  # R1's contribution to D's update for one example: D forward, the input
  # gradient, and the gradient of its squared norm in D's weights.
  d = tutorial.discriminator()
  spec = tf.TensorSpec([1, 28, 28, 1])

  def penalty_update(x):
    with tf.GradientTape() as outer:
      with tf.GradientTape() as inner:
        inner.watch(x)
        total = tf.reduce_sum(d(x, training=True))
      r1 = tf.reduce_sum(tf.square(inner.gradient(total, x)))
    return outer.gradient(r1, d.trainable_variables)

  counted = flops.PENALTY_PASSES * flops.forward_flops(d)
  profiled = _profiled(penalty_update, spec)
  # The profiler counts only the convolutions and products, as we do.
  assert 0.97 * counted <= profiled <= 1.03 * counted, (counted, profiled)
