"""The stateless random streams of a run.

Every random draw of training and evaluation (noise, labels, penalties,
augmentation, fixed grids) comes from the config's seed, a purpose and
counters (the step, the number of the draw within the step, ...), so a
resumed run draws what an uninterrupted one would, and a global batch draws
the same values on any number of replicas.
"""

import itertools

import tensorflow as tf

# Purposes of stateless random streams, folded into the config's seed.
NOISE, PENALTY, FIXED_NOISE, EVAL_NOISE, LABELS, AUGMENT = 1, 2, 3, 4, 5, 6


def stream_seed(seed: int, purpose: int, *counters: tf.Tensor) -> tf.Tensor:
  """A stateless seed [2] for one purpose at given counters (step, ...)."""
  value = tf.constant([seed, purpose], tf.int64)
  for counter in counters:
    value = tf.random.experimental.stateless_fold_in(value, counter)
  return value


class DrawCounter:
  """Hands out the numbers that tell a step's draws apart.

  Every update of a step draws its noise, labels, augmentation and penalty
  randomness from (seed, purpose, step, its number). The numbers are handed
  out once, when the step's phases are built, in a fixed order (see
  trainer/step.py); a phase added later takes numbers after all others, so
  it changes no other phase's draws.
  """

  def __init__(self):
    self._numbers = itertools.count()

  def take(self) -> int:
    return next(self._numbers)


def replica_rows(global_rows: tf.Tensor) -> tf.Tensor:
  """This replica's rows of a tensor drawn for the whole global batch.

  Noise and fake labels are drawn for the global batch from one seed and each
  replica keeps its own slice: the replicas get different draws, and the
  global batch does not depend on the number of replicas.
  """
  context = tf.distribute.get_replica_context()
  per_replica = global_rows.shape[0] // context.num_replicas_in_sync
  start = context.replica_id_in_sync_group * per_replica
  return global_rows[start:start + per_replica]


def fake_inputs(*, seed: int, latent_dim: int, num_classes: int,
                global_batch: int, step: tf.Tensor, number: int
                ) -> tuple[tf.Tensor, tf.Tensor | None]:
  """This replica's noise [b, latent_dim] and, if conditional, labels [b].

  `number` is the draw's number within the step (DrawCounter). Fake labels
  are uniform over the classes.
  """
  z = replica_rows(tf.random.stateless_normal(
      [global_batch, latent_dim], stream_seed(seed, NOISE, step, number)))
  if not num_classes:
    return z, None
  labels = replica_rows(tf.random.stateless_uniform(
      [global_batch], stream_seed(seed, LABELS, step, number),
      minval=0, maxval=num_classes, dtype=tf.int32))
  return z, labels
