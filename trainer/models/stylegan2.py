"""StyleGAN2 (Karras et al., 2020) with StyleGAN2-ADA's config-f settings.

G = synthesis(mapping(z)). The mapping network normalizes z (and, with
`model.num_classes` > 0, a learned embedding of the label, normalized too
and concatenated), then runs `mapping_layers` equalized fully connected
layers with the learning-rate multiplier `mapping_lr_multiplier` (0.01).
Its output w is broadcast to ws [B, num_ws, w_dim], one w per modulated
layer (w+ space), num_ws = 2 * log2(image_size) - 2. In training mode the
mapping tracks the moving average w_avg of w (decay `w_avg_beta`, 0.995) and
mixes styles: with probability `style_mixing` (0.9) an example takes the ws
of a second z from a random layer on.

The synthesis network starts from a learned constant [4, 4, C]; each
resolution has modulated 3x3 convolutions with weight demodulation, noise
with a learned strength, bias and leaky ReLU (slope 0.2, gain sqrt(2)), and
a toRGB whose outputs are summed over resolutions (the "skip" generator).
Upsampling, of the features before a resolution's first convolution and of
the summed images, is bilinear: the [1, 3, 3, 1] filter. (StyleGAN2 fuses
it into a transposed convolution; here the convolution follows it.) Images
in training mode are the raw sum, as StyleGAN2 trains them; in inference
mode they are clipped to [-1, 1], which is where its tools clamp them.

D is the residual discriminator: fromRGB at the full resolution, per
resolution two 3x3 convolutions (the second after a [1, 3, 3, 1] low-pass
downsampling) plus a downsampled 1x1 skip, the sum scaled by 1/sqrt(2); at
4x4 the minibatch standard deviation, a 3x3 convolution and two fully
connected layers. A class-conditional D adds a projection (Miyato & Koyama,
2018): embed(label) . h / sqrt(dim h) for the features h before the logit.
Every weight is stored N(0, 1) (the mapping's N(0, 1 / multiplier)) and
scaled at run time by 1/sqrt(fan-in) (equalized learning rate).

Widths: min(channel_base // r, channel_max) channels at resolution r. The
default channel_base 16384 is half config-f's 32768 (the 0.5x networks of
the ADA paper's smaller datasets); channel_max is 512.

Mixed precision as StyleGAN2-ADA: under a "mixed_*" policy the blocks of the
top `num_fp16_res` resolutions (never below 8x8) compute in the reduced
dtype and the others, the mapping and D's 4x4 epilogue in float32; each
convolution's output is clamped to +-`conv_clamp` (0: no clamping). Styles
and demodulation coefficients are always float32. G's images and D's
logits are float32.

The modulated convolution is computed one of two ways (`model.modconv`,
the same function): "grouped" gives each example its own modulated and
demodulated weight and runs one grouped convolution with the batch folded
into the channels; "scaled" scales the activations by the styles before a
shared convolution and by the demodulation coefficients after it; "auto"
(the default) takes "grouped" for a batch of one and "scaled" otherwise,
the faster of the two as measured on CPUs (docs/performance.md).

Random draws (noise inputs, the second z of style mixing) come from one
seed per example made from the bits of its z (of its ws when the synthesis
is called alone without a seed), so the outputs are a function of the
inputs alone and a resumed run draws what an uninterrupted one would. Each
example's draws are its own: 1 and 2 replicas draw the same noise for a
global batch, and D's minibatch standard deviation takes groups of
consecutive examples, so that they are the same too when the per-replica
batch is a multiple of the group.

Latent-space access for inversion, truncation and mixing: `mapping_of(g)`
and `synthesis_of(g)` return G's two halves; `Mapping.__call__` takes
`psi` and `truncation_cutoff` (toward w_avg) and `style_mixing`, and
`Synthesis.__call__` takes any ws [B, num_ws, w_dim] and a `noise_mode`:
"random", "const" (a fixed draw per layer) or "none".
"""

import math

import keras
import ml_collections
import numpy as np
import tensorflow as tf

from trainer.errors import UserError
from trainer.models import layers
from trainer.registry import Registry

_SLOPE = 0.2
_GAIN = math.sqrt(2.0)  # keeps leaky ReLU's output at unit second moment
_FIR = (1.0, 3.0, 3.0, 1.0)  # bilinear interpolation at factor 2
_EPS = 1e-8
# Salts of the stateless seeds derived from inputs, one per purpose.
_NOISE_SALT, _MIXING_SALT = 1, 2

MODCONVS: Registry = Registry("modulated convolution", "model.modconv")


def _lrelu(x: tf.Tensor, gain: float, clamp: float | None) -> tf.Tensor:
  """Leaky ReLU times sqrt(2) * gain, clamped to +-clamp * gain."""
  x = tf.nn.leaky_relu(x, _SLOPE) * tf.cast(_GAIN * gain, x.dtype)
  return _clamp(x, clamp, gain)


def _clamp(x: tf.Tensor, clamp: float | None, gain: float = 1.0) -> tf.Tensor:
  if clamp is None:
    return x
  return tf.clip_by_value(x, -clamp * gain, clamp * gain)


def _fir_kernel(channels: int, gain: float, dtype) -> tf.Tensor:
  """The separable [1, 3, 3, 1] filter per channel: [4, 4, C, 1]."""
  taps = np.array(_FIR)
  kernel = np.outer(taps, taps)
  kernel *= gain / kernel.sum()
  return tf.constant(np.tile(kernel[:, :, None, None], [1, 1, channels, 1]),
                     dtype)


