"""G seen as a mapping z -> w and a synthesis w -> images.

What works in G's latent spaces (the path-length penalty; inversion,
truncation and mixing in trainer.apply) reads G through this split, so it
needs no knowledge of the family. A family without a mapping network has
w = z.
"""

import dataclasses
from typing import Callable

import keras
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class LatentSplit:
  """G(z | labels) = synthesize(to_w(z, labels), labels).

  Attributes:
    space: what w is: "z" (no mapping network) or "w+" (ws
      [B, num_ws, w_dim], one w per synthesis layer).
    to_w: (z [B, latent_dim], labels [B] or None, training) -> w.
    synthesize: (w, labels or None, training) -> images [B, H, W, C].
  """
  space: str
  to_w: Callable[[tf.Tensor, tf.Tensor | None, bool], tf.Tensor]
  synthesize: Callable[[tf.Tensor, tf.Tensor | None, bool], tf.Tensor]


def _inputs(x: tf.Tensor, labels: tf.Tensor | None):
  return x if labels is None else [x, labels]


def no_mapping(generator: keras.Model) -> LatentSplit:
  """The split of a G without a mapping network: w is z."""
  return LatentSplit(
      space="z", to_w=lambda z, labels, training: z,
      synthesize=lambda w, labels, training: generator(
          _inputs(w, labels), training=training))


def mapped(mapping: keras.layers.Layer,
           synthesis: keras.layers.Layer) -> LatentSplit:
  """The split of a style-based G from its two halves."""
  return LatentSplit(
      space="w+",
      to_w=lambda z, labels, training: mapping(_inputs(z, labels),
                                               training=training),
      synthesize=lambda ws, labels, training: synthesis(ws,
                                                        training=training))
