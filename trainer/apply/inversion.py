"""GAN inversion by optimization: the latent whose image explains what is seen.

Given observations y (the known pixels of an image, or a low-resolution
image) and the operator A that maps a full image to what was observed (a
mask, a downsampling), find the latent minimising

    error = mean over observed values of (A(G(latent)) - y)^2
            + prior_weight * mean(u^2)

by Adam from several starts per image, and keep the best start. The latent
is searched in one of G's latent spaces (`Settings.space`; see
trainer/models/latent.py), through coordinates u of z's scale:

  z:  u = z, from random starts drawn from N(0, I); every family.
  w:  one w for every synthesis layer, w = w_avg + scale * u.
  w+: one w per synthesis layer, ws = w_avg + scale * u.

w and w+ need a mapping network. Their first start is w_avg, where
StyleGAN2's projector starts; further starts are the w of random z. Their
scale is the root mean square of w - w_avg per coordinate over the w of
10,000 random z, so that the prior, which keeps u typical of N(0, I), and
the learning rate mean the same in every space.

G is in inference mode (BN moving statistics) with its fixed noise draw
(LatentSplit.render), so an image is a function of its latent, the rows of
a batch do not interact and every row is its own problem. The rows are split
over the strategy's replicas; each replica runs its optimisation steps in
compiled loops of 50 steps, without talking to the others, and the log shows
the progress after each.
"""

import dataclasses
import math
from typing import Callable

from absl import logging
import numpy as np
import tensorflow as tf

from trainer import distribute
from trainer import summaries
from trainer.errors import UserError
from trainer.models import latent

# Images [B, H, W, C] -> observation space [B, h, w, C].
Operator = Callable[[tf.Tensor], tf.Tensor]
# Optimisation steps per call of the compiled loop, between progress lines.
_STEPS_PER_CALL = 50
# Random z whose w give the scale of w and w+ (as StyleGAN2's projector).
SCALE_SAMPLES = 10_000


@dataclasses.dataclass(frozen=True)
class Settings:
  """How hard to search; the defaults suit 28x28 MNIST generators."""
  steps: int = 300
  restarts: int = 4  # random starts per image; the best is kept
  learning_rate: float = 0.05
  # Pulls u towards the typical set of the N(0, I) prior, so that the fit
  # stays a plausible image instead of explaining noise.
  prior_weight: float = 0.001
  seed: int = 0
  # Latents optimised at once (images x starts), which bounds the memory;
  # more images are inverted in groups.
  max_latents: int = 1024
  # The latent space searched: z, w or w+ (latent.SPACES).
  space: str = "z"

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
    if self.space not in latent.SPACES:
      raise UserError(f"--space={self.space} is not a latent space; valid: "
                      f"{', '.join(latent.SPACES)}")


@dataclasses.dataclass(frozen=True)
class Result:
  """Per image, for the best of its starts."""
  # In the space searched: z [N, latent_dim], w [N, w_dim] or ws
  # [N, num_ws, w_dim].
  latents: np.ndarray
  images: np.ndarray  # G(latents) [N, H, W, C] in [-1, 1]
  initial_error: np.ndarray  # [N] reconstruction error at the start
  final_error: np.ndarray  # [N] reconstruction error at the end