def upsample(x: tf.Tensor) -> tf.Tensor:
  """[B, H, W, C] -> [B, 2H, 2W, C], bilinear (zeros outside the image).

  Zeros are interleaved, then the filter (gain 4) fills them: pixel 2i gets
  (x[i-1] + 3 x[i]) / 4 and 2i+1 gets (3 x[i] + x[i+1]) / 4 along each axis.
  Only reshapes and a depthwise convolution, so every order of derivative
  exists.
  """
  _, h, w, c = x.shape
  zeros = tf.zeros_like(x)
  x = tf.reshape(tf.stack([x, zeros], axis=3), [-1, h, 2 * w, c])
  x = tf.reshape(tf.stack([x, tf.zeros_like(x)], axis=2), [-1, 2 * h, 2 * w, c])
  x = tf.pad(x, [[0, 0], [2, 1], [2, 1], [0, 0]])
  return tf.nn.depthwise_conv2d(x, _fir_kernel(c, 4.0, x.dtype),
                                [1, 1, 1, 1], "VALID")


def fir_flops(height: int, width: int, channels: int) -> int:
  """FLOPs of upsample or downsample for one example, by the output size.

  As implemented: the 4x4 filter at every output pixel of every channel (in
  upsampling, 3 of its 4 taps per axis meet interleaved zeros).
  """
  return layers.kernel_flops(height * width, (len(_FIR), len(_FIR), channels))


def downsample(x: tf.Tensor) -> tf.Tensor:
  """[B, H, W, C] -> [B, H/2, W/2, C]: the low-pass filter, then stride 2."""
  x = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
  return tf.nn.depthwise_conv2d(x, _fir_kernel(x.shape[-1], 1.0, x.dtype),
                                [1, 2, 2, 1], "VALID")


def _hash(x: tf.Tensor) -> tf.Tensor:
  """A 32-bit avalanche of uint32 values (Wellons' lowbias32)."""
  shift = lambda v, n: tf.bitwise.right_shift(v, tf.constant(n, tf.uint32))
  x = tf.bitwise.bitwise_xor(x, shift(x, 16)) * tf.constant(0x7feb352d,
                                                              tf.uint32)
  x = tf.bitwise.bitwise_xor(x, shift(x, 15)) * tf.constant(0x846ca68b,
                                                              tf.uint32)
  return tf.bitwise.bitwise_xor(x, shift(x, 16))


def example_seeds(x: tf.Tensor, salt: int) -> tf.Tensor:
  """One seed per example [B] int32, a function of that example's values.

  Every value's bit pattern is hashed with its position and the salt and
  the hashes are summed: any change of an example's input changes its
  draws, and no other example's input matters. Draws made from these seeds
  are therefore the same whichever replica holds the example and however
  the global batch is split.
  """
  # The features are static, the batch need not be (a served G's is not).
  x = tf.reshape(tf.cast(tf.stop_gradient(x), tf.float32),
                 [-1, math.prod(x.shape[1:])])
  bits = tf.bitcast(x, tf.uint32)  # [B, F]
  positions = tf.cast(tf.range(tf.shape(bits)[1]), tf.uint32)[None, :]
  salted = _hash(positions * tf.constant(0x9e3779b9, tf.uint32)
                 + tf.constant(salt, tf.uint32))
  seeds = tf.reduce_sum(_hash(tf.bitwise.bitwise_xor(bits, salted)), axis=1)
  return tf.bitcast(_hash(seeds), tf.int32)


def noise_seeds(x: tf.Tensor) -> tf.Tensor:
  """The seeds [B] int32 of the noise inputs drawn for the examples of x.

  G draws from those of z (NoiseSeed); the synthesis alone, from its ws.
  """
  return example_seeds(x, _NOISE_SALT)


def _uniform(seeds: tf.Tensor, shape, stream: int) -> tf.Tensor:
  """Per example, values uniform in (0, 1): [B, *shape] float32.

  A counter-based generator: value k of example b hashes (seed_b, stream,
  k). Elementwise integer ops only, so it runs under XLA and on TPUs, for
  any batch.
  """
  count = int(np.prod(shape)) if shape else 1
  counters = tf.cast(tf.range(count), tf.uint32)[None, :]
  key = _hash(tf.bitcast(seeds, tf.uint32)[:, None]
              + tf.constant(stream * 0x632be5ab & 0xFFFFFFFF, tf.uint32))
  bits = _hash(tf.bitwise.bitwise_xor(
      key, _hash(counters + tf.constant(0x5bd1e995, tf.uint32))))
  # The top 24 bits, centred in their interval: never 0 nor 1.
  values = (tf.cast(tf.bitwise.right_shift(bits, tf.constant(8, tf.uint32)),
                    tf.float32) + 0.5) / float(1 << 24)
  return tf.reshape(values, [-1, *shape])


def _normal_draw(seeds: tf.Tensor, shape, stream: int) -> tf.Tensor:
  """Per example, standard normal values [B, *shape] (Box-Muller).

  Both uniforms come from one draw of the stream, which keeps the graph
  small: a trace costs about a millisecond per op.
  """
  u1, u2 = tf.unstack(_uniform(seeds, [2, *shape], stream), axis=1)
  return tf.sqrt(-2.0 * tf.math.log(u1)) * tf.cos(2.0 * math.pi * u2)


def draw_noise(seeds: tf.Tensor, sizes) -> list[tf.Tensor]:
  """The noise inputs [B, r, r, 1] of the layers of sizes r, from seeds [B].

  One draw for all the layers, cut into theirs: each example's noise is a
  function of its seed alone, as every draw here.
  """
  sizes = list(sizes)
  noise = _normal_draw(seeds, [sum(r * r for r in sizes)], 0)
  pieces = tf.split(noise, [r * r for r in sizes], axis=1)
  return [tf.reshape(piece, [-1, r, r, 1])
          for piece, r in zip(pieces, sizes)]


def _normalize(x: tf.Tensor) -> tf.Tensor:
  """Scales each row of x [B, F] to unit second moment."""
  return x * tf.math.rsqrt(tf.reduce_mean(tf.square(x), axis=-1,
                                          keepdims=True) + _EPS)


