"""The compiled training step: the phases of trainer/phases.py, run on
every replica, several steps per call of one tf.function.
"""

import ml_collections
import tensorflow as tf

from trainer import augment as augment_lib
from trainer.data import pipeline
from trainer.data import sources
from trainer import phases as phases_lib
from trainer import state as state_lib

Metrics = phases_lib.Metrics


class _Sums:
  """Each metric's sum over the steps it was computed on, and their count.

  Variables made when the loop is traced, for the names the phases return:
  the names are known only then, and a lazy phase's metrics are summed
  inside its branch.
  """

  def __init__(self):
    self.sums: dict[str, tf.Variable] = {}
    self.counts: dict[str, tf.Variable] = {}

  def add(self, metrics: Metrics) -> tf.Tensor:
    """Adds one step's metrics; returns whether its losses are finite."""
    for name, value in metrics.items():
      if name not in self.sums:
        with tf.init_scope():  # made once, outside the traced loop
          self.sums[name] = tf.Variable(0.0, trainable=False)
          self.counts[name] = tf.Variable(0.0, trainable=False)
      self.sums[name].assign_add(value)
      self.counts[name].assign_add(1.0)
    # The losses and penalties; not the gradient norms, which are Inf on the
    # steps where float16's loss scaling overflows (and skips the update).
    checked = [value for name, value in metrics.items()
               if name.startswith(("losses/", "penalties/"))]
    return tf.reduce_all([tf.math.is_finite(v) for v in checked] or [True])

  def take(self) -> dict[str, float]:
    """The means since the last take, of the metrics computed since."""
    means = {}
    for name, total in self.sums.items():
      count = float(self.counts[name].numpy())
      if count:
        means[name] = float(total.numpy()) / count
      total.assign(0.0)
      self.counts[name].assign(0.0)
    return means


def make_train_loop(strategy: tf.distribute.Strategy,
                    phases: list[phases_lib.Phase]):
  """Returns loop(iterator, num_steps, first_step) -> first bad step or -1,
  and the sums it keeps (_Sums).

  Steps are numbered as in the log and the checkpoints: step n is the n-th
  step, so this call runs steps first_step + 1 ... first_step + num_steps.
  The first bad step is the first of them with a NaN or Inf loss or
  penalty.
  """
  sums = _Sums()

  def run(phase: phases_lib.Phase, element, metrics: Metrics,
          step: tf.Tensor) -> Metrics:
    if not phase.replicated:
      return phase.fn(metrics, step)
    # Only this loop needs autograph (its `for` over a tensor). The phases'
    # Python control flow is on Python values, so converting their call tree
    # again in every process would only cost time: about 1 s of a tiny run.
    per_replica = strategy.run(
        tf.autograph.experimental.do_not_convert(phase.fn), args=(element,))
    return {name: tf.cast(strategy.reduce(tf.distribute.ReduceOp.SUM, value,
                                          axis=None), tf.float32)
            for name, value in per_replica.items()}

  def one_step(element, step) -> tf.Tensor:
    """Runs one step's phases; returns whether its losses were finite.

    A lazy phase runs under tf.cond, outside the replicas (its collectives
    cannot sit in a replica's control flow); every replica and worker sees
    the same step, so all take the same branch.
    """
    metrics, finite = {}, []
    for phase in phases:
      if phase.interval == 1:
        values = run(phase, element, metrics, step)
        metrics.update(values)
        finite.append(sums.add(values))
      else:
        finite.append(tf.cond(
            step % phase.interval == 0,
            lambda phase=phase: sums.add(run(phase, element, metrics, step)),
            lambda: tf.constant(True)))
    return tf.reduce_all(finite)

  @tf.function
  def loop(iterator, num_steps: tf.Tensor, first_step: tf.Tensor):
    first_bad = tf.constant(-1, tf.int64)
    for i in tf.range(num_steps):
      step = first_step + tf.cast(i, tf.int64)
      finite = one_step(next(iterator), step)
      first_bad = tf.where((first_bad < 0) & ~finite, step + 1, first_bad)
    return first_bad

  return loop, sums


def make_train_steps(config: ml_collections.ConfigDict,
                     strategy: tf.distribute.Strategy,
                     state: state_lib.GanState,
                     source: sources.Source, start_step: int):
  """Returns train_steps(n, take=True) -> (mean metrics, first bad step or
  -1).

  Each call runs the next n training steps, from `start_step` on, reading the
  data that belongs to those steps. The metrics are each one's mean over the
  steps since the last call with take=True (over the steps it was computed
  on: a lazy phase's only on its steps); with take=False they keep adding up
  and the call returns none.
  """
  global_batch = config.train.batch_size
  dataset = strategy.distribute_datasets_from_function(
      pipeline.make_input_fn(source, global_batch=global_batch,
                             n_disc=config.train.n_disc, seed=config.seed,
                             shuffle=config.data.shuffle,
                             start_step=start_step))
  iterator = iter(dataset)
  augmentation = augment_lib.build(config.augment.name, config.augment.groups)
  uses_p = augmentation is not None and augmentation.uses_p
  loop, sums = make_train_loop(
      strategy, phases_lib.make_phases(state, config, global_batch))

  def train_steps(num_steps: int,
                  take: bool = True) -> tuple[dict[str, float], int]:
    first_step = tf.constant(int(state.step.numpy()), tf.int64)
    first_bad = loop(iterator, tf.constant(num_steps), first_step)
    if not take:
      return {}, int(first_bad)
    # A lazy phase that did not run since the last take has none.
    metrics = sums.take()
    if uses_p:
      metrics["augment/p"] = float(state.augment.p.numpy())
    metrics.update(state.schedules.summaries())
    if source.skipped():
      metrics["data/skipped_images"] = float(source.skipped())
    return metrics, int(first_bad)

  return train_steps
