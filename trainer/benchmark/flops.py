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

import dataclasses

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


# One evaluation of a gradient penalty per example, in D forwards: D's
# forward (1), the gradient to its input (1: no weight gradients), then D's
# update differentiates both (a double backward, 5). TensorFlow's profiler
# counts 7.0 for the tutorial's D (tests/benchmark/test_flops.py).
PENALTY_PASSES = 7


@dataclasses.dataclass(frozen=True)
class StepShape:
  """What a step's cost depends on, beside the networks' forward costs.

  Attributes:
    n_disc: D updates per step.
    simultaneous: train.simultaneous (the tutorial's structure).
    eager_penalties: penalties in every D update's loss.
    lazy: (interval, penalties, whether they need fresh fakes) of each lazy
      group, a separate update of D every `interval` steps.
    generator_needs_real: G's loss reads D on the reals (rpgan), a D
      forward more in an alternating G update.
  """
  n_disc: int = 1
  simultaneous: bool = False
  eager_penalties: int = 0
  lazy: tuple[tuple[int, int, bool], ...] = ()
  generator_needs_real: bool = False


def gan_step_flops(g_forward: int, d_forward: int,
                   shape: StepShape) -> float:
  """FLOPs per example of this project's training step, lazy ones averaged.

  Each of the n_disc D updates draws fakes (G forward), judges a real and a
  fake batch (2 D forwards) and backpropagates both (2 x 2 D forwards), plus
  PENALTY_PASSES D forwards per eager penalty. The G update draws its own
  fakes, judges them, and backpropagates through D and G. A simultaneous
  step (train.simultaneous) does the tutorial's work plus its penalties. A
  lazy group of interval N adds, every N steps, its penalties and (for a
  penalty on fakes) a G forward.
  """
  penalties = shape.eager_penalties * PENALTY_PASSES * d_forward
  if shape.simultaneous:
    total = tutorial_step_flops(g_forward, d_forward) + penalties
  else:
    d_update = g_forward + 2 * d_forward + 4 * d_forward + penalties
    g_update = g_forward + d_forward + 2 * d_forward + 2 * g_forward
    if shape.generator_needs_real:
      g_update += d_forward
    total = shape.n_disc * d_update + g_update
  for interval, count, needs_fake in shape.lazy:
    total += (count * PENALTY_PASSES * d_forward
              + (g_forward if needs_fake else 0)) / interval
  return total


def tutorial_step_flops(g_forward: int, d_forward: int) -> int:
  """FLOPs per example of the TensorFlow DCGAN tutorial's step.

  One batch of fakes serves both updates: G forward, D forwards on real and
  fake, D's backward for both, and G's backward through D on the fakes.
  """
  return 3 * g_forward + 6 * d_forward