def _normal(stddev: float = 1.0) -> keras.initializers.Initializer:
  """N(0, stddev^2), seeded from Keras' global seed (set_random_seed)."""
  return keras.initializers.RandomNormal(stddev=stddev)


class EqualDense(keras.layers.Layer):
  """A fully connected layer with equalized learning rate.

  The weight is stored N(0, 1 / lr_multiplier) and used times
  lr_multiplier / sqrt(fan-in); the bias is used times lr_multiplier. With
  Adam, whose steps do not depend on the gradient's scale, a multiplier
  below 1 slows this layer's learning by that factor.

  Args:
    units: output features.
    lr_multiplier: the learning-rate multiplier.
    bias_init: the bias' initial (effective) value.
    activation: leaky ReLU (gain sqrt(2)) after the bias, or linear.
  """

  def __init__(self, units: int, *, lr_multiplier: float = 1.0,
               bias_init: float = 0.0, activation: bool = False, **kwargs):
    super().__init__(**kwargs)
    self.units, self.lr_multiplier = units, lr_multiplier
    self.bias_init, self.activation = bias_init, activation

  def build(self, input_shape):
    fan_in = input_shape[-1]
    self._gain = self.lr_multiplier / math.sqrt(fan_in)
    # autocast=False: the gains apply in float32, then one cast.
    self.kernel = self.add_weight(
        name="kernel", shape=(fan_in, self.units),
        initializer=_normal(1.0 / self.lr_multiplier), autocast=False)
    self.bias = self.add_weight(
        name="bias", shape=(self.units,),
        initializer=keras.initializers.Constant(
            self.bias_init / self.lr_multiplier), autocast=False)

  def call(self, x):  # x [B, F] -> [B, units]
    kernel = tf.cast(self.kernel * self._gain, x.dtype)
    x = tf.matmul(x, kernel) + tf.cast(self.bias * self.lr_multiplier,
                                       x.dtype)
    return _lrelu(x, 1.0, None) if self.activation else x

  def flops_per_example(self, input_shape) -> int:
    """Forward FLOPs of one example (trainer/benchmark/flops.py)."""
    del input_shape  # [B, fan-in]: the kernel's
    return layers.kernel_flops(1, self.kernel.shape)

  def compute_output_shape(self, input_shape):
    return (*input_shape[:-1], self.units)

  def get_config(self) -> dict:
    return {**super().get_config(), "units": self.units,
            "lr_multiplier": self.lr_multiplier, "bias_init": self.bias_init,
            "activation": self.activation}


class EqualConv2D(keras.layers.Layer):
  """A 'same' convolution with equalized learning rate, for D.

  Args:
    filters: output channels.
    kernel_size: 1 or 3.
    activation: leaky ReLU (gain sqrt(2)) after the bias, or linear.
    down: halve the resolution first (low-pass filter, stride 2), so the
      convolution runs at the lower resolution.
    use_bias: add a learned bias.
    gain: multiplies the output (and the clamp): 1/sqrt(2) where two
      branches are summed.
    clamp: clamps the output to +-clamp * gain; None for no clamping.
  """

  def __init__(self, filters: int, kernel_size: int, *,
               activation: bool = True, down: bool = False,
               use_bias: bool = True, gain: float = 1.0,
               clamp: float | None = None, **kwargs):
    super().__init__(**kwargs)
    self.filters, self.kernel_size = filters, kernel_size
    self.activation, self.down, self.use_bias = activation, down, use_bias
    self.gain, self.clamp = gain, clamp

  def build(self, input_shape):
    fan_in = input_shape[-1] * self.kernel_size**2
    self._weight_gain = 1.0 / math.sqrt(fan_in)
    k = self.kernel_size
    self.kernel = self.add_weight(
        name="kernel", shape=(k, k, input_shape[-1], self.filters),
        initializer=_normal(), autocast=False)
    if self.use_bias:
      self.bias = self.add_weight(name="bias", shape=(self.filters,),
                                  initializer="zeros", autocast=False)

  def call(self, x):  # x [B, H, W, Cin] -> [B, H', W', filters]
    if self.down:
      x = downsample(x)
    kernel = tf.cast(self.kernel * self._weight_gain, x.dtype)
    x = tf.nn.conv2d(x, kernel, 1, "SAME")
    if self.use_bias:
      x += tf.cast(self.bias, x.dtype)
    if self.activation:
      return _lrelu(x, self.gain, self.clamp)
    return _clamp(x * tf.cast(self.gain, x.dtype), self.clamp, self.gain)

  def flops_per_example(self, input_shape) -> int:
    """Forward FLOPs of one example: the downsampling and the convolution."""
    _, height, width, channels = input_shape
    flops = 0
    if self.down:
      height, width = height // 2, width // 2
      flops += fir_flops(height, width, channels)
    return flops + layers.kernel_flops(height * width, self.kernel.shape)

  def compute_output_shape(self, input_shape):
    b, h, w, _ = input_shape
    if self.down:
      h, w = h // 2, w // 2
    return (b, h, w, self.filters)

  def get_config(self) -> dict:
    return {**super().get_config(), "filters": self.filters,
            "kernel_size": self.kernel_size, "activation": self.activation,
            "down": self.down, "use_bias": self.use_bias, "gain": self.gain,
            "clamp": self.clamp}


# Modulated convolutions: (x [B, H, W, Cin] in the compute dtype, weight
# [k, k, Cin, Cout] float32, styles [B, Cin] float32, demodulation
# coefficients [B, Cout] float32 or None) -> [B, H, W, Cout] in x's dtype.


@MODCONVS.register("scaled")
def _scaled_modconv(x: tf.Tensor, weight: tf.Tensor, styles: tf.Tensor,
                    dcoefs: tf.Tensor | None) -> tf.Tensor:
  """Scales the activations instead of the weights: one shared kernel.

  conv(x * s, W) * d = conv(x, W * s * d) because the style s scales input
  channels and d output channels. Cheaper than per-example kernels when the
  batch is large, and its gradient is an ordinary convolution's.
  """
  dtype = x.dtype
  x = x * tf.cast(styles, dtype)[:, None, None, :]
  x = tf.nn.conv2d(x, tf.cast(weight, dtype), 1, "SAME")
  if dcoefs is not None:
    x = x * tf.cast(dcoefs, dtype)[:, None, None, :]
  return x


