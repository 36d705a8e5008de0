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
  one = flops.gan_step_flops(100, 10, n_disc=1)
  two = flops.gan_step_flops(100, 10, n_disc=2)
  assert one == 4 * 100 + 9 * 10
  assert two - one == 100 + 6 * 10  # one more D update


def test_a_simultaneous_step_does_the_tutorials_work():
  assert flops.gan_step_flops(100, 10, n_disc=1, simultaneous=True) == (
      flops.tutorial_step_flops(100, 10))
