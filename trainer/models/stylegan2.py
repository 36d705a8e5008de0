"""StyleGAN2 (Karras et al., 2020) with StyleGAN2-ADA's config-f settings.

The networks; their layers are in trainer/models/stylegan2_layers.py, the
resampling filter in resampling.py, the per-example random draws in
example_draws.py and the resolutions, widths and dtype policies (shared
with R3GAN) in stages.py.

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
A resolution's first convolution doubles the size as StyleGAN2's does: a
transposed convolution of stride 2, then the [1, 3, 3, 1] filter
(resampling.up_conv); the summed images are upsampled with the filter.
Images in training mode are the raw sum, as StyleGAN2 trains them; in
inference mode they are clipped to [-1, 1], which is where its tools clamp
them.

D is StyleGAN2's residual discriminator (`d_architecture` "resnet"), or
its plain one ("orig", StyleGAN2-ADA's CIFAR-10 preset): fromRGB at the
full resolution, per resolution two 3x3 convolutions, the second filtering
with [1, 3, 3, 1] and striding by 2 (resampling.down_conv); "resnet" adds
a downsampled 1x1 skip and scales the sum by 1/sqrt(2). At 4x4 the
minibatch standard deviation, a 3x3 convolution and two fully connected
layers. A class-conditional D, as StyleGAN2-ADA's, ends in C4 outputs
projected on a mapping of the label (embedding, normalization and
`d_mapping_layers` layers): out . cmap / sqrt(C4). G's label embedding is
likewise a fully connected layer of the one-hot label. Every weight is
stored N(0, 1) (the mapping's N(0, 1 / multiplier)) and scaled at run time
by 1/sqrt(fan-in) (equalized learning rate). With these, a network of
StyleGAN2-ADA's converted by trainer.convert computes its function
(tests/models/test_reference.py).

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
import tensorflow as tf

from trainer.errors import UserError
from trainer.models import example_draws
from trainer.models import layers
from trainer.models import resampling
from trainer.models import stages
from trainer.models import stylegan2_layers


def _mapping_layers(owner: keras.layers.Layer, count: int, width: int,
                    lr_multiplier: float) -> list[keras.layers.Layer]:
  """A mapping network's fully connected layers (leaky ReLU), tracked by
  `owner`."""
  return layers.tracked(owner, [
      stylegan2_layers.EqualDense(width, lr_multiplier=lr_multiplier,
                                  activation=True, name=f"fc{i}")
      for i in range(count)])


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
    self.fcs = _mapping_layers(self, num_layers, w_dim, lr_multiplier)

  def build(self, input_shape=None):
    del input_shape  # the sizes are the constructor's
    features = self.latent_dim
    if self.num_classes:
      # StyleGAN2-ADA's: a fully connected layer (with bias) of the one-hot
      # label, normalized before use.
      self.embed = stylegan2_layers.EqualDense(self.w_dim, name="embed")
      self.embed.build((None, self.num_classes))
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
    x = stylegan2_layers.normalize(tf.cast(z, tf.float32))
    if labels is not None:
      embedded = self.embed(tf.one_hot(labels, self.num_classes))
      x = tf.concat([x, stylegan2_layers.normalize(embedded)], axis=-1)
    for fc in self.fcs:
      x = fc(x)
    return x

  def _mix(self, ws: tf.Tensor, z: tf.Tensor, labels: tf.Tensor | None,
           probability: float) -> tf.Tensor:
    """Style mixing: some examples take a second z's ws from a cutoff on.

    Each example mixes with the probability, at its own cutoff, uniform in
    1 .. num_ws - 1 (StyleGAN2-ADA draws one cutoff per minibatch; per
    example gives the same expected mixing with less variance). The draws
    are each example's own (example_draws.mixing_seeds). The second z does
    not move w_avg.
    """
    seeds = example_draws.mixing_seeds(z)  # [B]
    other = example_draws.normal(seeds, [z.shape[-1]], 0)  # [B, latent_dim]
    other_ws = self._w(other, labels)[:, None, :]  # [B, 1, w_dim]
    mix_draw, cutoff_draw = tf.unstack(example_draws.uniform(seeds, [2], 1),
                                       axis=1)
    mixes = mix_draw < probability  # [B]
    cutoff = 1 + tf.cast(tf.floor(cutoff_draw * (self.num_ws - 1)),
                         tf.int32)  # [B], in 1 .. num_ws - 1
    later = tf.range(self.num_ws)[None, :] >= cutoff[:, None]  # [B, num_ws]
    take = (later & mixes[:, None])[:, :, None]
    return tf.where(take, other_ws, ws)

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


def mix(ws: tf.Tensor, other: tf.Tensor, layers: range) -> tf.Tensor:
  """ws [B, num_ws, w_dim] with `other`'s ws[layers] in place of its own
  (range(cutoff, num_ws): StyleGAN's mixing from a cutoff on)."""
  return tf.concat([ws[:, :layers.start], other[:, layers.start:layers.stop],
                    ws[:, layers.stop:]], axis=1)


def num_ws(image_size: int) -> int:
  """How many ws the synthesis takes: 2 log2(image_size) - 2.

  One per modulated convolution (one at 4x4, two above) and one for the
  last toRGB; every other toRGB shares the next convolution's.
  """
  return 2 * len(stages.resolutions(image_size))


class Synthesis(keras.layers.Layer):
  """ws [B, num_ws, w_dim] -> images [B, S, S, C] float32.

  Call options: noise_mode ("random", "const", "none") and noise_seed [B]
  int32, one per example (for "random"; G passes those made from z;
  default: those made from ws), from which the noise of every layer is
  drawn at once (example_draws.draw_noise). Images are clipped to [-1, 1]
  in inference mode only.
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
    for res in stages.resolutions(image_size):
      filters = stages.width(res, channel_base, channel_max)
      common = dict(w_dim=w_dim, clamp=clamp, modconv=modconv,
                    dtype=stages.block_policy(res, image_size, num_fp16_res,
                                              mixed_policy))
      if previous:
        self.convs.append(stylegan2_layers.ModulatedConv2D(
            filters, in_channels=previous, up=True, resolution=res,
            name=f"conv{res}_0", **common))
      self.convs.append(stylegan2_layers.ModulatedConv2D(
          filters, in_channels=filters, resolution=res,
          name=f"conv{res}_1", **common))
      self.to_rgbs.append(stylegan2_layers.ModulatedConv2D(
          channels, in_channels=filters, kernel_size=1, demodulate=False,
          activation=False, name=f"torgb{res}", **common))
      previous = filters
    layers.tracked(self, self.convs + self.to_rgbs)

  def build(self, input_shape=None):
    del input_shape  # the sizes are the constructor's
    self.const = self.add_weight(
        name="const", shape=(4, 4, stages.width(4, self.channel_base,
                                                self.channel_max)),
        initializer=stylegan2_layers.normal_initializer())
    for layer in self.convs + self.to_rgbs:
      layer.build()

  def call(self, ws, training=None, noise_mode: str = "random",
           noise_seed: tf.Tensor | None = None):
    ws = tf.cast(ws, tf.float32)
    if noise_mode == "random" and noise_seed is None:
      noise_seed = example_draws.noise_seeds(ws)
    noises = [None] * len(self.convs)
    if noise_mode == "random":
      noises = example_draws.draw_noise(noise_seed,
                                        [c.resolution for c in self.convs])
    x = tf.tile(self.const[None], [tf.shape(ws)[0], 1, 1, 1])  # [B, 4, 4, C]
    images = None
    convs = iter(zip(self.convs, noises))
    index = 0  # of the next conv's w; a toRGB reads the next block's first
    for res, to_rgb in zip(stages.resolutions(self.image_size),
                            self.to_rgbs):
      for _ in range(1 if res == 4 else 2):
        conv, noise = next(convs)
        x = conv(x, ws[:, index], noise_mode=noise_mode, noise=noise)
        index += 1
      rgb = tf.cast(to_rgb(x, ws[:, index]), tf.float32)  # [B, r, r, C]
      images = rgb if images is None else resampling.upsample(images) + rgb
    if not training:
      images = tf.clip_by_value(images, -1.0, 1.0)
    return images

  def style_layers(self) -> list[tuple[int,
                                       stylegan2_layers.ModulatedConv2D]]:
    """Every modulated layer with the index of the w it reads, in order.

    Convolution i reads ws[i]; the toRGB of the r-th resolution reads the w
    of the next block's first convolution, ws[2r + 1] (as `call` does).
    """
    reads = list(enumerate(self.convs))
    reads += [(2 * r + 1, rgb) for r, rgb in enumerate(self.to_rgbs)]
    return sorted(reads, key=lambda read: read[0])

  def style_weights(self, layers: range) -> tf.Tensor:
    """The affine maps from w to the styles of the layers reading ws[layers]
    (style_layers), stacked: [sum of their input channels, w_dim]."""
    return tf.concat([tf.transpose(layer.affine.weight)
                      for index, layer in self.style_layers()
                      if index in layers], axis=0)

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


def mapping_of(generator: keras.Model) -> Mapping:
  """G's mapping network (and its w_avg)."""
  return generator.get_layer("mapping")


def synthesis_of(generator: keras.Model) -> Synthesis:
  """G's synthesis network."""
  return generator.get_layer("synthesis")


def _check(config: ml_collections.ConfigDict) -> None:
  """Raises UserError for the fields this architecture cannot use."""
  size = config.image_size
  if size < 4 or size > 1024 or size & (size - 1):
    raise UserError(f"model.image_size={size} is not valid for stylegan2: it "
                    "must be a power of two from 4 to 1024")
  if stages.width(size, config.channel_base, config.channel_max) < 1:
    raise UserError(f"model.channel_base={config.channel_base} gives no "
                    f"channels at {size}x{size}; it must be >= {size}")
  if not config.mapping_lr_multiplier > 0:
    raise UserError(f"model.mapping_lr_multiplier="
                    f"{config.mapping_lr_multiplier} must be > 0")
  for field in ("num_fp16_res", "conv_clamp"):
    if config[field] < 0:
      raise UserError(f"model.{field}={config[field]} must be >= 0")
  for field, valid in (("d_architecture", ("resnet", "orig")),
                       ("mbstd_groups", ("consecutive", "strided"))):
    if config[field] not in valid:
      raise UserError(f"model.{field}={config[field]!r} is not valid for "
                      f"stylegan2; valid: {', '.join(valid)}")
  if (stages.width(4, config.channel_base, config.channel_max)
      % config.mbstd_features):
    raise UserError(f"model.mbstd_features={config.mbstd_features} must "
                    "divide the channels at 4x4")
  stylegan2_layers.MODCONVS.get(config.modconv)


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
  noise_seed = stylegan2_layers.NoiseSeed(name="noise_seed")(z)
  images = synthesis(mapping(inputs), noise_seed=noise_seed)
  return keras.Model(inputs, images, name="generator")


def discriminator(config: ml_collections.ConfigDict,
                  dtype: str) -> keras.Model:
  """D: images [B, S, S, C] (and labels [B]) -> logits [B, 1] float32."""
  size, clamp = config.image_size, config.conv_clamp or None
  channels = lambda res: stages.width(res, config.channel_base,
                                      config.channel_max)
  policy = lambda res: stages.block_policy(res, size, config.num_fp16_res,
                                           dtype)
  conv2d = stylegan2_layers.EqualConv2D
  resnet = config.d_architecture == "resnet"
  gain = math.sqrt(0.5) if resnet else 1.0  # two branches summed
  images = keras.Input((size, size, config.channels), name="images")
  x = conv2d(channels(size), 1, clamp=clamp, dtype=policy(size),
             name="fromrgb")(images)
  for res in stages.resolutions(size)[:0:-1]:  # size, ..., 8
    conv = dict(clamp=clamp, dtype=policy(res))
    if resnet:
      skip = conv2d(channels(res // 2), 1, activation=False, down=True,
                    use_bias=False, gain=gain, dtype=policy(res),
                    name=f"skip{res}")(x)
    x = conv2d(channels(res), 3, name=f"conv{res}_0", **conv)(x)
    x = conv2d(channels(res // 2), 3, down=True, gain=gain,
               name=f"conv{res}_1", **conv)(x)
    if resnet:
      x = keras.layers.Add(dtype=policy(res), name=f"add{res}")([skip, x])
  # The 4x4 epilogue in float32, like the logits it ends in.
  x = stylegan2_layers.MinibatchStd(
      config.mbstd_group, config.mbstd_features,
      strided=config.mbstd_groups == "strided", dtype="float32",
      name="mbstd")(x)
  x = conv2d(channels(4), 3, clamp=clamp, dtype="float32", name="conv4")(x)
  x = keras.layers.Flatten(dtype="float32")(x)
  features = stylegan2_layers.EqualDense(
      channels(4), activation=True, dtype="float32", name="fc")(x)  # [B, C4]
  if not config.num_classes:
    logits = stylegan2_layers.EqualDense(1, dtype="float32",
                                         name="logits")(features)
    return keras.Model(images, logits, name="discriminator")
  # StyleGAN2-ADA's conditioning: C4 outputs against a mapping of the label.
  out = stylegan2_layers.EqualDense(channels(4), dtype="float32",
                                    name="logits")(features)  # [B, C4]
  labels = keras.Input((), dtype="int32", name="labels")
  cmap = LabelMapping(num_classes=config.num_classes, dim=channels(4),
                      num_layers=config.d_mapping_layers,
                      lr_multiplier=config.mapping_lr_multiplier,
                      dtype="float32", name="label_mapping")(labels)
  logits = stylegan2_layers.Projection(dtype="float32",
                                       name="projection")([out, cmap])
  return keras.Model([images, labels], logits, name="discriminator")


class LabelMapping(keras.layers.Layer):
  """labels [B] -> cmap [B, dim]: D's mapping of its condition.

  As G's mapping maps z, without z: the one-hot label through a fully
  connected layer (with bias), normalized, then `num_layers` fully
  connected layers with the mapping's learning-rate multiplier.
  """

  def __init__(self, *, num_classes: int, dim: int, num_layers: int,
               lr_multiplier: float, **kwargs):
    super().__init__(**kwargs)
    self.num_classes, self.dim = num_classes, dim
    self.num_layers, self.lr_multiplier = num_layers, lr_multiplier
    self.embed = stylegan2_layers.EqualDense(dim, name="embed")
    self.fcs = _mapping_layers(self, num_layers, dim, lr_multiplier)

  def build(self, input_shape=None):
    del input_shape  # the sizes are the constructor's
    self.embed.build((None, self.num_classes))
    for fc in self.fcs:
      fc.build((None, self.dim))

  def call(self, labels):
    x = stylegan2_layers.normalize(self.embed(tf.one_hot(labels,
                                                         self.num_classes)))
    for fc in self.fcs:
      x = fc(x)
    return x

  def compute_output_shape(self, input_shape):
    return (input_shape[0], self.dim)

  def get_config(self) -> dict:
    return {**super().get_config(), "num_classes": self.num_classes,
            "dim": self.dim, "num_layers": self.num_layers,
            "lr_multiplier": self.lr_multiplier}


def build(config: ml_collections.ConfigDict,
          dtype: str) -> tuple[keras.Model, keras.Model]:
  """Builds (G, D) from the `model` section of the config."""
  _check(config)
  return generator(config, dtype), discriminator(config, dtype)
