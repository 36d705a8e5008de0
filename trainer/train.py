"""The GAN training step and loop.

Everything with state is built once, inside `strategy.scope()`, by
`state.build_state`. One call of the compiled loop runs several training
steps; each step is `strategy.run(replica_step)`: `n_disc` updates of D, one
of G (after D's, or with `train.simultaneous` from the same forward pass),
then the moving average of G (G_ema).
"""

import contextlib
import os
from typing import Callable

from absl import logging
import keras
import ml_collections
import numpy as np
import tensorflow as tf

from trainer import checkpoint as checkpoint_lib
from trainer import config as config_lib
from trainer import distribute
from trainer import evaluation
from trainer import losses as losses_lib
from trainer import monitor as monitor_lib
from trainer import state as state_lib
from trainer import summaries
from trainer.data import pipeline
from trainer.data import sources
from trainer.errors import UserError


# What one step returns and the loop averages over its steps: float32
# scalars, summed over the replicas.
STEP_METRICS = ("losses/d", "losses/g", "d_output/real", "d_output/fake",
                "grad_norm/d", "grad_norm/g")


class NonFiniteLoss(RuntimeError):
  """A loss became NaN or Inf; the message names the step."""


class Preempted(RuntimeError):
  """Training stopped on request (SIGTERM) after saving the current step."""


class ClusterFailure(RuntimeError):
  """Another task of the cluster stopped; the message says how to go on."""


# Errors of collective ops when a peer task is gone.
_PEER_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
                tf.errors.AbortedError, tf.errors.CancelledError)


def _replica_rows(global_rows: tf.Tensor) -> tf.Tensor:
  """This replica's rows of a tensor drawn for the whole global batch.

  Noise and fake labels are drawn for the global batch from one seed and each
  replica keeps its own slice: the replicas get different draws, and the
  global batch does not depend on the number of replicas.
  """
  context = tf.distribute.get_replica_context()
  per_replica = global_rows.shape[0] // context.num_replicas_in_sync
  start = context.replica_id_in_sync_group * per_replica
  return global_rows[start:start + per_replica]


def _fake_inputs(config: ml_collections.ConfigDict, global_batch: int,
                 step: tf.Tensor, k: int) -> tuple[tf.Tensor, tf.Tensor | None]:
  """This replica's noise [b, latent_dim] and, if conditional, labels [b].

  `k` numbers the draws within one step (the D updates, then G's). Fake
  labels are uniform over the classes.
  """
  seed = config.seed
  z = _replica_rows(tf.random.stateless_normal(
      [global_batch, config.model.latent_dim],
      state_lib.stream_seed(seed, state_lib.NOISE, step, k)))
  if not config.model.num_classes:
    return z, None
  labels = _replica_rows(tf.random.stateless_uniform(
      [global_batch], state_lib.stream_seed(seed, state_lib.LABELS, step, k),
      minval=0, maxval=config.model.num_classes, dtype=tf.int32))
  return z, labels


def _apply(optimizer: keras.optimizers.Optimizer, tape: tf.GradientTape,
           scaled_loss: tf.Tensor, variables: list) -> tf.Tensor:
  """Applies the gradients of one update; returns their global norm.

  The gradients are summed over replicas here so that the norm is the global
  one; the optimizer sums again, hence the division by the replica count.
  """
  context = tf.distribute.get_replica_context()
  grads = tape.gradient(scaled_loss, variables)
  grads = context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
  # With loss scaling, scale_loss(1.0) is the current scale.
  norm = tf.linalg.global_norm(grads) / optimizer.scale_loss(
      tf.constant(1.0))
  replicas = tf.cast(context.num_replicas_in_sync, grads[0].dtype)
  optimizer.apply([g / replicas for g in grads], variables)
  return norm


