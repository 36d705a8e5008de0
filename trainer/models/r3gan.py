"""R3GAN's networks (Huang et al., 2024, "The GAN is dead; long live the GAN!").

A modernized ResNet for G and D alike, with neither normalization layers
nor equalized learning rate. Each stage works at one resolution r with
width(r) = min(channel_base // r, channel_max) channels (stages.py, as in
StyleGAN2; R3GAN's presets are channel_base 24576, channel_max 768: 768
channels up to 32x32, then halving) and `blocks_per_stage` residual blocks.

A residual block is x + conv1x1(act(gconv3x3(act(conv1x1(x))))): an
inverted bottleneck that expands to width * `expansion` channels, a 3x3
convolution in `cardinality(r)` groups and a 1x1 back to the width. The
activation is a learned bias and leaky ReLU (slope 0.2); no convolution has
a bias of its own. Every weight starts N(0, gain^2 / fan_in) and is used as
stored (MSR initialization): gain 1 for linear layers, and in the blocks
sqrt(2 / (1 + 0.2^2)) * L^(-1/4) for the first two convolutions (L the
number of blocks of the network: the fix-up rule L^(-1/(2m-2)) for m = 3
layers) while the last one starts at zero, so that a fresh block is the
identity. `cardinality` is the number of groups at the widest stage; a
narrower stage has proportionally fewer groups, so that every group has the
same channels (R3GAN's presets: 96 groups at 768 channels, 12 at 96).

Between stages a transition changes the width with a 1x1 convolution
(where it changes) and resamples by 2 with the [1, 2, 1] filter of R3GAN,
applied as it applies it (convolved with [1, 1]: bilinear, the [1, 3, 3, 1]
kernel of resampling.py): G convolves, then upsamples; D downsamples, then
convolves.

G: z [B, latent_dim] (with `model.num_classes` > 0, concatenated with a
learned embedding of the label of the same size) -> a linear layer that
modulates a learned basis [4, 4, width(4)] channel by channel -> stages 4,
8, ..., image_size -> a 1x1 convolution to the image channels, with no
tanh. Images in training mode are that raw output; in inference mode they
are clipped to [-1, 1], as stylegan2's are.

D: a 1x1 convolution from the image channels (no activation) -> stages
image_size, ..., 4 -> a depthwise 4x4 'valid' convolution and a linear layer
(D's basis). Unconditional, it gives the logit; conditional, features of
width(4) whose dot product with a learned embedding of the label is the
logit (R3GAN's projection, with no separate unconditional term).

Mixed precision as R3GAN (which uses bfloat16 there): under a "mixed_*"
policy the stages of the top `num_fp16_res` resolutions, never 4x4, compute
in the reduced dtype, the others in float32. G's last convolution, its
images and D's logits are float32.

The grouped convolution is TensorFlow's own (tf.nn.conv2d with a kernel of
fewer input channels than the input). On a CPU its gradient needs oneDNN,
which the trainer turns on by default (trainer/__init__.py); Keras'
Conv2D(groups=...) would compile every grouped convolution with XLA instead.
"""

import math

import keras
import ml_collections
import tensorflow as tf

from trainer.errors import UserError
from trainer.models import resampling
from trainer.models import stages

_SLOPE = 0.2
# The gain of leaky ReLU (slope 0.2) that keeps the second moment: He's.
ACTIVATION_GAIN = math.sqrt(2.0 / (1.0 + _SLOPE**2))
# Linear layers per residual block, in the fix-up exponent.
_LAYERS_PER_BLOCK = 3


def _msr(gain: float, fan_in: int) -> keras.initializers.Initializer:
  """N(0, gain^2 / fan_in), seeded from Keras' global seed; zeros at gain 0."""
  if gain == 0:
    return keras.initializers.Zeros()
  return keras.initializers.RandomNormal(stddev=gain / math.sqrt(fan_in))


def block_gain(num_blocks: int) -> float:
  """The initial gain of a block's first two convolutions, L = num_blocks."""
  return ACTIVATION_GAIN * num_blocks**(-1.0 / (2 * _LAYERS_PER_BLOCK - 2))


