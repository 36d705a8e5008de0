"""Floating-point operations of the networks and of a training step.

Counted from the layers' shapes: a multiply-add is 2 FLOPs; only the
products of weights with activations are counted (layers.kernel_flops):
dense, convolution and transposed-convolution layers, spectrally normalized
ones too, and the filters of resampling (batch norm, activations, biases,
noise, the optimizer and spectral normalization's power iteration, a few
matrix-vector products per weight and call whatever the batch, are a few
percent of those). A backward pass through a network costs twice its
forward pass (the gradients of the inputs and of the weights). This is the
count by which the tutorial's DCGAN step costs 3 F_G + 6 F_D = 434 MFLOPs
per example.

Keras' Dense, Conv2D, DepthwiseConv2D and Conv2DTranspose are counted
here. Any other layer
counts itself with a method `flops_per_example(input_shape) -> int`: its
forward FLOPs for one example as the training step calls it (training
mode), from its input shape(s) with the batch axis; a layer made of
sublayers sums theirs (trainer/models/stylegan2.py). A layer with neither
counts 0.
"""

import dataclasses

import keras

from trainer.models import layers


def _layer_flops(layer: keras.layers.Layer) -> int:
  """Forward FLOPs of one layer of a model for one example (0: not counted)."""
  counts_itself = getattr(layer, "flops_per_example", None)
  if counts_itself is not None:
    return counts_itself(keras.tree.map_structure(lambda t: tuple(t.shape),
                                                  layer.input))
  # A spectrally normalized layer computes what the layer it wraps does, on
  # the wrapper's inputs and outputs (the wrapped layer has no nodes of its
  # own in the model's graph).
  weight_layer = layer.layer if isinstance(
      layer, layers.SpectralNormalization) else layer
  if isinstance(weight_layer, keras.layers.Dense):
    return layers.kernel_flops(1, weight_layer.kernel.shape)
  if isinstance(weight_layer, keras.layers.DepthwiseConv2D):
    _, height, width, _ = layer.output.shape
    return layers.kernel_flops(height * width,
                                weight_layer.kernel.shape)
  if isinstance(weight_layer, keras.layers.Conv2DTranspose):
    # Every input position scatters a kernel-sized patch of every output map.
    _, height, width, _ = layer.input.shape
    return layers.kernel_flops(height * width,
                                weight_layer.kernel.shape)
  if isinstance(weight_layer, keras.layers.Conv2D):
    _, height, width, _ = layer.output.shape
    return layers.kernel_flops(height * width,
                                weight_layer.kernel.shape)
  return 0


def forward_flops(model: keras.Model) -> int:
  """FLOPs of one forward pass of `model` for one example, in training mode."""
  return sum(_layer_flops(layer) for layer in model.layers)


# One evaluation of a gradient penalty per example, in forwards of the
# network it regularizes: the forward (1), the gradient to its input (1: no
# weight gradients), then the network's update differentiates both (a double
# backward, 5). D's penalties take the gradient to the images, G's path
# length the gradient of its images to w (through the synthesis; the small
# mapping network is counted as if it were crossed too). TensorFlow's
# profiler counts 7.0 for the tutorial's D and 6.9 for a StyleGAN2 G
# (tests/benchmark/test_flops.py).
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
    g_eager_penalties: G's penalties in every G update's loss, as the
      share of the batch they evaluate: summed over them, each one's
      examples / batch (the path length: 1 / batch_shrink).
    g_lazy: (interval, share of the batch as above) of each lazy group of
      G's penalties, a separate update of G every `interval` steps.
  """
  n_disc: int = 1
  simultaneous: bool = False
  eager_penalties: int = 0
  lazy: tuple[tuple[int, int, bool], ...] = ()
  generator_needs_real: bool = False
  g_eager_penalties: float = 0.0
  g_lazy: tuple[tuple[int, float], ...] = ()


def gan_step_flops(g_forward: int, d_forward: int,
                   shape: StepShape) -> float:
  """FLOPs per example of this project's training step, lazy ones averaged.

  Each of the n_disc D updates draws fakes (G forward), judges a real and a
  fake batch (2 D forwards) and backpropagates both (2 x 2 D forwards), plus
  PENALTY_PASSES D forwards per eager penalty. The G update draws its own
  fakes, judges them, and backpropagates through D and G. A simultaneous
  step (train.simultaneous) does the tutorial's work plus its penalties. A
  lazy group of D's penalties with interval N adds, every N steps, its
  penalties and (for a penalty on fakes) a G forward. G's penalties cost
  PENALTY_PASSES G forwards per example they evaluate, in every G update
  if eager, every N steps in a lazy group.
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
  g_share = shape.g_eager_penalties + sum(
      share / interval for interval, share in shape.g_lazy)
  return total + g_share * PENALTY_PASSES * g_forward


def tutorial_step_flops(g_forward: int, d_forward: int) -> int:
  """FLOPs per example of the TensorFlow DCGAN tutorial's step.

  One batch of fakes serves both updates: G forward, D forwards on real and
  fake, D's backward for both, and G's backward through D on the fakes.
  """
  return 3 * g_forward + 6 * d_forward
