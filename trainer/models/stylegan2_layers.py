"""StyleGAN2's layers, for the networks of trainer/models/stylegan2.py.

Equalized learning rate: every weight is stored N(0, 1) (EqualDense's
N(0, 1 / lr_multiplier)) and scaled at run time by 1/sqrt(fan-in), in
EqualDense, EqualConv2D (D's convolutions, with an optional low-pass
downsampling) and ModulatedConv2D (the synthesis network's convolutions,
modulated by a style from w, with weight demodulation and noise inputs).
The modulated convolution is computed one of the ways in MODCONVS
(`model.modconv`), all the same function. MinibatchStd and Projection are
D's; NoiseSeed makes G's noise seeds from z (example_draws.py).

Activations are leaky ReLU (slope 0.2) times sqrt(2); a `clamp` clamps a
convolution's output (StyleGAN2-ADA's conv_clamp).
"""

import math

import keras
import tensorflow as tf

from trainer.models import example_draws
from trainer.models import resampling
from trainer.registry import Registry

_SLOPE = 0.2
_GAIN = math.sqrt(2.0)  # keeps leaky ReLU's output at unit second moment
_EPS = 1e-8

MODCONVS: Registry = Registry("modulated convolution", "model.modconv")


def _lrelu(x: tf.Tensor, gain: float, clamp: float | None) -> tf.Tensor:
  """Leaky ReLU times sqrt(2) * gain, clamped to +-clamp * gain."""
  x = tf.nn.leaky_relu(x, _SLOPE) * tf.cast(_GAIN * gain, x.dtype)
  return _clamp(x, clamp, gain)


def _clamp(x: tf.Tensor, clamp: float | None, gain: float = 1.0) -> tf.Tensor:
  if clamp is None:
    return x
  return tf.clip_by_value(x, -clamp * gain, clamp * gain)


def normalize(x: tf.Tensor) -> tf.Tensor:
  """Scales each row of x [B, F] to unit second moment."""
  return x * tf.math.rsqrt(tf.reduce_mean(tf.square(x), axis=-1,
                                          keepdims=True) + _EPS)


def normal_initializer(stddev: float = 1.0) -> keras.initializers.Initializer:
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
        initializer=normal_initializer(1.0 / self.lr_multiplier),
        autocast=False)
    self.bias = self.add_weight(
        name="bias", shape=(self.units,),
        initializer=keras.initializers.Constant(
            self.bias_init / self.lr_multiplier), autocast=False)

  @property
  def weight(self) -> tf.Tensor:
    """The kernel as the layer applies it: [F, units] float32."""
    return self.kernel * self._gain

  def call(self, x):  # x [B, F] -> [B, units]
    kernel = tf.cast(self.weight, x.dtype)
    x = tf.matmul(x, kernel) + tf.cast(self.bias * self.lr_multiplier,
                                       x.dtype)
    return _lrelu(x, 1.0, None) if self.activation else x

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
    down: halve the resolution: for a 1x1, the low-pass filter with stride
      2 first; for a 3x3, the filter at full size, then the convolution
      with stride 2 (resampling.down_conv), as StyleGAN2.
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
        initializer=normal_initializer(), autocast=False)
    if self.use_bias:
      self.bias = self.add_weight(name="bias", shape=(self.filters,),
                                  initializer="zeros", autocast=False)

  def call(self, x):  # x [B, H, W, Cin] -> [B, H', W', filters]
    kernel = tf.cast(self.kernel * self._weight_gain, x.dtype)
    if self.down and self.kernel_size > 1:
      x = resampling.down_conv(x, kernel)
    else:
      if self.down:
        x = resampling.downsample(x)
      x = tf.nn.conv2d(x, kernel, 1, "SAME")
    if self.use_bias:
      x += tf.cast(self.bias, x.dtype)
    if self.activation:
      return _lrelu(x, self.gain, self.clamp)
    return _clamp(x * tf.cast(self.gain, x.dtype), self.clamp, self.gain)

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
# coefficients [B, Cout] float32 or None, up) -> [B, H, W, Cout] in x's
# dtype, or [B, 2H, 2W, Cout] with up (resampling.up_conv).


def _conv(x: tf.Tensor, kernel: tf.Tensor, up: bool) -> tf.Tensor:
  return resampling.up_conv(x, kernel) if up else tf.nn.conv2d(
      x, kernel, 1, "SAME")


@MODCONVS.register("scaled")
def _scaled_modconv(x: tf.Tensor, weight: tf.Tensor, styles: tf.Tensor,
                    dcoefs: tf.Tensor | None, up: bool) -> tf.Tensor:
  """Scales the activations instead of the weights: one shared kernel.

  conv(x * s, W) * d = conv(x, W * s * d) because the style s scales input
  channels and d output channels. Cheaper than per-example kernels when the
  batch is large, and its gradient is an ordinary convolution's.
  """
  dtype = x.dtype
  x = x * tf.cast(styles, dtype)[:, None, None, :]
  x = _conv(x, tf.cast(weight, dtype), up)
  if dcoefs is not None:
    x = x * tf.cast(dcoefs, dtype)[:, None, None, :]
  return x


