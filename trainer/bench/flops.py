"""Floating-point operations of the networks and of a training step.

Counted from the layers' shapes: a multiply-add is 2 FLOPs; only the
products of weights with activations are counted (kernel_flops): dense,
convolution and transposed-convolution layers, spectrally normalized ones
too, and the filters of resampling (batch norm, activations, biases, noise,
the optimizer and spectral normalization's power iteration, a few
matrix-vector products per weight and call whatever the batch, are a few
percent of those). A backward pass through a network costs twice its
forward pass (the gradients of the inputs and of the weights). This is the
count by which the tutorial's DCGAN step costs 3 F_G + 6 F_D = 434 MFLOPs
per example.

Keras' Dense, Conv2D, DepthwiseConv2D and Conv2DTranspose are counted from
their nodes in the model. The layers of trainer/models are counted by a
counter here, registered for their type (`_counts`), from their input
shape(s) and their attributes: the forward FLOPs of one example as the
training step calls the layer (training mode); a layer made of sublayers
sums theirs. Any other layer counts 0: a new layer with weights needs a
counter here.
"""

import dataclasses
import math
from typing import Any, Callable

import keras

from trainer.models import layers
from trainer.models import r3gan
from trainer.models import resampling
from trainer.models import stages
from trainer.models import stylegan2
from trainer.models import stylegan2_layers

# A layer's input shape with the batch axis, or a list of them.
Shape = Any
Counter = Callable[[keras.layers.Layer, Shape], int]

# The counters of trainer/models' layers, by type.
_COUNTERS: dict[type, Counter] = {}


def kernel_flops(positions: int, kernel_shape) -> int:
  """FLOPs of applying a kernel at `positions` places, for one example.

  Each weight is one multiply-add (2 FLOPs) per place: a dense layer's
  kernel [in, out] at 1 place, a convolution's [kh, kw, in, out] at each
  output pixel (a transposed one's at each input pixel), a depthwise one's
  [kh, kw, C, 1] at each output pixel.
  """
  return 2 * positions * math.prod(kernel_shape)


def fir_flops(height: int, width: int, channels: int) -> int:
  """FLOPs of resampling's upsample or downsample for one example.

  By the output size, as implemented: the 4x4 filter at every output pixel
  of every channel (in upsampling, 3 of its 4 taps per axis meet
  interleaved zeros).
  """
  taps = len(resampling.FIR)
  return kernel_flops(height * width, (taps, taps, channels))


def _counts(layer_type: type) -> Callable[[Counter], Counter]:
  """Registers a counter of the forward FLOPs of `layer_type`."""

  def register(counter: Counter) -> Counter:
    _COUNTERS[layer_type] = counter
    return counter

  return register


def layer_flops(layer: keras.layers.Layer, input_shape: Shape) -> int:
  """Forward FLOPs of one example through a layer of trainer/models.

  Args:
    layer: a built layer; 0 for a type that has no counter here.
    input_shape: its input shape(s) with the batch axis.
  """
  counter = _COUNTERS.get(type(layer))
  return 0 if counter is None else counter(layer, input_shape)


@_counts(stylegan2_layers.EqualDense)
@_counts(r3gan.GenerativeBasis)
def _dense(layer, input_shape) -> int:
  """The kernel [fan-in, units] (GenerativeBasis: the linear layer of z)."""
  del input_shape  # [B, fan-in]: the kernel's
  return kernel_flops(1, layer.kernel.shape)


@_counts(r3gan.Projection)
def _projection(layer, input_shape) -> int:
  """The product embed(label) . h."""
  del input_shape  # [[B, F], [B]]: F is the embeddings'
  return kernel_flops(1, layer.embeddings.shape[1:])


@_counts(stylegan2_layers.Projection)
def _cmap_projection(layer, input_shape) -> int:
  """The product out . cmap."""
  del layer
  return kernel_flops(1, input_shape[0][1:])


