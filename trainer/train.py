"""The GAN training step and loop.

Everything with state is built once, inside `strategy.scope()`, by
`state.build_state`. One call of the compiled loop runs several training
steps. Each step is a sequence of phases (`make_phases`), each one
`strategy.run`: `n_disc` updates of D with the loss and the eager penalties,
the lazy penalties' own updates of D on their steps, one update of G (after
D's, or with `train.simultaneous` from the same forward pass), then the
moving average of G (G_ema). Losses and penalties are looked up by name
(trainer/losses.py) and composed here; the augmentation
(trainer/augment.py) sits in front of every evaluation of D. After each
step, outside the replicas, the augmentation probability p follows
`augment.p_mode` from metrics reduced over the global batch, so it is one
value for the whole cluster.
"""

import contextlib
import dataclasses
import os
from typing import Callable

from absl import logging
import keras
import ml_collections
import numpy as np
import tensorflow as tf

from trainer import augment as augment_lib
from trainer import checkpoint as checkpoint_lib
from trainer import config as config_lib
from trainer import distribute
from trainer import evaluation
from trainer import losses as losses_lib
from trainer import monitor as monitor_lib
from trainer import schedules as schedules_lib
from trainer import state as state_lib
from trainer import summaries
from trainer.data import pipeline
from trainer.data import sources
from trainer.errors import UserError
from trainer.models import ARCHITECTURES


class NonFiniteLoss(RuntimeError):
  """A loss became NaN or Inf; the message names the step."""


class Preempted(RuntimeError):
  """Training stopped on request (SIGTERM, Ctrl-C) after saving its step."""


