"""StyleGAN2's path-length penalty of G."""

import math

import ml_collections
import tensorflow as tf

from trainer.penalties import base


def _path_length(inputs: base.GeneratorInputs) -> tf.Tensor:
  """(|J_w^T y| - a)^2: StyleGAN2's path-length regularization.

  For fresh latents w and images y ~ N(0, I) / sqrt(H W), |J_w^T y| is the
  length of the image-space step that a unit step in w makes; a is its
  running mean (decay `penalties.pl.decay`), over the global batch. The
  penalty runs on batch / `batch_shrink` latents, as StyleGAN2 does. For
  ws [b, num_ws, w_dim] the squared length is summed over w_dim and
  averaged over the ws.
  """
  settings, mean_length = inputs.settings, inputs.state["mean"]
  count = _path_length_examples(settings, inputs.batch)
  w, labels, z = inputs.latents(count)
  with tf.GradientTape() as tape:
    tape.watch(w)
    images = inputs.synthesize(w, labels, z)  # [b, H, W, C]
    height, width = images.shape[1], images.shape[2]
    noise = inputs.rows(tf.random.stateless_normal(
        [count, *images.shape[1:]], inputs.seed)) / math.sqrt(height * width)
    total = tf.reduce_sum(images * noise)
  grads = tape.gradient(total, w)  # [b, ..., w_dim]
  squares = tf.reduce_sum(tf.square(grads), axis=-1)  # [b, ...]
  if squares.shape.rank > 1:
    squares = tf.reduce_mean(squares, axis=list(range(1, squares.shape.rank)))
  lengths = tf.sqrt(squares + 1e-12)  # [b]
  moved = mean_length + settings.decay * (
      tf.stop_gradient(inputs.mean(lengths)) - mean_length)
  mean_length.assign(moved)
  return tf.square(lengths - moved)


def _path_length_examples(settings: ml_collections.ConfigDict,
                          batch: int) -> int:
  return batch // settings.batch_shrink


def _check_path_length(settings: ml_collections.ConfigDict) -> str | None:
  if not 0 < settings.decay <= 1:
    return f"decay={settings.decay} is out of range; it must be in (0, 1]"
  if settings.batch_shrink < 1:
    return (f"batch_shrink={settings.batch_shrink} is out of range; it must "
            "be >= 1")
  return None


# StyleGAN2's path length, on G: weight (|J_w^T y| - a)^2.
base.PENALTIES.register("pl")(base.Penalty(
    term=_path_length, scale=1.0, network="g", state=(("mean", 0.0),),
    fields={
        "weight": 2.0,  # adds weight (|J_w^T y| - a)^2
        # Steps between its own updates of G (lazy, StyleGAN2); 1: in G's
        # loss at every update.
        "interval": 4,
        "decay": 0.01,  # of a, the running mean of |J^T y|
        "batch_shrink": 2,  # it runs on batch / batch_shrink latents
    },
    check=_check_path_length, examples=_path_length_examples))