@MODCONVS.register("grouped")
def _grouped_modconv(x: tf.Tensor, weight: tf.Tensor, styles: tf.Tensor,
                     dcoefs: tf.Tensor | None) -> tf.Tensor:
  """One grouped convolution with a modulated kernel per example.

  The batch is folded into the channels ([1, H, W, B * Cin]) and each
  group of Cin input channels meets its own example's kernel, so the
  convolution sees the batch as one image.
  """
  _, h, w, cin = x.shape
  k, cout = weight.shape[0], weight.shape[-1]
  # [B, k, k, Cin, Cout]
  kernels = weight[None] * styles[:, None, None, :, None]
  if dcoefs is not None:
    kernels *= dcoefs[:, None, None, None, :]
  kernels = tf.reshape(tf.transpose(kernels, [1, 2, 3, 0, 4]),
                       [k, k, cin, -1])  # [k, k, Cin, B * Cout]
  folded = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, h, w, -1])
  y = tf.nn.conv2d(folded, tf.cast(kernels, x.dtype), 1, "SAME")
  y = tf.reshape(y, [h, w, -1, cout])  # [H, W, B, Cout]
  return tf.transpose(y, [2, 0, 1, 3])


@MODCONVS.register("auto")
def _auto_modconv(x: tf.Tensor, weight: tf.Tensor, styles: tf.Tensor,
                  dcoefs: tf.Tensor | None) -> tf.Tensor:
  """"grouped" for one example (serving, inversion), else "scaled".

  Measured on CPUs (`python -m trainer.benchmark.modconv`): one grouped
  convolution is 1.1x to 7x slower than scaling around a shared kernel
  from 4 examples per replica on, and 4% to 14% faster for one. The batch
  is static (TPU-friendly shapes), so the choice is made once per trace.
  """
  choice = _grouped_modconv if x.shape[0] == 1 else _scaled_modconv
  return choice(x, weight, styles, dcoefs)


class ModulatedConv2D(keras.layers.Layer):
  """A convolution modulated by a style from w, for the synthesis network.

  The style s = affine(w) [B, Cin] (bias 1, so styles start at 1) scales
  the kernel's input channels; with demodulation each output channel is
  divided by the norm of its modulated kernel, so unit-variance inputs give
  unit-variance outputs whatever the style. Then noise times a learned
  strength (initially 0), the bias, leaky ReLU and the clamp.

  Styles and demodulation are float32; the convolution and activations run
  in the layer's compute dtype. The layer does not autocast its inputs (w
  stays float32); x is cast to the compute dtype here.

  Args:
    filters: output channels.
    in_channels: input channels.
    w_dim: size of w.
    kernel_size: 3, or 1 for toRGB.
    demodulate: weight demodulation (not for toRGB).
    up: upsample x (bilinear) first.
    resolution: output size; > 0 adds a noise input of that size.
    activation: leaky ReLU after the bias (not for toRGB).
    clamp: clamps the output to +-clamp; None for no clamping.
    modconv: how the modulation is computed (a name in MODCONVS).
  """

  def __init__(self, filters: int, *, in_channels: int, w_dim: int,
               kernel_size: int = 3, demodulate: bool = True,
               up: bool = False, resolution: int = 0,
               activation: bool = True, clamp: float | None = None,
               modconv: str = "auto", **kwargs):
    super().__init__(autocast=False, **kwargs)
    self.filters, self.in_channels, self.w_dim = filters, in_channels, w_dim
    self.kernel_size, self.demodulate, self.up = kernel_size, demodulate, up
    self.resolution, self.activation, self.clamp = (resolution, activation,
                                                    clamp)
    self.modconv = modconv
    self._modconv = MODCONVS.get(modconv)
    self.affine = EqualDense(in_channels, bias_init=1.0, dtype="float32",
                             name="affine")

  def build(self, input_shape=None):
    del input_shape  # the sizes are the constructor's
    self.affine.build((None, self.w_dim))
    k = self.kernel_size
    self.kernel = self.add_weight(
        name="kernel", shape=(k, k, self.in_channels, self.filters),
        initializer=_normal(), autocast=False)
    self.bias = self.add_weight(name="bias", shape=(self.filters,),
                                initializer="zeros", autocast=False)
    if self.resolution:
      self.noise_strength = self.add_weight(
          name="noise_strength", shape=(), initializer="zeros",
          autocast=False)
      # A fixed draw for noise_mode "const" (evaluation, inversion).
      self.noise_const = self.add_weight(
          name="noise_const", shape=(self.resolution, self.resolution),
          initializer=_normal(), trainable=False, autocast=False)

  def call(self, x, w, noise_mode: str = "random",
           noise: tf.Tensor | None = None):
    """x [B, H, W, Cin], w [B, w_dim] float32 -> [B, H', W', filters].

    noise [B, H', W', 1] float32, the draw of noise_mode "random"
    (draw_noise).
    """
    x = tf.cast(x, self.compute_dtype)
    if self.up:
      x = upsample(x)
    styles = self.affine(tf.cast(w, tf.float32))  # [B, Cin]
    weight = self.kernel / math.sqrt(self.in_channels * self.kernel_size**2)
    dcoefs = None
    if self.demodulate:
      # Rescalings that demodulation cancels, so that float16 activations
      # and kernels stay far from overflow (as StyleGAN2-ADA does).
      weight /= tf.reduce_max(tf.abs(weight), axis=[0, 1, 2], keepdims=True)
      styles /= tf.reduce_max(tf.abs(styles), axis=1, keepdims=True)
      # |W * s| per (example, output): sum_i s_i^2 sum_kk W_kkio^2.
      squares = tf.reduce_sum(tf.square(weight), axis=[0, 1])  # [Cin, Cout]
      dcoefs = tf.math.rsqrt(tf.square(styles) @ squares + _EPS)  # [B, Cout]
    x = self._modconv(x, weight, styles, dcoefs)
    x += self._noise(x, noise_mode, noise)
    x += tf.cast(self.bias, x.dtype)
    if self.activation:
      return _lrelu(x, 1.0, self.clamp)
    return _clamp(x, self.clamp)

  def _noise(self, x: tf.Tensor, noise_mode: str,
             noise: tf.Tensor | None) -> tf.Tensor | float:
    """The noise to add to x [B, H, W, C]: [B, H, W, 1], [1, H, W, 1] or 0."""
    if not self.resolution or noise_mode == "none":
      return 0.0
    if noise_mode == "const":
      noise = self.noise_const[None, :, :, None]
    elif noise_mode == "random":
      if noise is None:
        raise ValueError("noise_mode 'random' needs the noise drawn")
    else:
      raise ValueError(f"unknown noise_mode {noise_mode!r}; valid: const, "
                       "none, random")
    return tf.cast(noise * self.noise_strength, x.dtype)

  def flops_per_example(self, input_shape) -> int:
    """Forward FLOPs of one example (trainer/benchmark/flops.py).

    The style's affine layer, the upsampling, the demodulation coefficients'
    product [Cin] x [Cin, Cout] and the convolution at the output size. Both
    modconv modes do the convolution's multiply-adds, the grouped one with
    one group per example; their elementwise modulation (of the kernel per
    example, or of the activations) is not counted: per example, at most
    1 / (H W) of the convolution, under 1% of a network.
    """
    _, height, width, _ = input_shape
    flops = self.affine.flops_per_example((None, self.w_dim))
    if self.up:
      height, width = 2 * height, 2 * width
      flops += fir_flops(height, width, self.in_channels)
    if self.demodulate:
      flops += layers.kernel_flops(1, (self.in_channels, self.filters))
    return flops + layers.kernel_flops(height * width, self.kernel.shape)

  def compute_output_shape(self, input_shape):
    b, h, w, _ = input_shape
    if self.up:
      h, w = 2 * h, 2 * w
    return (b, h, w, self.filters)