class Convolution(keras.layers.Layer):
  """A 'same' convolution without bias, grouped or not, MSR-initialized.

  Args:
    filters: output channels.
    kernel_size: 1 or 3.
    groups: input and output channels split into this many groups, each
      convolved on its own (cardinality).
    gain: the kernel starts N(0, gain^2 / fan_in), fan_in = kernel_size^2 *
      input channels / groups; 0 starts it at zero.
  """

  def __init__(self, filters: int, kernel_size: int = 1, *, groups: int = 1,
               gain: float = 1.0, **kwargs):
    super().__init__(**kwargs)
    self.filters, self.kernel_size = filters, kernel_size
    self.groups, self.gain = groups, gain

  def build(self, input_shape):
    k, per_group = self.kernel_size, input_shape[-1] // self.groups
    self.kernel = self.add_weight(
        name="kernel", shape=(k, k, per_group, self.filters),
        initializer=_msr(self.gain, k * k * per_group))

  def call(self, x):  # [B, H, W, Cin] -> [B, H, W, filters]
    # A kernel of Cin / groups input channels makes tf.nn.conv2d grouped.
    return tf.nn.conv2d(x, tf.cast(self.kernel, x.dtype), 1, "SAME")

  def compute_output_shape(self, input_shape):
    return (*input_shape[:-1], self.filters)

  def get_config(self) -> dict:
    return {**super().get_config(), "filters": self.filters,
            "kernel_size": self.kernel_size, "groups": self.groups,
            "gain": self.gain}


class BiasedActivation(keras.layers.Layer):
  """x + bias, then leaky ReLU (slope 0.2); the bias starts at zero."""

  def build(self, input_shape):
    self.bias = self.add_weight(name="bias", shape=(input_shape[-1],),
                                initializer="zeros")

  def call(self, x):
    return tf.nn.leaky_relu(x + tf.cast(self.bias, x.dtype), _SLOPE)

  def compute_output_shape(self, input_shape):
    return input_shape


class ResidualBlock(keras.layers.Layer):
  """x + expand (1x1), grouped 3x3, project (1x1, starting at zero).

  Args:
    channels: the block's input and output channels.
    cardinality: groups of the 3x3 convolution.
    expansion: the inner width is `channels` times this.
    num_blocks: the blocks of the whole network (L of the fix-up rule).
  """

  def __init__(self, channels: int, *, cardinality: int, expansion: int,
               num_blocks: int, **kwargs):
    super().__init__(**kwargs)
    self.channels, self.cardinality = channels, cardinality
    self.expansion, self.num_blocks = expansion, num_blocks
    inner = channels * expansion
    gain = block_gain(num_blocks)
    common = dict(dtype=self.dtype_policy)
    self.expand = Convolution(inner, 1, gain=gain, name="expand", **common)
    self.act1 = BiasedActivation(name="act1", **common)
    self.grouped = Convolution(inner, 3, groups=cardinality, gain=gain,
                               name="grouped", **common)
    self.act2 = BiasedActivation(name="act2", **common)
    self.project = Convolution(channels, 1, gain=0.0, name="project",
                               **common)

  def build(self, input_shape):
    inner_shape = (*input_shape[:-1], self.channels * self.expansion)
    self.expand.build(input_shape)
    self.act1.build(inner_shape)
    self.grouped.build(inner_shape)
    self.act2.build(inner_shape)
    self.project.build(inner_shape)

  def call(self, x):  # [B, H, W, C] -> [B, H, W, C]
    y = self.act1(self.expand(x))  # [B, H, W, C * expansion]
    y = self.act2(self.grouped(y))
    return x + self.project(y)

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self) -> dict:
    return {**super().get_config(), "channels": self.channels,
            "cardinality": self.cardinality, "expansion": self.expansion,
            "num_blocks": self.num_blocks}


class Resample(keras.layers.Layer):
  """Bilinear resampling by 2: "up" (G) or "down" (D), no weights."""

  def __init__(self, direction: str, **kwargs):
    super().__init__(**kwargs)
    self.direction = direction

  def call(self, x):  # [B, H, W, C] -> [B, 2H, 2W, C] or [B, H/2, W/2, C]
    if self.direction == "up":
      return resampling.upsample(x)
    return resampling.downsample(x)

  def compute_output_shape(self, input_shape):
    b, h, w, c = input_shape
    factor = 2.0 if self.direction == "up" else 0.5
    return (b, int(h * factor), int(w * factor), c)

  def get_config(self) -> dict:
    return {**super().get_config(), "direction": self.direction}


