"""GAN inversion by optimization: the latent whose image explains what is seen.

Given observations y (the known pixels of an image, or a low-resolution
image) and the operator A that maps a full image to what was observed (a
mask, a downsampling), find z minimising

    error(z) = mean over observed values of (A(G(z)) - y)^2
               + prior_weight * mean(z^2)

by Adam from several random starts per image, and keep the best start. G is
the generator in inference mode (BN moving statistics), so the rows of a batch
do not interact and every row is its own problem. The rows are split over the
strategy's replicas; each replica runs its optimisation steps in compiled
loops of 50 steps, without talking to the others, and the log shows the
progress after each.
"""

import dataclasses
import math
from typing import Callable

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from trainer import distribute
from trainer import state as state_lib
from trainer import summaries
from trainer.errors import UserError

# Images [B, H, W, C] -> observation space [B, h, w, C].
Operator = Callable[[tf.Tensor], tf.Tensor]
# Optimisation steps per call of the compiled loop, between progress lines.
_STEPS_PER_CALL = 50


@dataclasses.dataclass(frozen=True)
class Settings:
  """How hard to search; the defaults suit 28x28 MNIST generators."""
  steps: int = 300
  restarts: int = 4  # random starts per image; the best is kept
  learning_rate: float = 0.05
  # Pulls z towards the typical set of the N(0, I) prior, so that the fit
  # stays a plausible image instead of explaining noise.
  prior_weight: float = 0.001
  seed: int = 0
  # Latents optimised at once (images x starts), which bounds the memory;
  # more images are inverted in groups.
  max_latents: int = 1024

  def check(self) -> None:
    for name in ("steps", "restarts", "max_latents"):
      if getattr(self, name) < 1:
        raise UserError(f"--{name}={getattr(self, name)} is out of range; it "
                        "must be >= 1")
    if not self.learning_rate > 0:
      raise UserError(f"--learning_rate={self.learning_rate} is out of "
                      "range; it must be > 0")
    if self.prior_weight < 0:
      raise UserError(f"--prior_weight={self.prior_weight} is out of range; "
                      "it must be >= 0")


@dataclasses.dataclass(frozen=True)
class Result:
  """Per image, for the best of its starts."""
  latents: np.ndarray  # [N, latent_dim]
  images: np.ndarray  # G(z) [N, H, W, C] in [-1, 1]
  initial_error: np.ndarray  # [N] reconstruction error at the start
  final_error: np.ndarray  # [N] reconstruction error at the end