class Mapping(keras.layers.Layer):
  """z [B, latent_dim] (and labels [B]) -> ws [B, num_ws, w_dim], float32.

  Call with z, or [z, labels] when num_classes > 0. Keyword options:
  psi (truncation toward w_avg: 1 none, 0 all the way), truncation_cutoff
  (truncate only the first that many ws; None for all), style_mixing (the
  probability; None: the configured one in training, 0 in inference).

  Attributes:
    w_avg: the moving average of w [w_dim]; updated in training mode only,
      averaged over the replicas of a distributed step.
    num_ws: how many ws the synthesis takes.
  """

  def __init__(self, *, latent_dim: int, num_classes: int, w_dim: int,
               num_layers: int, lr_multiplier: float, w_avg_beta: float,
               num_ws: int, style_mixing: float, **kwargs):
    super().__init__(**kwargs)
    self.latent_dim, self.num_classes, self.w_dim = (latent_dim, num_classes,
                                                     w_dim)
    self.num_layers, self.lr_multiplier = num_layers, lr_multiplier
    self.w_avg_beta, self.num_ws = w_avg_beta, num_ws
    self.style_mixing = style_mixing
    self.fcs = layers.tracked(self, [
        EqualDense(w_dim, lr_multiplier=lr_multiplier, activation=True,
                   name=f"fc{i}") for i in range(num_layers)])

  def build(self, input_shape=None):
    del input_shape  # the sizes are the constructor's
    features = self.latent_dim
    if self.num_classes:
      # The label's embedding is normalized before use, so its scale (and
      # equalized learning rate) does not matter.
      self.embeddings = self.add_weight(
          name="embeddings", shape=(self.num_classes, self.w_dim),
          initializer=_normal())
      features += self.w_dim
    for fc in self.fcs:
      fc.build((None, features))
      features = self.w_dim
    # Mean aggregation: each replica's update is averaged, so every copy
    # holds the same average of the global batch.
    self.w_avg = self.add_weight(name="w_avg", shape=(self.w_dim,),
                                 initializer="zeros", trainable=False,
                                 aggregation="mean")

  def call(self, inputs, training=None, psi=1.0, truncation_cutoff=None,
           style_mixing=None):
    z, labels = inputs if self.num_classes else (inputs, None)
    w = self._w(z, labels)  # [B, w_dim]
    if training:
      mean = tf.reduce_mean(w, axis=0)
      self.w_avg.assign(mean + self.w_avg_beta * (self.w_avg - mean))
    ws = tf.tile(w[:, None, :], [1, self.num_ws, 1])  # [B, num_ws, w_dim]
    if style_mixing is None:
      style_mixing = self.style_mixing if training else 0.0
    if style_mixing:
      ws = self._mix(ws, z, labels, style_mixing)
    if psi != 1.0:
      ws = truncate(ws, self.w_avg, psi, truncation_cutoff)
    return ws

  def _w(self, z: tf.Tensor, labels: tf.Tensor | None) -> tf.Tensor:
    """The MLP: [B, latent_dim] (and [B]) -> w [B, w_dim]."""
    x = _normalize(tf.cast(z, tf.float32))
    if labels is not None:
      embedded = tf.gather(self.embeddings, tf.cast(labels, tf.int32))
      x = tf.concat([x, _normalize(embedded)], axis=-1)
    for fc in self.fcs:
      x = fc(x)
    return x

  def _mix(self, ws: tf.Tensor, z: tf.Tensor, labels: tf.Tensor | None,
           probability: float) -> tf.Tensor:
    """Style mixing: some examples take a second z's ws from a cutoff on.

    Each example mixes with the probability, at its own cutoff, uniform in
    1 .. num_ws - 1 (StyleGAN2-ADA draws one cutoff per minibatch; per
    example gives the same expected mixing with less variance). The draws
    are each example's own (example_seeds). The second z does not move
    w_avg.
    """
    seeds = example_seeds(z, _MIXING_SALT)  # [B]
    other = _normal_draw(seeds, [z.shape[-1]], 0)  # [B, latent_dim]
    other_ws = self._w(other, labels)[:, None, :]  # [B, 1, w_dim]
    mix_draw, cutoff_draw = tf.unstack(_uniform(seeds, [2], 1), axis=1)
    mixes = mix_draw < probability  # [B]
    cutoff = 1 + tf.cast(tf.floor(cutoff_draw * (self.num_ws - 1)),
                         tf.int32)  # [B], in 1 .. num_ws - 1
    later = tf.range(self.num_ws)[None, :] >= cutoff[:, None]  # [B, num_ws]
    take = (later & mixes[:, None])[:, :, None]
    return tf.where(take, other_ws, ws)

  def flops_per_example(self, input_shape) -> int:
    """Forward FLOPs of one example in training mode.

    Its fully connected layers, twice with style mixing: the MLP maps every
    example's second z, mixed or not.
    """
    del input_shape  # the sizes are the constructor's
    passes = 2 if self.style_mixing else 1
    return passes * sum(fc.flops_per_example(None) for fc in self.fcs)

  def compute_output_shape(self, input_shape):
    return (None, self.num_ws, self.w_dim)

  def get_config(self) -> dict:
    return {**super().get_config(), "latent_dim": self.latent_dim,
            "num_classes": self.num_classes, "w_dim": self.w_dim,
            "num_layers": self.num_layers,
            "lr_multiplier": self.lr_multiplier,
            "w_avg_beta": self.w_avg_beta, "num_ws": self.num_ws,
            "style_mixing": self.style_mixing}