def _update_ema(state: state_lib.GanState, decay: float,
                step: tf.Tensor) -> None:
  """G_ema <- r * G_ema + (1 - r) * G; G's BN statistics are copied.

  r = min(decay, (1 + step) / (10 + step)): early in a run, when G moves
  fast, the average follows it closely instead of remembering the random
  initialisation (the warm-up of tf.train.ExponentialMovingAverage).
  """
  step = tf.cast(step, tf.float32)
  rate = tf.minimum(decay, (1.0 + step) / (10.0 + step))
  pairs = [(e.value, v.value) for e, v in
           zip(state.generator_ema.variables, state.generator.variables)]
  trainable = {id(v.value) for v in state.generator.trainable_variables}

  def update(strategy, pairs, rate):
    for ema, var in pairs:
      # rate is per replica here; update() hands each device its own.
      strategy.extended.update(
          ema, lambda e, v, r: e.assign(r * e + (1.0 - r) * v),
          args=(var, rate if id(var) in trainable else 0.0), group=False)

  tf.distribute.get_replica_context().merge_call(update, args=(pairs, rate))


def make_replica_step(state: state_lib.GanState,
                      config: ml_collections.ConfigDict,
                      global_batch: int):
  """Returns replica_step(real) -> metrics, named by STEP_METRICS.

  `real` is one replica's element of the input pipeline: {"image": [n_disc,
  b, H, W, C], "label": [n_disc, b]}. The labels are used only by
  class-conditional networks. Metrics are this replica's share: summed over
  replicas they give the global-batch means.
  """
  loss = losses_lib.LOSSES.get(config.model.loss)
  g, d = state.generator, state.discriminator
  seed, n_disc = config.seed, config.train.n_disc
  conditional = bool(config.model.num_classes)

  def average(per_example: tf.Tensor) -> tf.Tensor:
    return tf.nn.compute_average_loss(per_example,
                                      global_batch_size=global_batch)

  def d_loss_of(images, real_labels, fake, fake_labels, step, k):
    """D's loss on one real batch and one fake batch, and its logits."""
    real_logits = state_lib.judge(d, images, real_labels, training=True)
    fake_logits = state_lib.judge(d, fake, fake_labels, training=True)
    per_example = loss.discriminator(real_logits, fake_logits)
    if loss.gradient_penalty:
      # Interpolates between a real image and a fake of another class are
      # judged under the real label (as in conditional WGAN-GP).
      per_example += config.model.gp_weight * losses_lib.gradient_penalty(
          lambda x: state_lib.judge(d, x, real_labels, training=True),
          tf.cast(images, fake.dtype), tf.stop_gradient(fake),
          state_lib.stream_seed(seed, state_lib.PENALTY, step, k))
    return average(per_example), real_logits, fake_logits

  def alternating(real, step):
    """n_disc D updates, then G's against the updated D on fresh fakes."""
    for k in range(n_disc):
      real_labels = real["label"][k] if conditional else None
      z, fake_labels = _fake_inputs(config, global_batch, step, k)
      fake = tf.stop_gradient(
          state_lib.generate(g, z, fake_labels, training=True))
      with tf.GradientTape() as tape:
        d_loss, real_logits, fake_logits = d_loss_of(
            real["image"][k], real_labels, fake, fake_labels, step, k)
        scaled = state.d_optimizer.scale_loss(d_loss)
      d_norm = _apply(state.d_optimizer, tape, scaled, d.trainable_variables)
    z, fake_labels = _fake_inputs(config, global_batch, step, n_disc)
    with tf.GradientTape() as tape:
      g_logits = state_lib.judge(
          d, state_lib.generate(g, z, fake_labels, training=True),
          fake_labels, training=True)
      g_loss = average(loss.generator(g_logits))
      scaled = state.g_optimizer.scale_loss(g_loss)
    g_norm = _apply(state.g_optimizer, tape, scaled, g.trainable_variables)
    return d_loss, g_loss, real_logits, fake_logits, d_norm, g_norm

  def simultaneous(real, step):
    """One batch of fakes and one pass of D give both losses (n_disc = 1).

    G's loss is taken from D's logits before D's update, as in the
    TensorFlow DCGAN tutorial: G and D forward once each, a quarter less
    work per step than `alternating` for the DCGAN.
    """
    real_labels = real["label"][0] if conditional else None
    z, fake_labels = _fake_inputs(config, global_batch, step, 0)
    with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
      with d_tape.stop_recording():  # D's tape needs no path into G.
        fake = state_lib.generate(g, z, fake_labels, training=True)
      d_loss, real_logits, fake_logits = d_loss_of(
          real["image"][0], real_labels, fake, fake_labels, step, 0)
      g_loss = average(loss.generator(fake_logits))
      d_scaled = state.d_optimizer.scale_loss(d_loss)
      g_scaled = state.g_optimizer.scale_loss(g_loss)
    d_norm = _apply(state.d_optimizer, d_tape, d_scaled, d.trainable_variables)
    g_norm = _apply(state.g_optimizer, g_tape, g_scaled, g.trainable_variables)
    return d_loss, g_loss, real_logits, fake_logits, d_norm, g_norm

  update = simultaneous if config_lib.simultaneous(config) else alternating

  def replica_step(real: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    step = state.step.read_value()
    d_loss, g_loss, real_logits, fake_logits, d_norm, g_norm = update(
        real, step)
    _update_ema(state, config.model.ema_decay, step)
    state.step.assign_add(1)
    replicas = tf.distribute.get_replica_context().num_replicas_in_sync
    values = (d_loss, g_loss, average(tf.sigmoid(real_logits)),
              average(tf.sigmoid(fake_logits)), d_norm / replicas,
              g_norm / replicas)
    return {name: tf.cast(value, tf.float32)
            for name, value in zip(STEP_METRICS, values)}

  if config.runtime.jit_compile:
    return tf.function(replica_step, jit_compile=True)
  return replica_step


def make_train_loop(strategy: tf.distribute.Strategy, replica_step):
  """Returns loop(iterator, num_steps, first_step) -> (metrics, first bad).

  Steps are numbered as in the log and the checkpoints: step n is the n-th
  step, so this call runs steps first_step + 1 ... first_step + num_steps.
  The first bad step is the first of them with a NaN or Inf loss, or -1.
  """

  @tf.function
  def loop(iterator, num_steps: tf.Tensor, first_step: tf.Tensor):
    # Every loop variable has its final type before the loop. Otherwise
    # autograph traces the body (the whole step) once more, only to learn
    # the types: 40% more time to the first step (BENCHMARKS.md, "Time to
    # the first step").
    sums = {name: tf.constant(0.0) for name in STEP_METRICS}
    first_bad = tf.constant(-1, tf.int64)
    for i in tf.range(num_steps):
      per_replica = strategy.run(replica_step, args=(next(iterator),))
      metrics = {name: strategy.reduce(tf.distribute.ReduceOp.SUM,
                                       per_replica[name], axis=None)
                 for name in STEP_METRICS}
      finite = tf.math.is_finite(metrics["losses/d"]) & tf.math.is_finite(
          metrics["losses/g"])
      first_bad = tf.where((first_bad < 0) & ~finite,
                           first_step + 1 + tf.cast(i, tf.int64), first_bad)
      sums = {name: sums[name] + metrics[name] for name in sums}
    count = tf.cast(num_steps, tf.float32)
    return {name: value / count for name, value in sums.items()}, first_bad

  return loop


def make_train_steps(config: ml_collections.ConfigDict,
                     strategy: tf.distribute.Strategy,
                     state: state_lib.GanState,
                     source: sources.Source, start_step: int):
  """Returns train_steps(n) -> (mean metrics, first bad step or -1).

  Each call runs the next n training steps, from `start_step` on, reading the
  data that belongs to those steps.
  """
  global_batch = config.train.batch_size
  dataset = strategy.distribute_datasets_from_function(
      pipeline.make_input_fn(source, global_batch=global_batch,
                             n_disc=config.train.n_disc, seed=config.seed,
                             shuffle=config.data.shuffle,
                             start_step=start_step))
  iterator = iter(dataset)
  loop = make_train_loop(strategy,
                         make_replica_step(state, config, global_batch))

  def train_steps(num_steps: int) -> tuple[dict[str, tf.Tensor], int]:
    first_step = tf.constant(int(state.step.numpy()), tf.int64)
    metrics, first_bad = loop(iterator, tf.constant(num_steps), first_step)
    return metrics, int(first_bad)

  return train_steps


def make_agreement(strategy: tf.distribute.Strategy):
  """Returns any_task(flag) -> whether `flag` is True on any task.

  A collective, so every task must call it at the same point of the loop;
  all of them then get the same answer and act at the same step.
  """

  @tf.function
  def any_task(flag: tf.Tensor) -> tf.Tensor:
    per_replica = strategy.run(lambda f: tf.cast(f, tf.int32), args=(flag,))
    return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica,
                           axis=None) > 0

  return lambda flag: bool(any_task(tf.constant(flag)))


