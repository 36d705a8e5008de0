"""Networks, looked up by `model.architecture`, and how to call them.

Each architecture declares the `model.*` fields of its own, with their
defaults and ranges; the config resolver (trainer/config.py) fills in and
checks them, so that a config needs to name only what it changes.
"""

import dataclasses
from typing import Callable

import keras
import ml_collections
import numpy as np
import tensorflow as tf

from trainer.models import dcgan
from trainer.models import latent
from trainer.models import r3gan
from trainer.models import stylegan2
from trainer.registry import Registry

# An architecture builds (generator, discriminator) for one replica from the
# model config and a Keras dtype policy name.
Builder = Callable[[ml_collections.ConfigDict, str],
                   tuple[keras.Model, keras.Model]]


@dataclasses.dataclass(frozen=True)
class Architecture:
  """A network family: its builder and the model fields it declares.

  Attributes:
    build: (model config, dtype policy) -> (G, D).
    fields: model.<name> -> default, for the fields of this family.
    positive: those of its fields that must be >= 1.
    unit_interval: those that must be in [0, 1).
    state_fields: those that fix the shapes of the saved state: a checkpoint
      written with other values cannot be restored.
    split: G -> its mapping and synthesis (trainer/models/latent.py).
  """
  build: Builder
  fields: dict[str, object]
  positive: tuple[str, ...] = ()
  unit_interval: tuple[str, ...] = ()
  state_fields: tuple[str, ...] = ()
  split: Callable[[keras.Model], latent.LatentSplit] = latent.no_mapping

  def __call__(self, config: ml_collections.ConfigDict,
               dtype: str) -> tuple[keras.Model, keras.Model]:
    return self.build(config, dtype)


ARCHITECTURES: Registry[Architecture] = Registry("architecture",
                                                 "model.architecture")
ARCHITECTURES.register("dcgan")(Architecture(
    build=dcgan.build,
    fields={
        # Width of G's last hidden layer and D's first; the others double
        # from it.
        "g_width": 64,
        "d_width": 64,
        "d_dropout": 0.3,  # dropout after each of D's convolutions
        # Batch-norm statistics over the global batch rather than each
        # replica's.
        "sync_batchnorm": True,
        # Spectral normalization of D's (and G's) weight layers (Miyato et
        # al.).
        "d_spectral_norm": False,
        "g_spectral_norm": False,
    },
    positive=("g_width", "d_width"), unit_interval=("d_dropout",),
    state_fields=("g_width", "d_width", "d_spectral_norm",
                  "g_spectral_norm")))
"""The seed tutorial's DCGAN (trainer/models/dcgan.py), sized from the config.

At 28x28 the tutorial's networks: G projects z to 7x7 and upsamples with
transposed convolutions and batch norm; D is strided convolutions with
dropout (d_dropout) to one logit. Other sizes add or remove stride-2
stages. g_width and d_width set the widths, sync_batchnorm takes batch
norm's statistics over the global batch; spectral norm on either network.
"""
ARCHITECTURES.register("stylegan2")(Architecture(
    build=stylegan2.build,
    fields={
        "w_dim": 512,  # width of w, the mapping network's output
        "mapping_layers": 8,  # layers of the mapping network
        # The mapping network's learning rate relative to the rest.
        "mapping_lr_multiplier": 0.01,
        "w_avg_beta": 0.995,  # decay of w's running average (truncation)
        "style_mixing": 0.9,  # probability of mixing two ws in training
        # Width min(channel_base // r, channel_max) at resolution r.
        "channel_base": 16384,
        "channel_max": 512,
        # Top resolutions in the reduced dtype under mixed_* policies.
        "num_fp16_res": 4,
        "conv_clamp": 256.0,  # clamp of every convolution's output; 0: none
        # The modulated convolution's path: scaled, grouped or auto.
        "modconv": "auto",
        "mbstd_group": 4,  # group size of D's minibatch standard deviation
        "mbstd_features": 1,  # the channels it adds
        # Its groups: consecutive examples (the same whatever the split over
        # replicas) or strided (StyleGAN2's: example i of n groups in group
        # i mod n; the reference's function, as converted models use).
        "mbstd_groups": "consecutive",
        # D: resnet (StyleGAN2's) or orig (no skips; ADA's CIFAR-10 preset).
        "d_architecture": "resnet",
        # Layers of D's mapping of the label (class-conditional D).
        "d_mapping_layers": 8,
    },
    positive=("w_dim", "mapping_layers", "channel_base", "channel_max",
              "mbstd_group", "mbstd_features", "d_mapping_layers"),
    unit_interval=("w_avg_beta", "style_mixing"),
    state_fields=("w_dim", "mapping_layers", "channel_base", "channel_max",
                  "mbstd_features", "d_architecture", "d_mapping_layers"),
    split=lambda g: latent.mapped(stylegan2.mapping_of(g),
                                  stylegan2.synthesis_of(g))))