class GenerativeBasis(keras.layers.Layer):
  """z [B, F] -> basis [4, 4, C] * linear(z)[B, 1, 1, C]: [B, 4, 4, C]."""

  def __init__(self, channels: int, **kwargs):
    super().__init__(**kwargs)
    self.channels = channels

  def build(self, input_shape):
    self.basis = self.add_weight(
        name="basis", shape=(4, 4, self.channels),
        initializer=keras.initializers.RandomNormal(stddev=1.0))
    self.kernel = self.add_weight(
        name="kernel", shape=(input_shape[-1], self.channels),
        initializer=_msr(1.0, input_shape[-1]))

  def call(self, z):
    scales = tf.matmul(z, tf.cast(self.kernel, z.dtype))  # [B, C]
    return tf.cast(self.basis, z.dtype)[None] * scales[:, None, None, :]

  def compute_output_shape(self, input_shape):
    return (input_shape[0], 4, 4, self.channels)

  def get_config(self) -> dict:
    return {**super().get_config(), "channels": self.channels}


class Aggregation(keras.layers.Layer):
  """Features [B, S, S, F] -> images [B, S, S, C] by a 1x1 convolution.

  Clipped to [-1, 1] in inference mode only (the raw output in training).
  """

  def __init__(self, channels: int, **kwargs):
    super().__init__(**kwargs)
    self.channels = channels
    self.to_image = Convolution(channels, 1, dtype=self.dtype_policy,
                                name="to_image")

  def build(self, input_shape):
    self.to_image.build(input_shape)

  def call(self, x, training=None):
    images = self.to_image(x)
    if not training:
      images = tf.clip_by_value(images, -1.0, 1.0)
    return images

  def compute_output_shape(self, input_shape):
    return (*input_shape[:-1], self.channels)

  def get_config(self) -> dict:
    return {**super().get_config(), "channels": self.channels}


class Projection(keras.layers.Layer):
  """[features [B, F], labels [B]] -> embed(labels) . features: [B, 1].

  The embedding starts N(0, 1 / (F * num_classes)): R3GAN's MSR-initialized
  linear layer of the one-hot label with gain 1 / sqrt(F).
  """

  def __init__(self, num_classes: int, **kwargs):
    super().__init__(**kwargs)
    self.num_classes = num_classes

  def build(self, input_shape):
    features = input_shape[0][-1]
    self.embeddings = self.add_weight(
        name="embeddings", shape=(self.num_classes, features),
        initializer=_msr(1.0 / math.sqrt(features), self.num_classes))

  def call(self, inputs):
    features, labels = inputs
    embedded = tf.gather(self.embeddings, tf.cast(labels, tf.int32))
    return tf.reduce_sum(embedded * features, axis=-1, keepdims=True)

  def compute_output_shape(self, input_shape):
    return (input_shape[0][0], 1)

  def get_config(self) -> dict:
    return {**super().get_config(), "num_classes": self.num_classes}


def resolutions(image_size: int) -> list[int]:
  """The stages' resolutions: 4, 8, ..., image_size."""
  return stages.resolutions(image_size)


def width(resolution: int, config: ml_collections.ConfigDict) -> int:
  """A stage's channels: min(channel_base // r, channel_max)."""
  return stages.width(resolution, config.channel_base, config.channel_max)


def cardinality(resolution: int, config: ml_collections.ConfigDict) -> int:
  """A stage's groups: `cardinality` scaled by its width over the widest."""
  return config.cardinality * width(resolution, config) // width(4, config)


def num_blocks(config: ml_collections.ConfigDict) -> int:
  """The residual blocks of G (and of D): L of the fix-up rule."""
  return config.blocks_per_stage * len(resolutions(config.image_size))


def _valid_cardinalities(config: ml_collections.ConfigDict) -> list[int]:
  """The cardinalities that give whole groups of whole channels everywhere."""
  widths = [width(r, config) for r in resolutions(config.image_size)]
  valid = []
  for c in range(1, widths[0] * config.expansion + 1):
    groups = [w * c / widths[0] for w in widths]
    if all(g == int(g) and g >= 1 and w * config.expansion % g == 0
           for g, w in zip(groups, widths)):
      valid.append(c)
  return valid


def _check(config: ml_collections.ConfigDict) -> None:
  """Raises UserError for the fields this architecture cannot use."""
  size = config.image_size
  if size < 8 or size > 1024 or size & (size - 1):
    raise UserError(f"model.image_size={size} is not valid for r3gan: it "
                    "must be a power of two from 8 to 1024 (8, 16, 32, 64, "
                    "128, 256, 512, 1024)")
  if width(size, config) < 1:
    raise UserError(f"model.channel_base={config.channel_base} gives no "
                    f"channels at {size}x{size}; it must be >= {size}")
  if config.num_fp16_res < 0:
    raise UserError(f"model.num_fp16_res={config.num_fp16_res} must be >= 0")
  valid = _valid_cardinalities(config)
  if config.cardinality not in valid:
    widths = ", ".join(f"{width(r, config)} at {r}x{r}"
                       for r in resolutions(size))
    raise UserError(
        f"model.cardinality={config.cardinality} does not split the widths "
        f"({widths}; times model.expansion={config.expansion} inside a "
        "block) into whole groups at every stage; valid cardinalities for "
        f"these widths: {', '.join(map(str, valid))}")