def invert(strategy: tf.distribute.Strategy, split: latent.LatentSplit,
           observed: np.ndarray, weight: np.ndarray, *,
           operator: Operator, labels: np.ndarray | None,
           latent_dim: int, settings: Settings) -> Result:
  """Finds, for each observation, the latent that G maps onto it best.

  Args:
    strategy: the rows are split over its replicas.
    split: G (or G_ema) as mapping and synthesis; conditional ones get
      `labels`. Spaces w and w+ need one with a mapping network.
    observed: y [N, h, w, C] in [-1, 1], in the operator's output space.
    weight: [N, h, w, 1], 1 where y counts (known pixels), 0 elsewhere.
    operator: A, from images [B, H, W, C] to observations [B, h, w, C].
    labels: int32 [N] for a class-conditional G, else None.
    latent_dim: the size of z.
    settings: steps, starts, learning rate, prior weight, seed, space.

  Returns:
    The best start of every image, with its reconstruction error (the
    weighted mean squared error, without the prior term) before and after.
  """
  settings.check()
  count = len(observed)
  # Every start of every image is drawn at once, so that the result of an
  # image does not depend on the group it is optimised in.
  u0, coordinates = _starts(strategy, split, settings, count, latent_dim,
                            labels)
  functions = _compiled(strategy, split, coordinates, operator, settings)
  group = max(1, settings.max_latents // settings.restarts)  # images a group
  results = []
  for first in range(0, count, group):
    part = slice(first, first + group)
    if count > group:
      logging.info("Inverting images %d to %d of %d", first,
                   min(first + group, count) - 1, count)
    results.append(_invert_group(
        strategy, functions, u0[:, part], observed[part], weight[part],
        None if labels is None else labels[part], settings.steps))
  result = Result(*(np.concatenate([getattr(r, field.name) for r in results])
                    for field in dataclasses.fields(Result)))
  return dataclasses.replace(result,
                             latents=coordinates.latents(result.latents))


@dataclasses.dataclass(frozen=True)
class _Coordinates:
  """The optimised u of a latent: latent = origin + scale * u."""
  origin: np.ndarray | float  # 0 for z, w_avg [w_dim] for w and w+
  scale: float

  def latents(self, u):
    return self.origin + self.scale * u


def _starts(strategy: tf.distribute.Strategy, split: latent.LatentSplit,
            settings: Settings, count: int, latent_dim: int,
            labels: np.ndarray | None) -> tuple[np.ndarray, _Coordinates]:
  """u of every start [starts, count, ...] and the coordinates of the space.

  z: N(0, I) draws. w, w+: start 0 at w_avg, the others at the w of the
  same draws of z under the images' labels.
  """
  rng = np.random.default_rng(settings.seed)
  z0 = rng.standard_normal((settings.restarts, count,
                            latent_dim)).astype(np.float32)
  if settings.space == "z":
    return z0, _Coordinates(0.0, 1.0)
  w_avg = np.asarray(split.w_avg.numpy(), np.float32)  # [w_dim]
  samples = rng.standard_normal((SCALE_SAMPLES, latent_dim)).astype(
      np.float32)
  scale = w_scale(strategy, split, samples, None if labels is None
                  else np.resize(labels, SCALE_SAMPLES))
  w0 = _mapped(strategy, split, z0[1:].reshape(-1, latent_dim),
               None if labels is None else np.tile(labels,
                                                   settings.restarts - 1))
  w0 = np.concatenate([np.broadcast_to(w_avg, (count, len(w_avg))), w0])
  u0 = ((w0 - w_avg) / scale).reshape(settings.restarts, count, -1)
  if settings.space == "w+":  # the same w in every layer, at the start
    u0 = np.repeat(u0[:, :, None], split.num_ws, axis=2)
  return u0.astype(np.float32), _Coordinates(w_avg, scale)


def w_scale(strategy: tf.distribute.Strategy, split: latent.LatentSplit,
            z: np.ndarray, labels: np.ndarray | None) -> float:
  """The spread of one coordinate of w: the root mean square of w - w_avg
  over the w of z [N, latent_dim] (under labels [N])."""
  w_avg = np.asarray(split.w_avg.numpy(), np.float32)  # [w_dim]
  return float(np.sqrt(np.mean(np.square(
      _mapped(strategy, split, z, labels) - w_avg))))


def _mapped(strategy: tf.distribute.Strategy, split: latent.LatentSplit,
            z: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
  """The w [N, w_dim] of z [N, latent_dim] (under labels [N])."""
  if not len(z):
    return np.zeros((0, split.w_avg.shape[0]), np.float32)
  run = distribute.replicated(
      strategy, lambda z, labels=None: split.to_w(z, labels, False)[:, 0])
  replicas = strategy.num_replicas_in_sync
  rows = [z] if labels is None else [z, labels]
  return distribute.run_on_rows(strategy, run, rows,
                                math.ceil(len(z) / replicas) * replicas)


def _invert_group(strategy: tf.distribute.Strategy, functions,
                  u0: np.ndarray, observed: np.ndarray, weight: np.ndarray,
                  labels: np.ndarray | None, steps: int) -> Result:
  """Optimises the starts u0 [starts, n, ...] of n images at once.

  Returns their Result with the latents as coordinates u.
  """
  starts, count = u0.shape[:2]
  shape = u0.shape[2:]  # of one latent
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
  u = distribute.distribute_rows(
      strategy, np.resize(u0.reshape((rows,) + shape), (padded,) + shape))
  before, _ = evaluate(u, *data)
  # Adam's moments start at zero; they stay on the replicas between calls.
  m = v = strategy.run(tf.zeros_like, args=(u,))
  progress = summaries.Progress(total_steps=steps, examples_per_step=rows,
                                start_step=0)
  for first in range(0, steps, _STEPS_PER_CALL):
    last = min(first + _STEPS_PER_CALL, steps)
    u, m, v = optimise(u, m, v, tf.constant(first), tf.constant(last), *data)
    rates = progress.update(last)
    logging.info("inversion step %d/%d | %.0f latents x steps/sec | time "
                 "left %s", last, steps, rates["perf/examples_per_sec"],
                 summaries.format_duration(rates["progress/seconds_left"]))
  after, images = evaluate(u, *data)
  u = strategy.gather(u, axis=0).numpy()
  before, after, images = before.numpy(), after.numpy(), images.numpy()
  after = after[:rows].reshape(starts, count)
  best = np.argmin(after, axis=0) * count + np.arange(count)  # rows [n]
  return Result(latents=u[best], images=images[best],
                initial_error=before[best], final_error=after.min(axis=0))


def _compiled(strategy: tf.distribute.Strategy, split: latent.LatentSplit,
              coordinates: _Coordinates, operator: Operator,
              settings: Settings):
  """The replicated functions of the optimisation of the coordinates u.

  Returns:
    optimise(u, m, v, first, last, y, weight[, labels]) -> (u, m, v): Adam
      steps first..last-1 on every replica's rows, values kept per replica;
    evaluate(u, y, weight[, labels]) -> (errors [rows], images [rows, ...]),
      gathered from all replicas in order.
  """
  beta1, beta2, epsilon = 0.9, 0.999, 1e-8

  def reconstruction_error(u, observed, weight, labels=None):  # [b], images
    channels = tf.cast(tf.shape(observed)[-1], tf.float32)
    counted = tf.reduce_sum(weight, axis=[1, 2, 3]) * channels  # [b]
    images = split.render(coordinates.latents(u), settings.space, labels)
    squared = tf.square(operator(images) - observed) * weight
    return tf.reduce_sum(squared, axis=[1, 2, 3]) / counted, images

  def replica_optimise(u, m, v, first, last, observed, weight, labels=None):
    def objective(u):  # [b]: each row depends on its own u only
      error, _ = reconstruction_error(u, observed, weight, labels)
      prior = tf.reduce_mean(tf.square(u), axis=list(range(1, u.shape.rank)))
      return error + settings.prior_weight * prior

    def adam_step(i, u, m, v):
      with tf.GradientTape() as tape:
        tape.watch(u)
        total = tf.reduce_sum(objective(u))
      grad = tape.gradient(total, u)
      m = beta1 * m + (1 - beta1) * grad
      v = beta2 * v + (1 - beta2) * tf.square(grad)
      t = tf.cast(i + 1, tf.float32)
      step = settings.learning_rate * tf.sqrt(1 - beta2**t) / (1 - beta1**t)
      return i + 1, u - step * m / (tf.sqrt(v) + epsilon), m, v

    _, u, m, v = tf.while_loop(lambda i, *_: i < last, adam_step,
                               (first, u, m, v))
    return u, m, v

  # No autograph: the loop is an explicit tf.while_loop.
  @tf.function(autograph=False)
  def optimise(u, m, v, first, last, *data):
    return strategy.run(replica_optimise, args=(u, m, v, first, last, *data))

  return optimise, distribute.replicated(strategy, reconstruction_error)