"""StyleGAN2 with StyleGAN2-ADA's settings (trainer/models/stylegan2.py).

Widths min(channel_base // r, channel_max) at resolution r (channel_base
16384: the ADA paper's 0.5x networks; its config-f is 32768); image_size a
power of two. `modconv` is "scaled" (activations scaled around a shared
convolution), "grouped" (per-example kernels, one grouped convolution) or
"auto" (grouped for a batch of one, else scaled: the faster, measured):
the same function. num_fp16_res acts under mixed_* policies and conv_clamp
always, as in StyleGAN2-ADA (conv_clamp 0: none); style_mixing is the
probability of style mixing in training; mbstd_group and mbstd_features
size D's minibatch standard deviation and mbstd_groups picks its groups;
d_architecture is D's kind and d_mapping_layers the depth of a
class-conditional D's mapping of the label.
"""
ARCHITECTURES.register("r3gan")(Architecture(
    build=r3gan.build,
    fields={
        # Width min(channel_base // r, channel_max) at resolution r.
        "channel_base": 24576,
        "channel_max": 768,
        "blocks_per_stage": 2,  # residual blocks per resolution
        # Groups of the 3x3 convolution at the widest stage.
        "cardinality": 96,
        "expansion": 2,  # a block's inner width over its width
        # Top resolutions in the reduced dtype under mixed_* policies.
        "num_fp16_res": 4,
    },
    positive=("channel_base", "channel_max", "blocks_per_stage",
              "cardinality", "expansion"),
    state_fields=("channel_base", "channel_max", "blocks_per_stage",
                  "cardinality", "expansion"),
    split=latent.no_mapping))
"""R3GAN with its presets' settings (trainer/models/r3gan.py).

Widths min(channel_base // r, channel_max) at resolution r (24576 and 768:
R3GAN's CIFAR-10 and FFHQ presets, 768 channels up to 32x32, halving
above); blocks_per_stage residual blocks per resolution, each expanding to
expansion x the width for a 3x3 convolution in groups: cardinality groups at
the widest stage, proportionally fewer where narrower. Under mixed_*
policies the top num_fp16_res resolutions (never 4x4) compute in the
reduced dtype. No mapping network: G's latent space is z.
"""


# Class-conditional networks (model.num_classes > 0) take [inputs, labels];
# the others take the inputs alone. Labels are None for the latter, so that
# callers need not know which kind they hold.


def generate(generator: keras.Model, z: tf.Tensor, labels: tf.Tensor | None,
             *, training: bool) -> tf.Tensor:
  """G(z), or G(z | labels) for a class-conditional G: images [B, H, W, C]."""
  return generator(z if labels is None else [z, labels], training=training)


def judge(discriminator: keras.Model, images: tf.Tensor,
          labels: tf.Tensor | None, *, training: bool) -> tf.Tensor:
  """D's logits [B] for images (of the given classes, if conditional)."""
  inputs = images if labels is None else [images, labels]
  return tf.squeeze(discriminator(inputs, training=training), axis=-1)


def balanced_labels(count: int, num_classes: int) -> np.ndarray | None:
  """0, 1, ..., K-1, 0, 1, ... (int32 [count]); None if unconditional."""
  if not num_classes:
    return None
  return (np.arange(count) % num_classes).astype(np.int32)
