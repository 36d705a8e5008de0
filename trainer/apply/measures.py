"""Measures of a digit's image that attribute edits are judged by.

Each maps images [B, H, W, C] in [-1, 1] to one number per image [B],
reading the ink (a pixel's value taken to [0, 1], averaged over channels)
as a weight at each pixel:

  ink:    the mean ink, in [0, 1].
  slant:  how far the ink leans right per unit of height, from its second
          moments: cov(x, y) / var(y) with y pointing up (0 upright,
          positive leaning right, negative leaning left).
  width:  the ink's horizontal spread, the standard deviation of its x in
          pixels.

`directions --method=labels --classifier=<measure>` labels sampled latents
by one (those above the samples' median have the attribute), and the edit
and mix measurements of BENCHMARKS.md (trainer.bench.edit_quality,
trainer.bench.mix_quality) read them, and the digit the project's MNIST
classifier reads (`digits`), on the images G drew.
"""

from typing import Callable

import numpy as np
import tensorflow as tf

from trainer import features as features_lib
from trainer.registry import Registry

Measure = Callable[[tf.Tensor], tf.Tensor]
MEASURES: Registry[Measure] = Registry("image measure", "--classifier")

_EPSILON = 1e-6  # an image without ink has no moments: 0, not NaN
# Images the MNIST classifier reads at once.
_CLASSIFIER_BATCH = 500


def _ink(images: tf.Tensor) -> tf.Tensor:
  """[B, H, W, C] in [-1, 1] -> the ink [B, H, W] in [0, 1]."""
  return (tf.reduce_mean(tf.cast(images, tf.float32), axis=-1) + 1.0) / 2.0


def _moments(images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """The ink's (var x, var y, cov(x, y)) [B] each; x right, y up."""
  ink = _ink(images)
  height, width = tf.shape(ink)[1], tf.shape(ink)[2]
  x = tf.cast(tf.range(width), tf.float32)[None, None, :]
  y = -tf.cast(tf.range(height), tf.float32)[None, :, None]
  total = tf.reduce_sum(ink, axis=[1, 2]) + _EPSILON  # [B]

  def mean(values):
    return tf.reduce_sum(ink * values, axis=[1, 2]) / total

  dx = x - mean(x)[:, None, None]
  dy = y - mean(y)[:, None, None]
  return mean(dx * dx), mean(dy * dy), mean(dx * dy)


@MEASURES.register("ink")
def ink(images: tf.Tensor) -> tf.Tensor:
  """The mean ink, in [0, 1]."""
  return tf.reduce_mean(_ink(images), axis=[1, 2])


@MEASURES.register("slant")
def slant(images: tf.Tensor) -> tf.Tensor:
  """The ink's lean to the right per unit of height, cov(x, y) / var(y)."""
  _, var_y, cov = _moments(images)
  return cov / (var_y + _EPSILON)


@MEASURES.register("width")
def width(images: tf.Tensor) -> tf.Tensor:
  """The standard deviation of the ink's x, in pixels."""
  var_x, _, _ = _moments(images)
  return tf.sqrt(var_x)


def measured(name: str, images: np.ndarray) -> np.ndarray:
  """Measure `name` of images [..., H, W, C] in [-1, 1] -> [...]."""
  flat = images.reshape((-1,) + images.shape[-3:])
  return MEASURES.get(name)(tf.constant(flat)).numpy().reshape(
      images.shape[:-3])


def digits(images: np.ndarray) -> np.ndarray:
  """The digit the project's MNIST classifier reads in images
  [..., H, W, C] in [-1, 1] -> int [...]."""
  flat = images.reshape((-1,) + images.shape[-3:])
  classifier = features_lib.build("mnist_classifier", "", flat.shape[1:])
  probabilities = np.concatenate([
      classifier.extract(tf.constant(flat[i:i + _CLASSIFIER_BATCH]))[1].numpy()
      for i in range(0, len(flat), _CLASSIFIER_BATCH)])
  return probabilities.argmax(-1).reshape(images.shape[:-3])