@_counts(stylegan2.LabelMapping)
def _label_mapping(layer, input_shape) -> int:
  """The embedding of the one-hot label and the fully connected layers."""
  del input_shape  # the sizes are the constructor's
  return sum(layer_flops(fc, None) for fc in [layer.embed, *layer.fcs])


@_counts(stylegan2_layers.EqualConv2D)
def _equal_conv2d(layer, input_shape) -> int:
  """The downsampling and the convolution.

  A 1x1 downsamples first; a 3x3 filters at the full size (+1 pixel, its
  padding) and convolves with stride 2 (resampling.down_conv).
  """
  _, height, width, channels = input_shape
  flops = 0
  if layer.down and layer.kernel_size > 1:
    flops += fir_flops(height + 1, width + 1, channels)
  if layer.down:
    height, width = height // 2, width // 2
    if layer.kernel_size == 1:
      flops += fir_flops(height, width, channels)
  return flops + kernel_flops(height * width, layer.kernel.shape)


@_counts(stylegan2_layers.ModulatedConv2D)
def _modulated_conv2d(layer, input_shape) -> int:
  """The style, the demodulation, the convolution and its upsampling.

  The style's affine layer, the demodulation coefficients' product [Cin] x
  [Cin, Cout], and the convolution: at the output size, or with `up` a
  transposed one at the input size followed by the filter on its outputs
  (resampling.up_conv). Both
  modconv modes do the convolution's multiply-adds, the grouped one
  with one group per example; their elementwise modulation (of the kernel
  per example, or of the activations) is not counted: per example, at most
  1 / (H W) of the convolution, under 1% of a network.
  """
  _, height, width, _ = input_shape
  flops = layer_flops(layer.affine, (None, layer.w_dim))
  if layer.up:
    flops += fir_flops(2 * height, 2 * width, layer.filters)
  if layer.demodulate:
    flops += kernel_flops(1, (layer.in_channels, layer.filters))
  return flops + kernel_flops(height * width, layer.kernel.shape)


@_counts(stylegan2.Mapping)
def _mapping(layer, input_shape) -> int:
  """Its fully connected layers, twice with style mixing.

  In training mode the MLP maps every example's second z, mixed or not.
  """
  del input_shape  # the sizes are the constructor's
  passes = 2 if layer.style_mixing else 1
  embed = [layer.embed] if layer.num_classes else []
  return passes * sum(layer_flops(fc, None) for fc in [*embed, *layer.fcs])


@_counts(stylegan2.Synthesis)
def _synthesis(layer, input_shape) -> int:
  """Its layers and the images' upsampling."""
  del input_shape  # the sizes are the constructor's
  flops = 0
  for conv in layer.convs:  # at its resolution, from half of it if up
    size = conv.resolution // 2 if conv.up else conv.resolution
    flops += layer_flops(conv, (None, size, size, conv.in_channels))
  sizes = stages.resolutions(layer.image_size)
  for res, to_rgb in zip(sizes, layer.to_rgbs):
    flops += layer_flops(to_rgb, (None, res, res, to_rgb.in_channels))
  # The summed images are upsampled to every resolution above 4x4.
  return flops + sum(fir_flops(res, res, layer.channels)
                     for res in sizes[1:])


@_counts(r3gan.Convolution)
def _convolution(layer, input_shape) -> int:
  """The kernel at every pixel.

  A grouped kernel holds Cin / groups inputs per output, which the count
  follows.
  """
  _, height, width, _ = input_shape
  return kernel_flops(height * width, layer.kernel.shape)


@_counts(r3gan.ResidualBlock)
def _residual_block(layer, input_shape) -> int:
  """Its three convolutions."""
  inner = (*input_shape[:-1], layer.channels * layer.expansion)
  return (layer_flops(layer.expand, input_shape)
          + layer_flops(layer.grouped, inner)
          + layer_flops(layer.project, inner))