def truncate(ws: tf.Tensor, w_avg: tf.Tensor, psi: float,
             cutoff: int | None = None) -> tf.Tensor:
  """ws [B, num_ws, w_dim] moved toward w_avg: w_avg + psi (w - w_avg).

  Only the first `cutoff` ws if given (coarse styles), else all.
  """
  truncated = w_avg + psi * (ws - w_avg)
  if cutoff is None:
    return truncated
  chosen = tf.range(ws.shape[1])[None, :, None] < cutoff
  return tf.where(chosen, truncated, ws)


def mix(ws: tf.Tensor, other: tf.Tensor, cutoff: int) -> tf.Tensor:
  """ws [B, num_ws, w_dim] up to layer `cutoff`, `other`'s from there."""
  return tf.concat([ws[:, :cutoff], other[:, cutoff:]], axis=1)


def resolutions(image_size: int) -> list[int]:
  """4, 8, ..., image_size."""
  return [2**i for i in range(2, int(math.log2(image_size)) + 1)]


def width(resolution: int, channel_base: int, channel_max: int) -> int:
  """Channels at a resolution: min(channel_base // r, channel_max)."""
  return min(channel_base // resolution, channel_max)


def num_ws(image_size: int) -> int:
  """How many ws the synthesis takes: 2 log2(image_size) - 2.

  One per modulated convolution (one at 4x4, two above) and one for the
  last toRGB; every other toRGB shares the next convolution's.
  """
  return 2 * len(resolutions(image_size))


def block_policy(resolution: int, image_size: int, num_fp16_res: int,
                 dtype: str) -> str:
  """The dtype policy of a resolution's block (G's and D's alike).

  The top num_fp16_res resolutions, but not 4x4, take the reduced policy;
  the others float32.
  """
  top = 2**(int(math.log2(image_size)) + 1 - num_fp16_res)
  if dtype == "float32" or resolution < max(top, 8):
    return "float32"
  return dtype


class Synthesis(keras.layers.Layer):
  """ws [B, num_ws, w_dim] -> images [B, S, S, C] float32.

  Call options: noise_mode ("random", "const", "none") and noise_seed [B]
  int32, one per example (for "random"; G passes those made from z;
  default: those made from ws), from which the noise of every layer is
  drawn at once (draw_noise). Images are clipped to [-1, 1] in inference
  mode only.
  """

  def __init__(self, *, image_size: int, channels: int, w_dim: int,
               channel_base: int, channel_max: int, num_fp16_res: int,
               conv_clamp: float, modconv: str, mixed_policy: str,
               **kwargs):
    super().__init__(**kwargs)
    self.image_size, self.channels, self.w_dim = image_size, channels, w_dim
    self.channel_base, self.channel_max = channel_base, channel_max
    self.num_fp16_res, self.conv_clamp = num_fp16_res, conv_clamp
    self.modconv, self.mixed_policy = modconv, mixed_policy
    self.num_ws = num_ws(image_size)
    clamp = conv_clamp or None
    self.convs, self.to_rgbs = [], []
    previous = 0
    for res in resolutions(image_size):
      filters = width(res, channel_base, channel_max)
      common = dict(w_dim=w_dim, clamp=clamp, modconv=modconv,
                    dtype=block_policy(res, image_size, num_fp16_res,
                                       mixed_policy))
      if previous:
        self.convs.append(ModulatedConv2D(
            filters, in_channels=previous, up=True, resolution=res,
            name=f"conv{res}_0", **common))
      self.convs.append(ModulatedConv2D(
          filters, in_channels=filters, resolution=res,
          name=f"conv{res}_1", **common))
      self.to_rgbs.append(ModulatedConv2D(
          channels, in_channels=filters, kernel_size=1, demodulate=False,
          activation=False, name=f"torgb{res}", **common))
      previous = filters
    layers.tracked(self, self.convs + self.to_rgbs)

  def build(self, input_shape=None):
    del input_shape  # the sizes are the constructor's
    self.const = self.add_weight(
        name="const", shape=(4, 4, width(4, self.channel_base,
                                         self.channel_max)),
        initializer=_normal())
    for layer in self.convs + self.to_rgbs:
      layer.build()

  def call(self, ws, training=None, noise_mode: str = "random",
           noise_seed: tf.Tensor | None = None):
    ws = tf.cast(ws, tf.float32)
    if noise_mode == "random" and noise_seed is None:
      noise_seed = noise_seeds(ws)
    noises = [None] * len(self.convs)
    if noise_mode == "random":
      noises = draw_noise(noise_seed, [c.resolution for c in self.convs])
    x = tf.tile(self.const[None], [tf.shape(ws)[0], 1, 1, 1])  # [B, 4, 4, C]
    images = None
    convs = iter(zip(self.convs, noises))
    index = 0  # of the next conv's w; a toRGB reads the next block's first
    for res, to_rgb in zip(resolutions(self.image_size), self.to_rgbs):
      for _ in range(1 if res == 4 else 2):
        conv, noise = next(convs)
        x = conv(x, ws[:, index], noise_mode=noise_mode, noise=noise)
        index += 1
      rgb = tf.cast(to_rgb(x, ws[:, index]), tf.float32)  # [B, r, r, C]
      images = rgb if images is None else upsample(images) + rgb
    if not training:
      images = tf.clip_by_value(images, -1.0, 1.0)
    return images

  def flops_per_example(self, input_shape) -> int:
    """Forward FLOPs of one example: its layers' and the images' upsampling."""
    del input_shape  # the sizes are the constructor's
    flops = 0
    for conv in self.convs:  # at its resolution, from half of it if up
      size = conv.resolution // 2 if conv.up else conv.resolution
      flops += conv.flops_per_example((None, size, size, conv.in_channels))
    sizes = resolutions(self.image_size)
    for res, to_rgb in zip(sizes, self.to_rgbs):
      flops += to_rgb.flops_per_example((None, res, res, to_rgb.in_channels))
    # The summed images are upsampled to every resolution above 4x4.
    return flops + sum(fir_flops(res, res, self.channels)
                       for res in sizes[1:])

  def compute_output_shape(self, input_shape):
    return (input_shape[0], self.image_size, self.image_size, self.channels)

  def get_config(self) -> dict:
    return {**super().get_config(), "image_size": self.image_size,
            "channels": self.channels, "w_dim": self.w_dim,
            "channel_base": self.channel_base,
            "channel_max": self.channel_max,
            "num_fp16_res": self.num_fp16_res,
            "conv_clamp": self.conv_clamp, "modconv": self.modconv,
            "mixed_policy": self.mixed_policy}


class NoiseSeed(keras.layers.Layer):
  """z [B, latent_dim] -> the seeds [B] int32 of G's noise inputs.

  From z, the network's input, rather than from ws: the same z then draws
  the same noise whatever the weights (G and G_ema alike), and no rounding
  of a computed value can change a draw.
  """

  def call(self, z):
    return noise_seeds(z)

  def compute_output_spec(self, z):
    return keras.KerasTensor((z.shape[0],), dtype="int32")


def mapping_of(generator: keras.Model) -> Mapping:
  """G's mapping network (and its w_avg)."""
  return generator.get_layer("mapping")


def synthesis_of(generator: keras.Model) -> Synthesis:
  """G's synthesis network."""
  return generator.get_layer("synthesis")


class MinibatchStd(keras.layers.Layer):
  """Appends the standard deviation over groups of examples as features.

  Each group of consecutive examples (StyleGAN2 groups every n-th; the
  same statistics, and groups that stay the same when a global batch is
  split over replicas) gets `features` channels: the per-feature standard
  deviation over the group, averaged over pixels and channels (split into
  `features` parts). It lets D see the variety of a batch. The group is the
  largest divisor of the batch up to `group_size` (StyleGAN2: min(4, batch),
  which must divide it), so any per-replica batch works; a batch of 5 gets
  groups of 1, whose standard deviation is the constant sqrt(1e-8).
  """

  def __init__(self, group_size: int, features: int, **kwargs):
    super().__init__(**kwargs)
    self.group_size, self.features = group_size, features

  def call(self, x):  # [B, H, W, C] -> [B, H, W, C + features]
    _, h, w, c = x.shape
    group = self._group(x)
    f = self.features
    y = tf.reshape(x, [-1, group, h, w, f, c // f])  # [n, G, H, W, F, c]
    y -= tf.reduce_mean(y, axis=1, keepdims=True)
    y = tf.sqrt(tf.reduce_mean(tf.square(y), axis=1) + _EPS)  # [n, H, W, F, c]
    y = tf.reduce_mean(y, axis=[1, 2, 4])  # [n, F]
    y = tf.repeat(y, group, axis=0)  # [B, F]: each group's, for its members
    y = tf.tile(y[:, None, None, :], [1, h, w, 1])
    return tf.concat([x, y], axis=-1)

  def _group(self, x: tf.Tensor) -> int | tf.Tensor:
    """The largest divisor of the batch up to group_size."""
    batch = x.shape[0]
    if batch is not None:  # static: a Python int, static shapes after
      return max(d for d in range(1, self.group_size + 1) if batch % d == 0)
    sizes = tf.range(self.group_size, 0, -1)
    divides = tf.math.floormod(tf.shape(x)[0], sizes) == 0
    return sizes[tf.argmax(tf.cast(divides, tf.int32))]

  def compute_output_shape(self, input_shape):
    return (*input_shape[:-1], input_shape[-1] + self.features)

  def get_config(self) -> dict:
    return {**super().get_config(), "group_size": self.group_size,
            "features": self.features}


class Projection(keras.layers.Layer):
  """[h [B, F], labels [B]] -> embed(labels) . h / sqrt(F): [B, 1]."""

  def __init__(self, num_classes: int, **kwargs):
    super().__init__(**kwargs)
    self.num_classes = num_classes

  def build(self, input_shape):
    self.embeddings = self.add_weight(
        name="embeddings", shape=(self.num_classes, input_shape[0][-1]),
        initializer=_normal())

  def call(self, inputs):
    h, labels = inputs
    embedded = tf.gather(self.embeddings, tf.cast(labels, tf.int32))
    scale = 1.0 / math.sqrt(h.shape[-1])  # equalized learning rate
    return tf.reduce_sum(embedded * h, axis=-1, keepdims=True) * scale

  def flops_per_example(self, input_shape) -> int:
    """Forward FLOPs of one example: the product embed(label) . h."""
    del input_shape  # [[B, F], [B]]: F is the embeddings'
    return layers.kernel_flops(1, self.embeddings.shape[1:])

  def compute_output_shape(self, input_shape):
    return (input_shape[0][0], 1)

  def get_config(self) -> dict:
    return {**super().get_config(), "num_classes": self.num_classes}


def _check(config: ml_collections.ConfigDict) -> None:
  """Raises UserError for the fields this architecture cannot use."""
  size = config.image_size
  if size < 4 or size > 1024 or size & (size - 1):
    raise UserError(f"model.image_size={size} is not valid for stylegan2: it "
                    "must be a power of two from 4 to 1024")
  if width(size, config.channel_base, config.channel_max) < 1:
    raise UserError(f"model.channel_base={config.channel_base} gives no "
                    f"channels at {size}x{size}; it must be >= {size}")
  if not config.mapping_lr_multiplier > 0:
    raise UserError(f"model.mapping_lr_multiplier="
                    f"{config.mapping_lr_multiplier} must be > 0")
  for field in ("num_fp16_res", "conv_clamp"):
    if config[field] < 0:
      raise UserError(f"model.{field}={config[field]} must be >= 0")
  if width(4, config.channel_base, config.channel_max) % config.mbstd_features:
    raise UserError(f"model.mbstd_features={config.mbstd_features} must "
                    "divide the channels at 4x4")
  MODCONVS.get(config.modconv)


def generator(config: ml_collections.ConfigDict, dtype: str) -> keras.Model:
  """G: z [B, latent_dim] (and labels [B]) -> images [B, S, S, C] float32."""
  count = num_ws(config.image_size)
  mapping = Mapping(
      latent_dim=config.latent_dim, num_classes=config.num_classes,
      w_dim=config.w_dim, num_layers=config.mapping_layers,
      lr_multiplier=config.mapping_lr_multiplier,
      w_avg_beta=config.w_avg_beta, num_ws=count,
      style_mixing=config.style_mixing, dtype="float32", name="mapping")
  synthesis = Synthesis(
      image_size=config.image_size, channels=config.channels,
      w_dim=config.w_dim, channel_base=config.channel_base,
      channel_max=config.channel_max, num_fp16_res=config.num_fp16_res,
      conv_clamp=config.conv_clamp, modconv=config.modconv,
      mixed_policy=dtype, dtype="float32", name="synthesis")
  z = keras.Input((config.latent_dim,), name="z")
  inputs = z
  if config.num_classes:
    inputs = [z, keras.Input((), dtype="int32", name="labels")]
  images = synthesis(mapping(inputs),
                     noise_seed=NoiseSeed(name="noise_seed")(z))
  return keras.Model(inputs, images, name="generator")


def discriminator(config: ml_collections.ConfigDict,
                  dtype: str) -> keras.Model:
  """D: images [B, S, S, C] (and labels [B]) -> logits [B, 1] float32."""
  size, clamp = config.image_size, config.conv_clamp or None
  channels = lambda res: width(res, config.channel_base, config.channel_max)
  policy = lambda res: block_policy(res, size, config.num_fp16_res, dtype)
  images = keras.Input((size, size, config.channels), name="images")
  x = EqualConv2D(channels(size), 1, clamp=clamp, dtype=policy(size),
                  name="fromrgb")(images)
  for res in resolutions(size)[:0:-1]:  # size, ..., 8
    conv = dict(clamp=clamp, dtype=policy(res))
    skip = EqualConv2D(channels(res // 2), 1, activation=False, down=True,
                       use_bias=False, gain=math.sqrt(0.5), dtype=policy(res),
                       name=f"skip{res}")(x)
    x = EqualConv2D(channels(res), 3, name=f"conv{res}_0", **conv)(x)
    x = EqualConv2D(channels(res // 2), 3, down=True, gain=math.sqrt(0.5),
                    name=f"conv{res}_1", **conv)(x)
    x = keras.layers.Add(dtype=policy(res), name=f"add{res}")([skip, x])
  # The 4x4 epilogue in float32, like the logits it ends in.
  x = MinibatchStd(config.mbstd_group, config.mbstd_features,
                   dtype="float32", name="mbstd")(x)
  x = EqualConv2D(channels(4), 3, clamp=clamp, dtype="float32",
                  name="conv4")(x)
  x = keras.layers.Flatten(dtype="float32")(x)
  features = EqualDense(channels(4), activation=True, dtype="float32",
                        name="fc")(x)  # [B, C4]
  logits = EqualDense(1, dtype="float32", name="logits")(features)
  if not config.num_classes:
    return keras.Model(images, logits, name="discriminator")
  labels = keras.Input((), dtype="int32", name="labels")
  projection = Projection(config.num_classes, dtype="float32",
                          name="projection")([features, labels])
  logits = keras.layers.Add(dtype="float32")([logits, projection])
  return keras.Model([images, labels], logits, name="discriminator")


def build(config: ml_collections.ConfigDict,
          dtype: str) -> tuple[keras.Model, keras.Model]:
  """Builds (G, D) from the `model` section of the config."""
  _check(config)
  return generator(config, dtype), discriminator(config, dtype)