class BadImage(RuntimeError):
  """An image of the data could not be read (data.on_bad_image=stop)."""


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

  The gradients are summed over replicas here, once, so that the norm is the
  global one; the optimizer (state.Adam) takes them as they are.
  """
  context = tf.distribute.get_replica_context()
  grads = tape.gradient(scaled_loss, variables)
  # A penalty alone does not reach every weight (R1 ignores D's last bias).
  grads = [tf.zeros(v.shape, v.dtype) if g is None else g
           for g, v in zip(grads, variables)]
  grads = context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
  # With loss scaling, scale_loss(1.0) is the current scale.
  norm = tf.linalg.global_norm(grads) / optimizer.scale_loss(
      tf.constant(1.0))
  optimizer.apply(grads, variables)
  return norm


def ema_rate(config: ml_collections.ConfigDict,
             schedules: schedules_lib.ScheduledValues,
             step: tf.Tensor) -> tf.Tensor:
  """The moving average's r at a step, for G_ema <- r * G_ema + (1 - r) * G.

  With model.ema_kimg > 0 or scheduled (StyleGAN2's half-life in images,
  R3GAN's from 0 up): r = 0.5 **
  (batch / half-life), the half-life capped at ema_rampup times the images
  seen when ema_rampup > 0. Otherwise r = min(ema_decay, (1 + step) / (10 +
  step)): early in a run, when G moves fast, the average follows it
  closely instead of remembering the random initialisation (the warm-up of
  tf.train.ExponentialMovingAverage).
  """
  step = tf.cast(step, tf.float32)
  model, batch = config.model, float(config.train.batch_size)
  if config_lib.ema_in_images(config):
    half_life = schedules.get("model.ema_kimg", model.ema_kimg) * 1000.0
    if model.ema_rampup > 0:
      half_life = tf.minimum(half_life, step * batch * model.ema_rampup)
    return tf.pow(0.5, batch / tf.maximum(half_life, 1e-8))
  decay = schedules.get("model.ema_decay", model.ema_decay)
  return tf.minimum(decay, (1.0 + step) / (10.0 + step))


def _update_ema(state: state_lib.GanState, rate: tf.Tensor) -> None:
  """G_ema <- r * G_ema + (1 - r) * G; G's BN statistics are copied."""
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


@dataclasses.dataclass(frozen=True)
class Phase:
  """One part of a training step: `strategy.run(fn, (real,))`.

  Attributes:
    fn: real -> {name: float32 scalar}, this replica's share of each metric
      (summed over the replicas they give global-batch means).
    metrics: the names fn returns.
    interval: the phase runs on the steps whose counter, read before the
      step, is a multiple of it (1: every step).
  """
  fn: Callable[[dict[str, tf.Tensor]], dict[str, tf.Tensor]]
  metrics: tuple[str, ...]
  interval: int = 1


def _compiled_augmentation(augmentation: augment_lib.Augmentation | None,
                           global_batch: int):
  """augment(images [b, ...], p, seed, first row) as one graph function.

  A step evaluates D several times (reals, fakes, penalties, G's update),
  on every replica; ADA's pipeline is a thousand ops. Traced once as a
  function, each evaluation calls it instead of building it again, and its
  first and second derivatives are built once too.
  """
  if augmentation is None:
    return None

  @tf.function(autograph=False)
  def augment(images, p, seed, first):
    rows = lambda draw: tf.gather(draw, first + tf.range(images.shape[0]))
    return augmentation(images, p,
                        augment_lib.Draws(seed, global_batch, rows=rows))

  return augment


class _Judge:
  """D's logits through the augmentation, with fresh draws at every call.

  One is made per update inside the replica function, so every replica
  numbers its calls alike: the k-th call of update u at step t draws from
  (seed, AUGMENT, t, u, k), for the global batch, and keeps this replica's
  rows. 1 and 2 replicas then augment a global batch identically.
  """

  def __init__(self, d: keras.Model, augment, p: tf.Variable, seed: int,
               step: tf.Tensor, update: int):
    self._d, self._augment, self._p = d, augment, p
    self._seed, self._step, self._update, self._calls = seed, step, update, 0

  def __call__(self, images: tf.Tensor, labels: tf.Tensor | None) -> tf.Tensor:
    if self._augment is not None:
      seed = state_lib.stream_seed(self._seed, state_lib.AUGMENT, self._step,
                                   self._update, self._calls)
      self._calls += 1
      context = tf.distribute.get_replica_context()
      first = tf.cast(context.replica_id_in_sync_group,
                      tf.int32) * images.shape[0]
      images = self._augment(images, self._p.read_value(), seed, first)
    return state_lib.judge(self._d, images, labels, training=True)


def _penalty_terms(group: losses_lib.PenaltyGroup, inputs,
                   state: state_lib.GanState,
                   penalties_config: ml_collections.ConfigDict
                   ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
  """The group's weighted per-example sum [b] and each penalty's raw term.

  `inputs` (PenaltyInputs or GeneratorInputs) gets each penalty's settings
  and state; the raw terms are per example, the state's values scalars.
  """
  total, raw = 0.0, {}
  for name, penalty, weight in group.penalties:
    term = penalty.term(dataclasses.replace(
        inputs, settings=penalties_config[name],
        state=state.penalties.variables_of.get(name, {})))  # [b]
    raw[f"penalties/{name}"] = term
    weight = state.schedules.get(f"penalties.{name}.weight", weight)
    total += penalty.scale * tf.cast(weight, term.dtype) * term
  return total, raw


def _group_metrics(group: losses_lib.PenaltyGroup,
                   state: state_lib.GanState) -> tuple[str, ...]:
  """The metrics of a group's penalties: raw terms, then state values."""
  names = tuple(f"penalties/{name}" for name, _, _ in group.penalties)
  return names + tuple(
      metric for name, _, _ in group.penalties
      for metric in state.penalties.metrics()
      if metric.startswith(f"penalties/{name}_"))


def lazy_norm_name(group: losses_lib.PenaltyGroup) -> str:
  """The metric of a lazy group's gradient norm: grad_norm/d_r1, ..."""
  return f"grad_norm/{group.network}_" + "_".join(
      name for name, _, _ in group.penalties)


def make_phases(state: state_lib.GanState, config: ml_collections.ConfigDict,
                global_batch: int) -> list[Phase]:
  """The phases of one training step, in order, for a resolved config.

  `real` is one replica's element of the input pipeline: {"image": [n_disc,
  b, H, W, C], "label": [n_disc, b]}; the labels are used only by
  class-conditional networks. The phases:
  - D's n_disc updates, each with D's eager penalties (interval 1) in its
    loss; with `train.simultaneous`, G's update from the same pass;
  - for each lazy group of D's penalties (interval N), one more update of D
    with N times the group's terms, on the steps k * N (StyleGAN2's lazy
    regularization; the optimizer's rate and betas are corrected for it in
    state.build_state);
  - G's update against the updated D on fresh fakes (unless simultaneous),
    with G's eager penalties in its loss;
  - for each lazy group of G's penalties (the path length), one more update
    of G, as D's;
  - the moving average G_ema and the step counter.
  Every update draws its noise and augmentation from its own number: D's
  0 ... n_disc - 1, G's n_disc, then D's lazy groups, then G's groups.
  """
  loss = losses_lib.LOSSES.get(config.model.loss)
  d_groups = losses_lib.penalty_groups(config.penalties, "d")
  g_groups = losses_lib.penalty_groups(config.penalties, "g")
  d_eager = [group for group in d_groups if group.interval == 1]
  d_lazy = [group for group in d_groups if group.interval > 1]
  g_eager = [group for group in g_groups if group.interval == 1]
  g_lazy = [group for group in g_groups if group.interval > 1]
  augment = _compiled_augmentation(
      augment_lib.build(config.augment.name, config.augment.groups),
      global_batch)
  g, d = state.generator, state.discriminator
  split = ARCHITECTURES.get(config.model.architecture).split(g)
  seed, n_disc = config.seed, config.train.n_disc
  conditional = bool(config.model.num_classes)
  g_update_number = {id(group): n_disc + 1 + len(d_lazy) + i
                     for i, group in enumerate(g_groups)}

  def replicas() -> int:
    return tf.distribute.get_replica_context().num_replicas_in_sync

  def average(per_example: tf.Tensor) -> tf.Tensor:
    """This replica's share of the global mean of per-example values [b]."""
    return tf.nn.compute_average_loss(
        per_example, global_batch_size=per_example.shape[0] * replicas())

  def global_mean(per_example: tf.Tensor) -> tf.Tensor:
    context = tf.distribute.get_replica_context()
    return context.all_reduce(tf.distribute.ReduceOp.SUM,
                              average(per_example))

  def penalty_metrics(raw: dict[str, tf.Tensor], group) -> dict:
    values = {name: average(term) for name, term in raw.items()}
    state_values = state.penalties.metrics()
    for name in _group_metrics(group, state):
      if name in state_values:  # equal on every replica
        values[name] = state_values[name].read_value() / replicas()
    return values

  def judge_for(step, update: int) -> _Judge:
    return _Judge(d, augment, state.augment.p, seed, step, update)

  def real_batch(real, k):
    return real["image"][k], real["label"][k] if conditional else None

  def fakes(step, k):
    """Generated images with no path to G, their labels."""
    z, labels = _fake_inputs(config, global_batch, step, k)
    return tf.stop_gradient(state_lib.generate(g, z, labels,
                                               training=True)), labels

  def d_penalty_inputs(judge, images, real_labels, fake, fake_labels, step,
                       k) -> losses_lib.PenaltyInputs:
    # G's images are float32; without fakes (a group on reals alone) so are
    # the reals given to the penalties.
    return losses_lib.PenaltyInputs(
        judge=judge, real=tf.cast(images, tf.float32),
        real_labels=real_labels,
        fake=None if fake is None else tf.stop_gradient(fake),
        fake_labels=fake_labels,
        seed=state_lib.stream_seed(seed, state_lib.PENALTY, step, k),
        settings=None, state=None, mean=global_mean)

  def g_penalty_inputs(step, group) -> losses_lib.GeneratorInputs:
    k = g_update_number[id(group)]

    def latents(count: int):
      z, labels = _fake_inputs(config, count, step, k)
      return split.to_w(z, labels, True), labels, z

    return losses_lib.GeneratorInputs(
        latents=latents,
        synthesize=lambda w, labels, z: tf.cast(
            split.synthesize(w, labels, True, noise_of=z), tf.float32),
        rows=_replica_rows, batch=global_batch,
        seed=state_lib.stream_seed(seed, state_lib.PENALTY, step, k),
        settings=None, state=None, mean=global_mean)

  def d_loss_of(judge, images, real_labels, fake, fake_labels, step, k):
    """D's loss with the eager penalties; its logits and named metrics."""
    real_logits = judge(images, real_labels)
    fake_logits = judge(fake, fake_labels)
    per_example = loss.discriminator(real_logits, fake_logits)
    metrics = {}
    for group in d_eager:
      terms, raw = _penalty_terms(group, d_penalty_inputs(
          judge, images, real_labels, fake, fake_labels, step, k), state,
                                  config.penalties)
      per_example += terms
      metrics.update(penalty_metrics(raw, group))
    return average(per_example), real_logits, fake_logits, metrics

  def g_penalties_of(step) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """G's eager penalties: their share of G's loss and their metrics."""
    total, metrics = 0.0, {}
    for group in g_eager:
      terms, raw = _penalty_terms(group, g_penalty_inputs(step, group), state,
                                  config.penalties)
      total += average(terms)
      metrics.update(penalty_metrics(raw, group))
    return total, metrics

  def d_metrics(d_loss, real_logits, fake_logits, d_norm, rt_sum, penalties):
    return {"losses/d": d_loss,
            "d_output/real": average(tf.sigmoid(real_logits)),
            "d_output/fake": average(tf.sigmoid(fake_logits)),
            "grad_norm/d": d_norm / replicas(),
            # E[sign(D(real))] on the augmented reals: ADA's r_t.
            "augment/rt": rt_sum / n_disc, **penalties}

  def d_updates(real):
    """n_disc updates of D on fresh fakes."""
    step = state.step.read_value()
    rt_sum = 0.0
    for k in range(n_disc):
      images, real_labels = real_batch(real, k)
      fake, fake_labels = fakes(step, k)
      with tf.GradientTape() as tape:
        d_loss, real_logits, fake_logits, penalties = d_loss_of(
            judge_for(step, k), images, real_labels, fake, fake_labels, step,
            k)
        scaled = state.d_optimizer.scale_loss(d_loss)
      d_norm = _apply(state.d_optimizer, tape, scaled, d.trainable_variables)
      rt_sum += average(tf.sign(real_logits))
    return d_metrics(d_loss, real_logits, fake_logits, d_norm, rt_sum,
                     penalties)

  def g_update(real):
    """G's update against the updated D on fresh fakes."""
    step = state.step.read_value()
    z, fake_labels = _fake_inputs(config, global_batch, step, n_disc)
    judge = judge_for(step, n_disc)
    real_logits = None
    if loss.generator_needs_real:
      images, real_labels = real_batch(real, n_disc - 1)
      real_logits = tf.stop_gradient(judge(images, real_labels))
    with tf.GradientTape() as tape:
      g_logits = judge(state_lib.generate(g, z, fake_labels, training=True),
                       fake_labels)
      g_loss = average(loss.generator(real_logits, g_logits))
      g_penalty, penalties = g_penalties_of(step)
      scaled = state.g_optimizer.scale_loss(g_loss + g_penalty)
    g_norm = _apply(state.g_optimizer, tape, scaled, g.trainable_variables)
    return {"losses/g": g_loss, "grad_norm/g": g_norm / replicas(),
            **penalties}

  def simultaneous(real):
    """One batch of fakes and one pass of D give both losses (n_disc = 1).

    G's loss is taken from D's logits before D's update, as in the
    TensorFlow DCGAN tutorial: G and D forward once each, a quarter less
    work per step than alternating updates for the DCGAN.
    """
    step = state.step.read_value()
    images, real_labels = real_batch(real, 0)
    z, fake_labels = _fake_inputs(config, global_batch, step, 0)
    with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
      with d_tape.stop_recording():  # D's tape needs no path into G.
        fake = state_lib.generate(g, z, fake_labels, training=True)
        g_penalty, g_penalties = g_penalties_of(step)
      d_loss, real_logits, fake_logits, penalties = d_loss_of(
          judge_for(step, 0), images, real_labels, fake, fake_labels, step, 0)
      g_loss = average(loss.generator(tf.stop_gradient(real_logits),
                                      fake_logits))
      d_scaled = state.d_optimizer.scale_loss(d_loss)
      g_scaled = state.g_optimizer.scale_loss(g_loss + g_penalty)
    d_norm = _apply(state.d_optimizer, d_tape, d_scaled, d.trainable_variables)
    g_norm = _apply(state.g_optimizer, g_tape, g_scaled, g.trainable_variables)
    return {**d_metrics(d_loss, real_logits, fake_logits, d_norm,
                        average(tf.sign(real_logits)), penalties),
            "losses/g": g_loss, "grad_norm/g": g_norm / replicas(),
            **g_penalties}

  def d_lazy_update(group: losses_lib.PenaltyGroup, index: int):
    """D's update with N times the group's penalties alone."""
    update = n_disc + 1 + index  # numbers its noise and augmentation draws

    def fn(real):
      step = state.step.read_value()
      images, real_labels = real_batch(real, 0)
      # Only penalties on fakes (r2, gp) need G's images: R1 alone would
      # otherwise pay a G forward pass, and move w's average, for nothing.
      fake, fake_labels = (fakes(step, update) if any(
          penalty.needs_fake for _, penalty, _ in group.penalties)
                           else (None, None))
      with tf.GradientTape() as tape:
        terms, raw = _penalty_terms(group, d_penalty_inputs(
            judge_for(step, update), images, real_labels, fake, fake_labels,
            step, update), state, config.penalties)
        scaled = state.d_optimizer.scale_loss(
            average(group.interval * terms))
      norm = _apply(state.d_optimizer, tape, scaled, d.trainable_variables)
      return {lazy_norm_name(group): norm / replicas(),
              **penalty_metrics(raw, group)}

    return fn

  def g_lazy_update(group: losses_lib.PenaltyGroup):
    """G's update with N times the group's penalties alone."""

    def fn(real):
      del real
      step = state.step.read_value()
      with tf.GradientTape() as tape:
        terms, raw = _penalty_terms(group, g_penalty_inputs(step, group),
                                    state, config.penalties)
        scaled = state.g_optimizer.scale_loss(
            average(group.interval * terms))
      norm = _apply(state.g_optimizer, tape, scaled, g.trainable_variables)
      return {lazy_norm_name(group): norm / replicas(),
              **penalty_metrics(raw, group)}

    return fn

  def finish(real):
    del real
    step = state.step.read_value()
    _update_ema(state, ema_rate(config, state.schedules, step))
    state.step.assign_add(1)
    return {}

  jit = ((lambda fn: tf.function(fn, jit_compile=True, autograph=False))
         if config.runtime.jit_compile else (lambda fn: fn))
  group_names = lambda groups: tuple(
      name for group in groups for name in _group_metrics(group, state))
  d_names = ("losses/d", "d_output/real", "d_output/fake", "grad_norm/d",
             "augment/rt") + group_names(d_eager)
  g_names = ("losses/g", "grad_norm/g") + group_names(g_eager)
  if config.train.simultaneous:
    phases = [Phase(jit(simultaneous), d_names + g_names)]
  else:
    phases = [Phase(jit(d_updates), d_names)]
  phases += [Phase(jit(d_lazy_update(group, i)),
                   (lazy_norm_name(group),) + group_names([group]),
                   group.interval) for i, group in enumerate(d_lazy)]
  if not config.train.simultaneous:
    phases.append(Phase(jit(g_update), g_names))
  phases += [Phase(jit(g_lazy_update(group)),
                   (lazy_norm_name(group),) + group_names([group]),
                   group.interval) for group in g_lazy]
  return phases + [Phase(finish, ())]


def _adapt_p(augment: state_lib.AugmentState, settings, rt: tf.Tensor,
             step: tf.Tensor, batch: int) -> None:
  """ADA: every `interval` steps p moves toward the target of r_t.

  r_t is the mean of the per-step E[sign(D(real))] since the last
  adjustment; p moves by batch * interval / (speed_kimg * 1000) per
  adjustment, so that it can cross [0, 1] in speed_kimg thousand images.
  """
  augment.rt_sum.assign_add(rt)
  augment.rt_count.assign_add(1.0)
  due = (step + 1) % settings.interval == 0
  mean_rt = augment.rt_sum / augment.rt_count
  speed = batch * settings.interval / (settings.speed_kimg * 1000.0)
  moved = tf.clip_by_value(
      augment.p + tf.sign(mean_rt - settings.target) * speed, 0.0, 1.0)
  augment.p.assign(tf.where(due, moved, augment.p))
  augment.rt_sum.assign(tf.where(due, 0.0, augment.rt_sum))
  augment.rt_count.assign(tf.where(due, 0.0, augment.rt_count))


# How p follows the run, by augment.p_mode (after each step, outside the
# replicas, from metrics reduced over the global batch). A fixed p may follow
# schedules.augment.p, which the scheduled values assign before each step.
_P_RULES = {"adaptive": _adapt_p,
            "fixed": lambda augment, settings, rt, step, batch: None}


def _run_phases(phases: list[Phase], run, element, step: tf.Tensor
                ) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
  """Runs one step's phases; returns its metrics and whether each ran (1/0).

  A lazy phase runs under tf.cond, outside the replicas (its collectives
  cannot sit in a replica's control flow); every replica and worker sees the
  same step, so all take the same branch.
  """
  metrics, ran = {}, {}
  for phase in phases:
    if phase.interval == 1:
      values, done = run(phase, element), tf.constant(1.0)
    else:
      due = step % phase.interval == 0
      values = tf.cond(
          due, lambda phase=phase: run(phase, element),
          lambda phase=phase: {n: tf.constant(0.0) for n in phase.metrics})
      done = tf.cast(due, tf.float32)
    for name, value in values.items():
      metrics[name] = tf.cast(value, tf.float32)
      ran[name] = done
  return metrics, ran


def make_train_loop(strategy: tf.distribute.Strategy, phases: list[Phase],
                    before_step: Callable[[tf.Tensor], None],
                    after_step: Callable[[dict, tf.Tensor], None]):
  """Returns loop(iterator, num_steps, first_step) -> (sums, counts, bad).

  Steps are numbered as in the log and the checkpoints: step n is the n-th
  step, so this call runs steps first_step + 1 ... first_step + num_steps.
  `sums` and `counts` give each metric's sum over the steps it was computed
  on (a lazy phase's metrics only on its steps) and their number. The first
  bad step is the first of them with a NaN or Inf loss or penalty, or -1.
  `before_step(step)` runs outside the replicas before every step (the
  scheduled values), `after_step(metrics, step)` after it, with the global
  metrics and the step's counter as read before the step.
  """
  names = [name for phase in phases for name in phase.metrics]
  # The losses and penalties; not the gradient norms, which are Inf on the
  # steps where float16's loss scaling overflows (and skips the update).
  checked = [name for name in names if name.startswith(("losses/",
                                                        "penalties/"))]

  def run(phase, element):
    # Only this loop needs autograph (its `for` over a tensor). The phases'
    # Python control flow is on Python values, so converting their call tree
    # again in every process would only cost time: about 1 s of a tiny run.
    per_replica = strategy.run(
        tf.autograph.experimental.do_not_convert(phase.fn), args=(element,))
    return {name: strategy.reduce(tf.distribute.ReduceOp.SUM,
                                  per_replica[name], axis=None)
            for name in phase.metrics}

  @tf.function
  def loop(iterator, num_steps: tf.Tensor, first_step: tf.Tensor):
    # Every loop variable has its final type before the loop. Otherwise
    # autograph traces the body (the whole step) once more, only to learn
    # the types: 40% more time to the first step.
    sums = {name: tf.constant(0.0) for name in names}
    counts = {name: tf.constant(0.0) for name in names}
    first_bad = tf.constant(-1, tf.int64)
    for i in tf.range(num_steps):
      element = next(iterator)
      step = first_step + tf.cast(i, tf.int64)
      before_step(step)
      metrics, ran = _run_phases(phases, run, element, step)
      after_step(metrics, step)
      finite = tf.reduce_all([tf.math.is_finite(metrics[name])
                              for name in checked])
      first_bad = tf.where((first_bad < 0) & ~finite, step + 1, first_bad)
      # New dicts, not item assignments: autograph carries only rebound
      # names from one iteration to the next.
      sums = {name: sums[name] + metrics[name] * ran[name] for name in names}
      counts = {name: counts[name] + ran[name] for name in names}
    return sums, counts, first_bad

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
  p_rule = _P_RULES[config.augment.p_mode]
  augmentation = augment_lib.build(config.augment.name, config.augment.groups)
  uses_p = augmentation is not None and augmentation.uses_p

  def after_step(metrics: dict, step: tf.Tensor) -> None:
    p_rule(state.augment, config.augment, metrics["augment/rt"], step,
           global_batch)

  loop = make_train_loop(strategy, make_phases(state, config, global_batch),
                         state.schedules.update, after_step)

  def train_steps(num_steps: int) -> tuple[dict[str, float], int]:
    first_step = tf.constant(int(state.step.numpy()), tf.int64)
    sums, counts, first_bad = loop(iterator, tf.constant(num_steps),
                                   first_step)
    # The means over the steps each metric was computed on; a lazy phase
    # that did not run in these steps has none.
    metrics = {name: float(sums[name]) / float(counts[name])
               for name in sums if float(counts[name])}
    if uses_p:
      metrics["augment/p"] = float(state.augment.p.numpy())
    metrics.update(state.schedules.summaries())
    if source.skipped():
      metrics["data/skipped_images"] = float(source.skipped())
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
  that a run resumed with another rate uses that rate (with the lazy
  penalties' correction, state.learning_rates).
  """
  rates = state_lib.learning_rates(config)
  for optimizer, net in ((state.g_optimizer, "g"), (state.d_optimizer, "d")):
    if f"optim.{net}_lr" in state.schedules:
      continue  # the schedule assigns it before every step
    wanted = rates[net]
    restored = float(optimizer.learning_rate.numpy())
    if not np.isclose(restored, wanted, rtol=1e-6):
      logging.info("optim.%s_lr: %g from the config replaces %g from the "
                   "checkpoint", net, wanted, restored)
      optimizer.learning_rate = wanted


def _check_batch(config: ml_collections.ConfigDict, replicas: int) -> None:
  """The global batch, and each G penalty's share of it, split evenly."""
  global_batch = config.train.batch_size
  if global_batch % replicas:
    raise UserError(
        f"train.batch_size={global_batch} is not divisible by the "
        f"{replicas} replicas; use a multiple of {replicas}")
  for group in losses_lib.penalty_groups(config.penalties, "g"):
    for name, penalty, _ in group.penalties:
      settings = config.penalties[name]
      count = penalty.examples(settings, global_batch)
      if count % replicas or count < 1:
        raise UserError(
            f"penalties.{name}.batch_shrink={settings.get('batch_shrink', 1)} "
            f"leaves {count} of train.batch_size={global_batch} "
            f"examples, which the {replicas} replica(s) cannot share; use a "
            f"batch_shrink that leaves a positive multiple of {replicas}")


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
      tfds_data_dir=data.tfds_data_dir, tfds_download=data.tfds_download,
      on_bad_image=data.on_bad_image))


def run(config: ml_collections.ConfigDict, workdir: str,
        strategy: tf.distribute.Strategy,
        stop_requested: Callable[[], bool] | None = None) -> state_lib.GanState:
  """Trains until `train.steps`, resuming from the workdir.

  Args:
    config: the experiment config (resolved here: config.resolve).
    workdir: checkpoints, summaries and config.json.
    strategy: the distribution strategy.
    stop_requested: polled after every call of the compiled loop (e.g. "was
      SIGTERM or Ctrl-C received", trainer/signals.py); when it is True on
      any task, all tasks save a checkpoint at the current step and raise
      Preempted.

  Returns:
    The training state at the end (its `step` is train.steps).

  Raises:
    UserError: bad config, data or workdir; raised before anything is written.
    NonFiniteLoss: a loss became NaN or Inf (no checkpoint is written after).
    Preempted: stop_requested() became True; the current step was saved.
    ClusterFailure: another task stopped; the last checkpoint is intact.
    BadImage: an image could not be read (data.on_bad_image=stop); the last
      checkpoint is intact.
  """
  config = config_lib.resolve(config)
  _check_batch(config, strategy.num_replicas_in_sync)
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
  with _bad_images(checkpointer, lambda index: (
      f"at start, reading the first {config.train.histogram_samples} "
      "examples for D's histograms")):
    monitor = monitor_lib.Monitor(strategy, state, config,
                                  pipeline.first_examples(
                                      source, config.train.histogram_samples))
  progress = summaries.Progress(total_steps=config.train.steps,
                                examples_per_step=config.train.batch_size,
                                start_step=step)
  logging.info("Training from step %d to %d on %s", step, config.train.steps,
               source.description)
  if step == 0:
    monitor.write(writer, step)
    if evaluator is not None and config.train.eval_at_start:
      # The untrained G's metrics: the curves' starting point. A run
      # stopped before its first checkpoint starts again from the same
      # untrained G and has them already: every worker still evaluates
      # (the evaluation's collectives need them all), and the chief, which
      # alone reads and writes the records, does not write them twice.
      evaluator.evaluate(step, record=chief and 0 not in
                         evaluation.evaluated_steps(workdir))
      progress.restart(step)
  any_task = make_agreement(strategy) if stop_requested else None
  while step < config.train.steps:
    stop = _next_stop(step, config)
    # Any collective can be the first to meet a lost peer: the training
    # steps, a checkpoint's, an evaluation's or the stop agreement.
    with _peer_failures(checkpointer), _bad_images(
        checkpointer, _step_reading(config, source, step)):
      metrics, first_bad = train_steps(stop - step)
      if first_bad >= 0:
        writer.flush()
        raise NonFiniteLoss(
            f"a loss became NaN or Inf at step {first_bad}; training stopped, "
            f"{_last_checkpoint(checkpointer)}")
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


def _last_checkpoint(checkpointer: checkpoint_lib.Checkpointer) -> str:
  return (f"the last good checkpoint is {checkpointer.latest} (nothing was "
          "saved after it)" if checkpointer.latest
          else "no checkpoint had been written yet")


def _step_reading(config: ml_collections.ConfigDict, source: sources.Source,
                  start_step: int) -> Callable[[int], str]:
  """Says at which step after `start_step` the example of an index is read.

  The input pipeline reads ahead, but it hands an element's error over only
  when that element is taken: at the first step that reads the index.
  """

  def where(index: int) -> str:
    step = pipeline.first_step_reading(
        index, source.num_examples, seed=config.seed,
        shuffle=config.data.shuffle, start_step=start_step,
        global_batch=config.train.batch_size, n_disc=config.train.n_disc)
    return f"at step {step}"

  return where


@contextlib.contextmanager
def _bad_images(checkpointer: checkpoint_lib.Checkpointer,
                where: Callable[[int], str]):
  """Turns a folder image that cannot be read into BadImage.

  Args:
    checkpointer: says which checkpoint is the last good one.
    where: says where the example of an index was met ("at step 7").
  """
  try:
    yield
  except tf.errors.OpError as e:
    bad = sources.bad_image_in(e)
    if bad is None:
      raise
    raise BadImage(
        f"cannot read image {bad.path} ({bad.reason}), met {where(bad.index)}"
        f"; training stopped, {_last_checkpoint(checkpointer)}. Replace or "
        "remove the file, or set data.on_bad_image=skip") from None


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
    augment = f" r_t {values['augment/rt']:.3f}"
    if "augment/p" in values:
      augment += f" p {values['augment/p']:.3f}"
    logging.info(
        "step %d/%d | %.1f examples/sec | d_loss %.4f g_loss %.4f | "
        "D(real) %.3f D(fake) %.3f |%s | time left %s", step, train.steps,
        values["perf/examples_per_sec"], values["losses/d"],
        values["losses/g"], values["d_output/real"], values["d_output/fake"],
        augment, summaries.format_duration(values["progress/seconds_left"]))
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
