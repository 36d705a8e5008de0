"""StyleGAN2's layers: the modulated convolution's paths and demodulation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from trainer.models import stylegan2_layers


@pytest.mark.parametrize("batch,expected", [(1, "grouped"), (4, "scaled")])
def test_auto_takes_the_faster_modulated_convolution_for_the_batch(
    batch, expected):
  # One example: per-example kernels in one grouped convolution (the
  # kernels' transposes are in the graph); more: the shared kernel.
  def graph_ops(modconv):
    layer = stylegan2_layers.ModulatedConv2D(8, in_channels=8, w_dim=8,
                                             modconv=modconv)
    layer.build()
    traced = tf.function(layer).get_concrete_function(
        tf.TensorSpec([batch, 4, 4, 8]), tf.TensorSpec([batch, 8]))
    return sorted(op.type for op in traced.graph.get_operations())

  assert graph_ops("auto") == graph_ops(expected)
  assert graph_ops("grouped") != graph_ops("scaled")


@pytest.mark.parametrize("modconv", ["scaled", "grouped"])
def test_demodulation_gives_unit_variance_outputs(modconv):
  # Unit-variance inputs and any style: each output channel has unit
  # variance (inside the image, away from the zero padding); without
  # demodulation the variance follows the style's scale.
  def variance(demodulate: bool) -> np.ndarray:
    keras.utils.set_random_seed(1)
    layer = stylegan2_layers.ModulatedConv2D(
        32, in_channels=64, w_dim=16, demodulate=demodulate,
        activation=False, modconv=modconv)
    layer.build()
    x = tf.random.stateless_normal([8, 16, 16, 64], [2, 3])
    w = 4.0 * tf.random.stateless_normal([8, 16], [4, 5])  # large styles
    y = layer(x, w, noise_mode="none").numpy()[:, 1:-1, 1:-1]
    return y.var(axis=(0, 1, 2))  # [32]

  demodulated = variance(True)
  np.testing.assert_allclose(demodulated, 1.0, atol=0.15)
  assert abs(np.log(variance(False).mean())) > 1.0

