"""Freeze-D (Mo et al. 2020): which of D's layers `train.freeze_d` freezes.

`train.freeze_d=N` leaves D's first N layers with weights, counted from the
images, as they are: every update of D (its loss, its lazy penalties) takes
the gradients of the other layers only (trainer/phases.py). D's forward
pass is unchanged, and the frozen weights stay in D and in the checkpoint.

Each architecture registers the order of its D's layers here, a function of
the model config and the built D. StyleGAN2's counts as StyleGAN2-ADA's
`--freezed` does (training/networks.py, DiscriminatorBlock: one index per
convolution, per block from the top resolution: fromrgb in the first block,
conv0, conv1, skip); where ADA's count stops, at the 4x4 epilogue, ours goes
on through it, so that N can reach every layer of D.
"""

from typing import Callable

import keras
import ml_collections
import tensorflow as tf

from trainer.errors import UserError
from trainer.models import layers as layers_lib
from trainer.models import stages
from trainer.registry import Registry

# (model config, D) -> D's layers with weights, from the image side.
LayerOrder = Callable[[ml_collections.ConfigDict, keras.Model],
                      list[keras.layers.Layer]]

D_LAYERS: Registry[LayerOrder] = Registry("D layer order (train.freeze_d)",
                                          "model.architecture")


def _weighted(discriminator: keras.Model) -> list[keras.layers.Layer]:
  """D's layers with trainable weights, in Keras' (topological) order."""
  return [layer for layer in discriminator.layers if layer.trainable_weights]


@D_LAYERS.register("dcgan")
def _dcgan(model: ml_collections.ConfigDict,
           discriminator: keras.Model) -> list[keras.layers.Layer]:
  """Each strided convolution, the logit layer, the label's embedding."""
  del model  # the layers say it all

  def is_embedding(layer) -> bool:
    inner = (layer.layer if isinstance(layer, layers_lib.SpectralNormalization)
             else layer)
    return isinstance(inner, keras.layers.Embedding)

  # Keras lists the embedding, a branch from the labels, before the logits.
  return sorted(_weighted(discriminator), key=is_embedding)


@D_LAYERS.register("stylegan2")
def _stylegan2(model: ml_collections.ConfigDict,
               discriminator: keras.Model) -> list[keras.layers.Layer]:
  """fromrgb, per block conv0, conv1, skip (ADA's count), then the epilogue.

  The blocks from the top resolution r: conv{r}_0, conv{r}_1, skip{r} (none
  in an "orig" D); the 4x4 epilogue: conv4, fc, logits; last the label's
  mapping of a class-conditional D, which ADA never freezes.
  """
  names = ["fromrgb"]
  for res in stages.resolutions(model.image_size)[:0:-1]:  # size, ..., 8
    # ADA's order in a block; Keras lists the skip first.
    names += [f"conv{res}_0", f"conv{res}_1", f"skip{res}"]
  names += ["conv4", "fc", "logits", "label_mapping"]
  present = {layer.name: layer for layer in _weighted(discriminator)}
  # An "orig" D has no skips, an unconditional one no label mapping.
  return [present[name] for name in names if name in present]


@D_LAYERS.register("r3gan")
def _r3gan(model: ml_collections.ConfigDict,
           discriminator: keras.Model) -> list[keras.layers.Layer]:
  """extraction, each block (one layer) and width change, basis, projection.

  From the top resolution; the basis is its depthwise and its linear layer,
  the projection that of a class-conditional D.
  """
  del model  # a chain: Keras' order is the images' (the projection last)
  return _weighted(discriminator)


def d_layers(model: ml_collections.ConfigDict,
             discriminator: keras.Model) -> list[keras.layers.Layer]:
  """D's layers with weights, from the image side, as train.freeze_d counts
  them."""
  return D_LAYERS.get(model.architecture)(model, discriminator)


def frozen_layers(model: ml_collections.ConfigDict, discriminator: keras.Model,
                  count: int) -> list[keras.layers.Layer]:
  """D's first `count` layers from the image side.

  Raises:
    UserError: D has fewer than `count` layers with weights.
  """
  ordered = d_layers(model, discriminator)
  if count > len(ordered):
    raise UserError(
        f"train.freeze_d={count} is out of range: this {model.architecture} "
        f"D has {len(ordered)} layers with weights; freeze 0 to "
        f"{len(ordered)} of them")
  return ordered[:count]


def trained_variables(config: ml_collections.ConfigDict,
                      discriminator: keras.Model) -> list[tf.Variable]:
  """D's trainable variables less those of its first train.freeze_d
  layers, in D's order.

  Raises:
    UserError: train.freeze_d exceeds D's layers (frozen_layers).
  """
  frozen = {id(v) for layer in frozen_layers(
      config.model, discriminator, config.train.freeze_d)
            for v in layer.trainable_variables}
  return [v for v in discriminator.trainable_variables if id(v) not in frozen]