def _set_learning_rates(state: state_lib.GanState,
                        config: ml_collections.ConfigDict) -> None:
  """Applies the config's learning rates over the restored ones.

  Keras checkpoints an optimizer's learning rate; the config decides it, so
  that a run resumed with another rate uses that rate.
  """
  for optimizer, field in ((state.g_optimizer, "g_lr"),
                           (state.d_optimizer, "d_lr")):
    wanted = config.optim[field]
    restored = float(optimizer.learning_rate.numpy())
    if not np.isclose(restored, wanted, rtol=1e-6):
      logging.info("optim.%s: %g from the config replaces %g from the "
                   "checkpoint", field, wanted, restored)
      optimizer.learning_rate = wanted


def _check_batch(global_batch: int, replicas: int) -> None:
  if global_batch % replicas:
    raise UserError(
        f"train.batch_size={global_batch} is not divisible by the "
        f"{replicas} replicas; use a multiple of {replicas}")


def _next_stop(step: int, config: ml_collections.ConfigDict) -> int:
  """The next step at which something happens (log, save, images, end)."""
  train = config.train
  candidates = [train.steps, step + train.steps_per_loop]
  for every in (train.log_every, train.checkpoint_every, train.image_every,
                train.eval_every):
    if every:
      candidates.append((step // every + 1) * every)
  return min(candidates)


def load_source(config: ml_collections.ConfigDict) -> sources.Source:
  """The training data of the config (data.*), checked against the model."""
  data = config.data
  return sources.load(data.source, sources.Request(
      split=data.split, image_size=config.model.image_size,
      channels=config.model.channels, resize=data.resize,
      tfds_data_dir=data.tfds_data_dir, tfds_download=data.tfds_download))


def run(config: ml_collections.ConfigDict, workdir: str,
        strategy: tf.distribute.Strategy,
        stop_requested: Callable[[], bool] | None = None) -> state_lib.GanState:
  """Trains until `train.steps`, resuming from the workdir.

  Args:
    config: the experiment config.
    workdir: checkpoints, summaries and config.json.
    strategy: the distribution strategy.
    stop_requested: polled after every call of the compiled loop (e.g. "was
      SIGTERM received"); when it is True on any task, all tasks save a
      checkpoint at the current step and raise Preempted.

  Returns:
    The training state at the end (its `step` is train.steps).

  Raises:
    UserError: bad config, data or workdir; raised before anything is written.
    NonFiniteLoss: a loss became NaN or Inf (no checkpoint is written after).
    Preempted: stop_requested() became True; the current step was saved.
    ClusterFailure: another task stopped; the last checkpoint is intact.
  """
  config_lib.validate(config)
  losses_lib.LOSSES.get(config.model.loss)
  _check_batch(config.train.batch_size, strategy.num_replicas_in_sync)
  if config.runtime.jit_compile:
    distribute.check_xla(strategy)
  source = load_source(config)
  sources.check_classes(source, config.model.num_classes)
  config_lib.check_compatible(config, workdir)

  state = state_lib.build_state(config, strategy)
  chief = distribute.is_chief(strategy)
  checkpointer = checkpoint_lib.Checkpointer(
      workdir, state.trackables(), keep=config.train.keep_checkpoints,
      is_chief=chief)
  if checkpointer.restore_latest():
    _set_learning_rates(state, config)
  step = int(state.step.numpy())
  evaluator = (evaluation.Evaluator(config, strategy, state, workdir,
                                    is_chief=chief)
               if config.train.eval_every and step < config.train.steps
               else None)
  config_lib.log_and_write(config, workdir, write=chief)
  if step >= config.train.steps:
    logging.info("Already trained to step %d (train.steps=%d); nothing to do",
                 step, config.train.steps)
    return state

  writer = summaries.Writer(os.path.join(workdir, "train") if chief else None)
  writer.text(step, "config", "    " + config_lib.to_json(config).replace(
      "\n", "\n    "))
  train_steps = make_train_steps(config, strategy, state, source, step)
  monitor = monitor_lib.Monitor(strategy, state, config, pipeline.first_examples(
      source, config.train.histogram_samples))
  progress = summaries.Progress(total_steps=config.train.steps,
                                examples_per_step=config.train.batch_size,
                                start_step=step)
  logging.info("Training from step %d to %d on %s", step, config.train.steps,
               source.description)
  if step == 0:
    monitor.write(writer, step)
  any_task = make_agreement(strategy) if stop_requested else None
  while step < config.train.steps:
    stop = _next_stop(step, config)
    # Any collective can be the first to meet a lost peer: the training
    # steps, a checkpoint's, an evaluation's or the stop agreement.
    with _peer_failures(checkpointer):
      metrics, first_bad = train_steps(stop - step)
      if first_bad >= 0:
        writer.flush()
        last_good = (f"the last good checkpoint is {checkpointer.latest} "
                     "(nothing was saved after it)" if checkpointer.latest
                     else "no checkpoint had been written yet")
        raise NonFiniteLoss(
            f"a loss became NaN or Inf at step {first_bad}; training stopped, "
            f"{last_good}")
      step = stop
      saved = _on_step(step, config, metrics, progress, writer, monitor,
                       checkpointer, evaluator)
      if any_task is not None and any_task(stop_requested()):
        if not saved:
          checkpointer.save(step)
        writer.flush()
        raise Preempted(
            f"stopped on request at step {step} after saving "
            f"{checkpointer.latest}; run the same command to resume")
  writer.flush()
  return state


@contextlib.contextmanager
def _peer_failures(checkpointer: checkpoint_lib.Checkpointer):
  """Turns the collective ops' errors of a lost peer into ClusterFailure."""
  try:
    yield
  except _PEER_ERRORS as e:
    raise ClusterFailure(
        "another task of the cluster stopped or became unreachable "
        f"({str(e).strip().splitlines()[0][:300]}). Restart the job: it "
        f"resumes from the last checkpoint, {checkpointer.latest}") from None


def _on_step(step, config, metrics, progress, writer, monitor, checkpointer,
             evaluator) -> bool:
  """Logs, writes images, saves and evaluates at the steps that ask for it.

  Returns:
    Whether a checkpoint was saved.
  """
  train = config.train
  last = step == train.steps
  if step % train.log_every == 0 or last:
    values = {k: float(v) for k, v in metrics.items()}
    values.update(progress.update(step))
    writer.scalars(step, values)
    logging.info(
        "step %d/%d | %.1f examples/sec | d_loss %.4f g_loss %.4f | "
        "D(real) %.3f D(fake) %.3f | time left %s", step, train.steps,
        values["perf/examples_per_sec"], values["losses/d"],
        values["losses/g"], values["d_output/real"], values["d_output/fake"],
        summaries.format_duration(values["progress/seconds_left"]))
  if step % train.image_every == 0 or last:
    monitor.write(writer, step)
  saved = step % train.checkpoint_every == 0 or last
  if saved:
    checkpointer.save(step)
  # After saving: an evaluation that fails cannot cost the checkpoint.
  if evaluator is not None and (step % train.eval_every == 0 or last):
    evaluator.evaluate(step, checkpointer.latest if saved else "")
    progress.restart(step)
  return saved