@_counts(r3gan.Resample)
def _resample(layer, input_shape) -> int:
  """The filter, by the output size."""
  _, height, width, channels = layer.compute_output_shape(input_shape)
  return fir_flops(height, width, channels)


@_counts(r3gan.Aggregation)
def _aggregation(layer, input_shape) -> int:
  """The 1x1 convolution to the image channels."""
  return layer_flops(layer.to_image, input_shape)


def _layer_flops(layer: keras.layers.Layer) -> int:
  """Forward FLOPs of one layer of a model for one example (0: not counted)."""
  if type(layer) in _COUNTERS:
    return layer_flops(layer, keras.tree.map_structure(
        lambda t: tuple(t.shape), layer.input))
  # A spectrally normalized layer computes what the layer it wraps does, on
  # the wrapper's inputs and outputs (the wrapped layer has no nodes of its
  # own in the model's graph).
  weight_layer = layer.layer if isinstance(
      layer, layers.SpectralNormalization) else layer
  if isinstance(weight_layer, keras.layers.Dense):
    return kernel_flops(1, weight_layer.kernel.shape)
  if isinstance(weight_layer, keras.layers.DepthwiseConv2D):
    _, height, width, _ = layer.output.shape
    return kernel_flops(height * width, weight_layer.kernel.shape)
  if isinstance(weight_layer, keras.layers.Conv2DTranspose):
    # Every input position scatters a kernel-sized patch of every output map.
    _, height, width, _ = layer.input.shape
    return kernel_flops(height * width, weight_layer.kernel.shape)
  if isinstance(weight_layer, keras.layers.Conv2D):
    _, height, width, _ = layer.output.shape
    return kernel_flops(height * width, weight_layer.kernel.shape)
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
# (tests/bench/test_flops.py).
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


def _backward_flops(model: keras.Model, trained: set[int]) -> int:
  """FLOPs of the gradients of a loss of `model`'s output in the weights of
  the layers `trained` (ids), for one example.

  A layer's weight gradient costs its forward, and so does its input
  gradient, which is wanted only where its input depends on a trained
  weight (TensorFlow's tape computes nothing else). Walks the functional
  model's layers in their (topological) order.
  """
  depends: dict[int, bool] = {}  # layer id -> its output depends on one
  total = 0
  for layer in model.layers:
    parents = [parent.operation for node in layer._inbound_nodes  # pylint: disable=protected-access
               for parent in node.parent_nodes]
    input_depends = any(depends.get(id(p), False) for p in parents)
    is_trained = id(layer) in trained
    total += _layer_flops(layer) * (int(is_trained) + int(input_depends))
    depends[id(layer)] = input_depends or is_trained
  return total


def freeze_saving(discriminator: keras.Model,
                  frozen: list[keras.layers.Layer]) -> int:
  """FLOPs per example that freezing `frozen` (train.freeze_d) saves in a
  backward pass of D's loss: the frozen layers' weight gradients, and the
  input gradients that no trained weight below needs any more."""
  weighted = {id(layer) for layer in discriminator.layers
              if layer.trainable_weights}
  return (_backward_flops(discriminator, weighted)
          - _backward_flops(discriminator,
                            weighted - {id(layer) for layer in frozen}))


def gan_step_flops(g_forward: int, d_forward: int, shape: StepShape,
                   d_frozen: int = 0) -> float:
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

  `d_frozen` is what train.freeze_d saves in one backward pass of D's
  loss for one example (freeze_saving): each D update's backward on the
  reals and the fakes costs 2 d_frozen less. In a simultaneous step, where
  G wants the fakes' input gradients, only the reals' backward is counted
  as saving it. Penalties are counted whole (their gradient to the images
  crosses every layer).
  """
  penalties = shape.eager_penalties * PENALTY_PASSES * d_forward
  if shape.simultaneous:
    total = (tutorial_step_flops(g_forward, d_forward) + penalties
             - d_frozen)
  else:
    d_update = (g_forward + 2 * d_forward + 4 * d_forward + penalties
                - 2 * d_frozen)
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