@MODCONVS.register("grouped")
def _grouped_modconv(x: tf.Tensor, weight: tf.Tensor, styles: tf.Tensor,
                     dcoefs: tf.Tensor | None, up: bool) -> tf.Tensor:
  """One grouped convolution with a modulated kernel per example.

  The batch is folded into the channels ([1, H, W, B * Cin]) and each
  group of Cin input channels meets its own example's kernel, so the
  convolution sees the batch as one image. TensorFlow's transposed
  convolution has no groups: with `up`, a batch of one convolves with its
  kernel and a larger batch goes the "scaled" way.
  """
  if up:
    if x.shape[0] != 1:
      return _scaled_modconv(x, weight, styles, dcoefs, up)
    kernel = weight * styles[0, None, None, :, None]
    if dcoefs is not None:
      kernel *= dcoefs[0]
    return _conv(x, tf.cast(kernel, x.dtype), up)
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
                  dcoefs: tf.Tensor | None, up: bool) -> tf.Tensor:
  """"grouped" for one example (serving, inversion), else "scaled".

  Measured on CPUs (`python -m trainer.bench.modconv`): one grouped
  convolution is 1.1x to 7x slower than scaling around a shared kernel
  from 4 examples per replica on, and 4% to 14% faster for one. The batch
  is static (TPU-friendly shapes), so the choice is made once per trace.
  """
  choice = _grouped_modconv if x.shape[0] == 1 else _scaled_modconv
  return choice(x, weight, styles, dcoefs, up)


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
    up: double the size: a transposed convolution of stride 2, then the
      [1, 3, 3, 1] filter (resampling.up_conv), as StyleGAN2.
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
        initializer=normal_initializer(), autocast=False)
    self.bias = self.add_weight(name="bias", shape=(self.filters,),
                                initializer="zeros", autocast=False)
    if self.resolution:
      self.noise_strength = self.add_weight(
          name="noise_strength", shape=(), initializer="zeros",
          autocast=False)
      # A fixed draw for noise_mode "const" (evaluation, inversion).
      self.noise_const = self.add_weight(
          name="noise_const", shape=(self.resolution, self.resolution),
          initializer=normal_initializer(), trainable=False, autocast=False)

  def call(self, x, w, noise_mode: str = "random",
           noise: tf.Tensor | None = None):
    """x [B, H, W, Cin], w [B, w_dim] float32 -> [B, H', W', filters].

    noise [B, H', W', 1] float32, the draw of noise_mode "random"
    (example_draws.draw_noise).
    """
    x = tf.cast(x, self.compute_dtype)
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
    x = self._modconv(x, weight, styles, dcoefs, self.up)
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

  def compute_output_shape(self, input_shape):
    b, h, w, _ = input_shape
    if self.up:
      h, w = 2 * h, 2 * w
    return (b, h, w, self.filters)


class MinibatchStd(keras.layers.Layer):
  """Appends the standard deviation over groups of examples as features.

  Each group of examples gets `features` channels: the per-feature
  standard deviation over the group, averaged over pixels and channels
  (split into `features` parts). Groups are of consecutive examples, which
  stay the same when a global batch is split over replicas, or `strided`
  as StyleGAN2's (example i of n groups joins group i mod n: the same
  function as the reference's, whose groups change with the per-device
  batch). It lets D see the variety of a batch. The group is the
  largest divisor of the batch up to `group_size` (StyleGAN2: min(4, batch),
  which must divide it), so any per-replica batch works; a batch of 5 gets
  groups of 1, whose standard deviation is the constant sqrt(1e-8).
  """

  def __init__(self, group_size: int, features: int, strided: bool = False,
               **kwargs):
    super().__init__(**kwargs)
    self.group_size, self.features = group_size, features
    self.strided = strided

  def call(self, x):  # [B, H, W, C] -> [B, H, W, C + features]
    _, h, w, c = x.shape
    group = self._group(x)
    f = self.features
    # Group axis 1 of [n, G, ...] (consecutive) or 0 of [G, n, ...]
    # (strided: example i in group i mod n).
    axis = 0 if self.strided else 1
    shape = [group, -1] if self.strided else [-1, group]
    y = tf.reshape(x, [*shape, h, w, f, c // f])
    y -= tf.reduce_mean(y, axis=axis, keepdims=True)
    y = tf.sqrt(tf.reduce_mean(tf.square(y), axis=axis) + _EPS)  # [n, H, W, F, c]
    y = tf.reduce_mean(y, axis=[1, 2, 4])  # [n, F]
    # [B, F]: each group's, for its members.
    y = (tf.tile(y, [group, 1]) if self.strided
         else tf.repeat(y, group, axis=0))
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
            "features": self.features, "strided": self.strided}


class Projection(keras.layers.Layer):
  """[out [B, F], cmap [B, F]] -> out . cmap / sqrt(F): [B, 1]."""

  def call(self, inputs):
    out, cmap = inputs
    scale = 1.0 / math.sqrt(out.shape[-1])
    return tf.reduce_sum(out * cmap, axis=-1, keepdims=True) * scale

  def compute_output_shape(self, input_shape):
    return (input_shape[0][0], 1)


class NoiseSeed(keras.layers.Layer):
  """z [B, latent_dim] -> the seeds [B] int32 of G's noise inputs.

  From z, the network's input, rather than from ws: the same z then draws
  the same noise whatever the weights (G and G_ema alike), and no rounding
  of a computed value can change a draw.
  """

  def call(self, z):
    return example_draws.noise_seeds(z)

  def compute_output_spec(self, z):
    return keras.KerasTensor((z.shape[0],), dtype="int32")