def _policy(resolution: int, config: ml_collections.ConfigDict,
            dtype: str) -> str:
  return stages.block_policy(resolution, config.image_size,
                             config.num_fp16_res, dtype)


def _blocks(x: keras.KerasTensor, resolution: int,
            config: ml_collections.ConfigDict, policy: str,
            prefix: str) -> keras.KerasTensor:
  """A stage's residual blocks."""
  for i in range(config.blocks_per_stage):
    x = ResidualBlock(width(resolution, config),
                      cardinality=cardinality(resolution, config),
                      expansion=config.expansion,
                      num_blocks=num_blocks(config), dtype=policy,
                      name=f"{prefix}{resolution}_block{i}")(x)
  return x


def generator(config: ml_collections.ConfigDict, dtype: str) -> keras.Model:
  """G: z [B, latent_dim] (and labels [B]) -> images [B, S, S, C] float32."""
  z = keras.Input((config.latent_dim,), name="z")
  inputs, x = z, z
  if config.num_classes:
    labels = keras.Input((), dtype="int32", name="labels")
    inputs = [z, labels]
    # R3GAN's MSR-initialized linear layer of the one-hot label.
    embedded = keras.layers.Embedding(
        config.num_classes, config.latent_dim,
        embeddings_initializer=_msr(1.0, config.num_classes),
        dtype="float32", name="label_embedding")(labels)
    x = keras.layers.Concatenate(dtype="float32")([z, embedded])
  previous = None
  for res in resolutions(config.image_size):
    policy = _policy(res, config, dtype)
    channels = width(res, config)
    if previous is None:
      x = GenerativeBasis(channels, dtype=policy, name="basis")(x)
    else:
      if channels != previous:
        x = Convolution(channels, 1, dtype=policy, name=f"g{res}_width")(x)
      x = Resample("up", dtype=policy, name=f"g{res}_up")(x)
    x = _blocks(x, res, config, policy, "g")
    previous = channels
  images = Aggregation(config.channels, dtype="float32",
                       name="aggregation")(x)
  return keras.Model(inputs, images, name="generator")


def discriminator(config: ml_collections.ConfigDict,
                  dtype: str) -> keras.Model:
  """D: images [B, S, S, C] (and labels [B]) -> logits [B, 1] float32."""
  size = config.image_size
  images = keras.Input((size, size, config.channels), name="images")
  x = Convolution(width(size, config), 1, dtype=_policy(size, config, dtype),
                  name="extraction")(images)
  for res in resolutions(size)[:0:-1]:  # size, ..., 8
    policy = _policy(res, config, dtype)
    x = _blocks(x, res, config, policy, "d")
    x = Resample("down", dtype=policy, name=f"d{res}_down")(x)
    if width(res // 2, config) != width(res, config):
      x = Convolution(width(res // 2, config), 1, dtype=policy,
                      name=f"d{res}_width")(x)
  # The 4x4 stage and the basis in float32, like the logits they end in.
  channels = width(4, config)
  x = _blocks(x, 4, config, "float32", "d")
  x = keras.layers.DepthwiseConv2D(
      4, padding="valid", use_bias=False,
      depthwise_initializer=_msr(1.0, 16), dtype="float32",
      name="basis_depthwise")(x)  # [B, 1, 1, C4]
  x = keras.layers.Flatten(dtype="float32")(x)
  outputs = channels if config.num_classes else 1
  x = keras.layers.Dense(outputs, use_bias=False,
                         kernel_initializer=_msr(1.0, channels),
                         dtype="float32", name="basis_linear")(x)
  if not config.num_classes:
    return keras.Model(images, x, name="discriminator")
  labels = keras.Input((), dtype="int32", name="labels")
  logits = Projection(config.num_classes, dtype="float32",
                      name="projection")([x, labels])
  return keras.Model([images, labels], logits, name="discriminator")


def build(config: ml_collections.ConfigDict,
          dtype: str) -> tuple[keras.Model, keras.Model]:
  """Builds (G, D) from the `model` section of the config."""
  _check(config)
  return generator(config, dtype), discriminator(config, dtype)
