"""The DCGAN of the seed tutorial, sized from the config.

For 28x28 it is the tutorial's network: G maps noise 100 -> 7x7x256 -> transposed
convolutions to 128 (stride 1) and 64 (stride 2) channels -> 28x28x1 tanh;
D is conv 64 -> conv 128 (stride 2 each) -> one logit. Other sizes add or
remove stride-2 stages (32x32 starts from 8x8, 64x64 from 8x8 with one more
stage), doubling the widths per stage. Leaky ReLUs use slope 0.2 (Radford et
al.). D returns logits: the loss applies the sigmoid.

With `model.num_classes` > 0 both networks are class-conditional and take
[inputs, labels] (labels int32 [B]): G concatenates a learned embedding of
the label to the noise; D is a projection discriminator (Miyato & Koyama,
2018): logit = w . h + embed(y) . h for its last features h, so the label
asks "is this a real image of class y" without a second classifier head.

`model.d_spectral_norm` divides each weight of D (its convolutions, the
logit layer and, as in Miyato & Koyama's projection D, the label embedding)
by its largest singular value; `model.g_spectral_norm` does so for G's dense
and transposed-convolution layers (not its label embedding, a lookup
concatenated to the noise). Batch norm and biases are left as they are.
"""

import keras
import ml_collections

from trainer.errors import UserError
from trainer.models import layers

_KERNEL = 5
_SLOPE = 0.2
# Size of G's label embedding (concatenated to the noise).
_LABEL_EMBEDDING = 32


def _weight_wrapper(spectral_norm: bool):
  """Returns what wraps each weight layer: spectral normalization or nothing."""
  if spectral_norm:
    return layers.SpectralNormalization
  return lambda layer: layer


def upsampling_stages(image_size: int) -> tuple[int, int]:
  """Returns (number of stride-2 stages, starting size) for an image size.

  The image size is halved while the result stays an integer of at least 7.
  """
  stages, base = 0, image_size
  while base % 2 == 0 and base // 2 >= 7:
    stages, base = stages + 1, base // 2
  if stages == 0:
    raise UserError(
        f"model.image_size={image_size} is not valid for dcgan: it must be a "
        "base of 7 or more doubled at least once (e.g. 14, 16, 28, 32, 64)")
  return stages, base


def generator(*, image_size: int, channels: int, latent_dim: int, width: int,
              num_classes: int, sync_batchnorm: bool, spectral_norm: bool,
              dtype: str) -> keras.Model:
  """G: z [B, latent_dim] (and labels [B]) -> images [B, S, S, C] in [-1, 1].

  The images are float32 whatever the dtype policy.
  """
  stages, base = upsampling_stages(image_size)
  wrap = _weight_wrapper(spectral_norm)
  conv = dict(kernel_size=_KERNEL, padding="same", use_bias=False, dtype=dtype)

  def norm_act(x):
    x = layers.BatchNormalization(synchronized=sync_batchnorm,
                                  dtype=dtype)(x)
    return keras.layers.LeakyReLU(_SLOPE, dtype=dtype)(x)

  z = keras.Input((latent_dim,), name="z")
  inputs, x = z, z
  if num_classes:
    labels = keras.Input((), dtype="int32", name="labels")
    embedded = keras.layers.Embedding(num_classes, _LABEL_EMBEDDING,
                                      dtype=dtype)(labels)
    inputs = [z, labels]
    x = keras.layers.Concatenate(dtype=dtype)([z, embedded])
  x = wrap(keras.layers.Dense(base * base * width * 2**stages,
                              use_bias=False, dtype=dtype))(x)
  x = norm_act(x)
  x = keras.layers.Reshape((base, base, width * 2**stages), dtype=dtype)(x)
  x = norm_act(wrap(keras.layers.Conv2DTranspose(
      width * 2**(stages - 1), strides=1, **conv))(x))
  for stage in range(stages - 1):  # [B, base * 2**(stage+1), ...]
    x = norm_act(wrap(keras.layers.Conv2DTranspose(
        width * 2**(stages - 2 - stage), strides=2, **conv))(x))
  # The output layer computes in float32 so that images are float32.
  images = wrap(keras.layers.Conv2DTranspose(
      channels, strides=2, activation="tanh", kernel_size=_KERNEL,
      padding="same", use_bias=False, dtype="float32"))(x)
  return keras.Model(inputs, images, name="generator")


def discriminator(*, image_size: int, channels: int, width: int,
                  num_classes: int, dropout: float, spectral_norm: bool,
                  dtype: str) -> keras.Model:
  """D: images [B, S, S, C] (and labels [B]) -> logits [B, 1] (float32)."""
  stages, _ = upsampling_stages(image_size)
  wrap = _weight_wrapper(spectral_norm)
  images = keras.Input((image_size, image_size, channels), name="images")
  x = images
  for stage in range(stages):
    x = wrap(keras.layers.Conv2D(width * 2**stage, _KERNEL, strides=2,
                                 padding="same", dtype=dtype))(x)
    x = keras.layers.LeakyReLU(_SLOPE, dtype=dtype)(x)
    if dropout:
      x = layers.Dropout(dropout, dtype=dtype)(x)
  # Projections in float32, like the logits they add up to.
  features = keras.layers.Flatten(dtype="float32")(x)  # [B, F]
  logits = wrap(keras.layers.Dense(1, dtype="float32"))(features)
  if not num_classes:
    return keras.Model(images, logits, name="discriminator")
  labels = keras.Input((), dtype="int32", name="labels")
  embedded = wrap(keras.layers.Embedding(
      num_classes, features.shape[-1], dtype="float32"))(labels)  # [B, F]
  projection = keras.ops.sum(embedded * features, axis=-1, keepdims=True)
  logits = keras.layers.Add(dtype="float32")([logits, projection])
  return keras.Model([images, labels], logits, name="discriminator")


def build(config: ml_collections.ConfigDict,
          dtype: str) -> tuple[keras.Model, keras.Model]:
  """Builds (G, D) from the `model` section of the config."""
  g = generator(image_size=config.image_size, channels=config.channels,
                latent_dim=config.latent_dim, width=config.g_width,
                num_classes=config.num_classes,
                sync_batchnorm=config.sync_batchnorm,
                spectral_norm=config.g_spectral_norm,
                dtype=dtype)
  d = discriminator(image_size=config.image_size, channels=config.channels,
                    width=config.d_width, num_classes=config.num_classes,
                    dropout=config.d_dropout,
                    spectral_norm=config.d_spectral_norm,
                    dtype=dtype)
  return g, d
