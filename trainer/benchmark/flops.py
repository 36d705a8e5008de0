"""Floating-point operations of the networks and of a training step.

Counted from the layers' shapes: a multiply-add is 2 FLOPs; only dense,
convolution and transposed-convolution layers are counted, spectrally
normalized ones too (batch norm, activations, the optimizer and spectral
normalization's power iteration, a few matrix-vector products per weight
and call whatever the batch, are a few percent of those). A backward pass
through a network costs twice its forward pass (the gradients of the inputs
and of the weights). This is the count by which the tutorial's DCGAN step
costs 3 F_G + 6 F_D = 434 MFLOPs per example.
"""

import keras

from trainer.models import layers


def _layer_flops(layer: keras.layers.Layer) -> int:
  """Forward FLOPs of one layer for one example (0 if not counted)."""
  # A spectrally normalized layer computes what the layer it wraps does, on
  # the wrapper's inputs and outputs (the wrapped layer has no nodes of its
  # own in the model's graph).
  weight_layer = layer.layer if isinstance(
      layer, layers.SpectralNormalization) else layer
  if isinstance(weight_layer, keras.layers.Dense):
    return 2 * weight_layer.kernel.shape[0] * weight_layer.kernel.shape[1]
  if isinstance(weight_layer, keras.layers.Conv2DTranspose):
    # Every input position scatters a kernel-sized patch of every output map.
    _, height, width, _ = layer.input.shape
    kh, kw, cout, cin = weight_layer.kernel.shape
    return 2 * height * width * kh * kw * cin * cout
  if isinstance(weight_layer, keras.layers.Conv2D):
    _, height, width, _ = layer.output.shape
    kh, kw, cin, cout = weight_layer.kernel.shape
    return 2 * height * width * kh * kw * cin * cout
  return 0


def forward_flops(model: keras.Model) -> int:
  """FLOPs of one forward pass of `model` for one example."""
  return sum(_layer_flops(layer) for layer in model.layers)


def gan_step_flops(g_forward: int, d_forward: int, n_disc: int,
                   simultaneous: bool = False) -> int:
  """FLOPs per example of this project's training step.

  Each of the n_disc D updates draws fakes (G forward), judges a real and a
  fake batch (2 D forwards) and backpropagates both (2 x 2 D forwards). The
  G update draws its own fakes, judges them, and backpropagates through D
  and G. A simultaneous step (train.simultaneous) does the tutorial's work.
  """
  if simultaneous:
    return tutorial_step_flops(g_forward, d_forward)
  d_update = g_forward + 2 * d_forward + 4 * d_forward
  g_update = g_forward + d_forward + 2 * d_forward + 2 * g_forward
  return n_disc * d_update + g_update


def tutorial_step_flops(g_forward: int, d_forward: int) -> int:
  """FLOPs per example of the TensorFlow DCGAN tutorial's step.

  One batch of fakes serves both updates: G forward, D forwards on real and
  fake, D's backward for both, and G's backward through D on the fakes.
  """
  return 3 * g_forward + 6 * d_forward