def invert(strategy: tf.distribute.Strategy, generator: keras.Model,
           observed: np.ndarray, weight: np.ndarray, *,
           operator: Operator, labels: np.ndarray | None,
           latent_dim: int, settings: Settings) -> Result:
  """Finds, for each observation, the latent that G maps onto it best.

  Args:
    strategy: the rows are split over its replicas.
    generator: G (or G_ema); conditional ones get `labels`.
    observed: y [N, h, w, C] in [-1, 1], in the operator's output space.
    weight: [N, h, w, 1], 1 where y counts (known pixels), 0 elsewhere.
    operator: A, from images [B, H, W, C] to observations [B, h, w, C].
    labels: int32 [N] for a class-conditional G, else None.
    latent_dim: the size of z.
    settings: steps, starts, learning rate, prior weight, seed.

  Returns:
    The best start of every image, with its reconstruction error (the
    weighted mean squared error, without the prior term) before and after.
  """
  settings.check()
  count, starts = len(observed), settings.restarts
  # Every start of every image is drawn at once, so that the result of an
  # image does not depend on the group it is optimised in.
  z0 = np.random.default_rng(settings.seed).standard_normal(
      (starts, count, latent_dim)).astype(np.float32)
  functions = _compiled(strategy, generator, operator, settings)
  group = max(1, settings.max_latents // starts)  # images per group
  results = []
  for first in range(0, count, group):
    part = slice(first, first + group)
    if count > group:
      logging.info("Inverting images %d to %d of %d", first,
                   min(first + group, count) - 1, count)
    results.append(_invert_group(
        strategy, functions, z0[:, part], observed[part], weight[part],
        None if labels is None else labels[part], settings.steps))
  return Result(*(np.concatenate([getattr(r, field.name) for r in results])
                  for field in dataclasses.fields(Result)))


def _invert_group(strategy: tf.distribute.Strategy, functions,
                  z0: np.ndarray, observed: np.ndarray, weight: np.ndarray,
                  labels: np.ndarray | None, steps: int) -> Result:
  """Optimises the starts z0 [starts, n, latent_dim] of n images at once."""
  starts, count, latent_dim = z0.shape
  # Row r * n + i is start r of image i.
  rows = starts * count
  replicas = strategy.num_replicas_in_sync
  padded = math.ceil(rows / replicas) * replicas

  def tile(array: np.ndarray) -> np.ndarray:
    return np.resize(np.tile(array, (starts,) + (1,) * (array.ndim - 1)),
                     (padded,) + array.shape[1:])

  data = [tile(observed.astype(np.float32)), tile(weight.astype(np.float32))]
  if labels is not None:
    data.append(tile(labels.astype(np.int32)))
  data = [distribute.distribute_rows(strategy, a) for a in data]
  optimise, evaluate = functions
  z = distribute.distribute_rows(
      strategy, np.resize(z0.reshape(rows, latent_dim), (padded, latent_dim)))
  before, _ = evaluate(z, *data)
  # Adam's moments start at zero; they stay on the replicas between calls.
  m = v = strategy.run(tf.zeros_like, args=(z,))
  progress = summaries.Progress(total_steps=steps, examples_per_step=rows,
                                start_step=0)
  for first in range(0, steps, _STEPS_PER_CALL):
    last = min(first + _STEPS_PER_CALL, steps)
    z, m, v = optimise(z, m, v, tf.constant(first), tf.constant(last), *data)
    rates = progress.update(last)
    logging.info("inversion step %d/%d | %.0f latents x steps/sec | time "
                 "left %s", last, steps, rates["perf/examples_per_sec"],
                 summaries.format_duration(rates["progress/seconds_left"]))
  after, images = evaluate(z, *data)
  z = strategy.gather(z, axis=0).numpy()
  before, after, images = before.numpy(), after.numpy(), images.numpy()
  after = after[:rows].reshape(starts, count)
  best = np.argmin(after, axis=0) * count + np.arange(count)  # rows [n]
  return Result(latents=z[best], images=images[best],
                initial_error=before[best], final_error=after.min(axis=0))


def _compiled(strategy: tf.distribute.Strategy, generator: keras.Model,
              operator: Operator, settings: Settings):
  """The replicated functions of the optimisation.

  Returns:
    optimise(z, m, v, first, last, y, weight[, labels]) -> (z, m, v): Adam
      steps first..last-1 on every replica's rows, values kept per replica;
    evaluate(z, y, weight[, labels]) -> (errors [rows], images [rows, ...]),
      gathered from all replicas in order.
  """
  beta1, beta2, epsilon = 0.9, 0.999, 1e-8

  def reconstruction_error(z, observed, weight, labels=None):  # [b], images
    channels = tf.cast(tf.shape(observed)[-1], tf.float32)
    counted = tf.reduce_sum(weight, axis=[1, 2, 3]) * channels  # [b]
    images = state_lib.generate(generator, z, labels, training=False)
    squared = tf.square(operator(images) - observed) * weight
    return tf.reduce_sum(squared, axis=[1, 2, 3]) / counted, images

  def replica_optimise(z, m, v, first, last, observed, weight, labels=None):
    def objective(z):  # [b]: each row depends on its own z only
      error, _ = reconstruction_error(z, observed, weight, labels)
      return error + settings.prior_weight * tf.reduce_mean(tf.square(z), -1)

    def adam_step(i, z, m, v):
      with tf.GradientTape() as tape:
        tape.watch(z)
        total = tf.reduce_sum(objective(z))
      grad = tape.gradient(total, z)
      m = beta1 * m + (1 - beta1) * grad
      v = beta2 * v + (1 - beta2) * tf.square(grad)
      t = tf.cast(i + 1, tf.float32)
      step = settings.learning_rate * tf.sqrt(1 - beta2**t) / (1 - beta1**t)
      return i + 1, z - step * m / (tf.sqrt(v) + epsilon), m, v

    _, z, m, v = tf.while_loop(lambda i, *_: i < last, adam_step,
                               (first, z, m, v))
    return z, m, v

  @tf.function
  def optimise(z, m, v, first, last, *data):
    return strategy.run(replica_optimise, args=(z, m, v, first, last, *data))

  return optimise, distribute.replicated(strategy, reconstruction_error)
