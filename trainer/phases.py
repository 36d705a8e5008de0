"""The phases of a training step, built from the config.

A step is the phases of `make_phases`, run in order: the scheduled values,
D's update (its loss with the eager penalties), one more update of D for
each lazy group of D's penalties on its steps, G's update, one more of G for
each lazy group of G's penalties, the moving average G_ema with the step
counter, and ADA's probability p. Each kind of phase is a registered entry
(`phase_kind`): a new kind (a second G_ema) is one more registered
builder, not an edit of the step. Every update goes through one helper,
`Parts.update`: tape, loss scaling, one all-reduce of the gradients, apply,
the gradient norm; it trains `Parts.trained`, which leaves out the layers of
D that train.freeze_d freezes (trainer/models/freezing.py), so every phase
of D honours them. trainer/step.py runs the phases, several steps per call.
"""

import dataclasses
import functools
from typing import Callable, NamedTuple

import keras
import ml_collections
import tensorflow as tf

from trainer import augment as augment_lib
from trainer import config as config_lib
from trainer import losses as losses_lib
from trainer import models
from trainer.models import freezing
from trainer.penalties import base as penalties_lib
from trainer import random_streams
from trainer import schedules as schedules_lib
from trainer import state as state_lib

Metrics = dict[str, tf.Tensor]


@dataclasses.dataclass(frozen=True)
class Phase:
  """One named part of a training step.

  Attributes:
    name: "d", "d_r1", "g", "g_pl", "ema", ... (the metrics of its gradient
      norm are named after it).
    fn: with `replicated`, real -> {name: float32 scalar}, this replica's
      share of each metric (summed over the replicas they give global-batch
      means), run as `strategy.run(fn, (real,))`; otherwise (metrics of the
      phases before it, step) -> {}, run outside the replicas.
    interval: the phase runs on the steps whose counter, read before the
      step, is a multiple of it (1: every step).
    replicated: whether fn runs on every replica.
  """
  name: str
  fn: Callable[..., Metrics]
  interval: int = 1
  replicated: bool = True


def apply_gradients(optimizer: keras.optimizers.Optimizer,
                    tape: tf.GradientTape, scaled_loss: tf.Tensor,
                    variables: list) -> tf.Tensor:
  """Applies the gradients of one update; returns their global norm.

  The gradients are summed over replicas here, once, so that the norm is the
  global one; the optimizer (optimizer.Adam) takes them as they are. Only
  `variables` are differentiated and updated: the optimizer's slots of any
  others it was built with (D's frozen layers) stay as they are.
  """
  if not variables:  # train.freeze_d froze all of D
    return tf.constant(0.0)
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
      seed = random_streams.stream_seed(
          self._seed, random_streams.AUGMENT, self._step, self._update,
          self._calls)
      self._calls += 1
      context = tf.distribute.get_replica_context()
      first = tf.cast(context.replica_id_in_sync_group,
                      tf.int32) * images.shape[0]
      images = self._augment(images, self._p.read_value(), seed, first)
    return models.judge(self._d, images, labels, training=True)


class Parts:
  """What the phases of one step are made of, for a resolved config.

  `real` below is one replica's element of the input pipeline: {"image":
  [n_disc, b, H, W, C], "label": [n_disc, b]}; the labels are used only by
  class-conditional networks.

  Draw numbers: every update draws its noise, labels, augmentation and
  penalty randomness from its own number, handed out once here: D's
  updates 0 ... n_disc - 1, G's n_disc, then each lazy group of D's
  penalties, then each group of G's (eager ones included: their draws are
  their own). A phase kind registered later takes `draws.take()` after
  these.
  """

  def __init__(self, state: state_lib.GanState,
               config: ml_collections.ConfigDict, global_batch: int):
    self.state, self.config, self.global_batch = state, config, global_batch
    self.loss = losses_lib.LOSSES.get(config.model.loss)
    self.groups = {net: penalties_lib.penalty_groups(config.penalties, net)
                   for net in ("d", "g")}
    self.split = models.ARCHITECTURES.get(config.model.architecture).split(
        state.generator)
    # What each network's updates train: G whole, D less the layers that
    # train.freeze_d freezes.
    self.trained = {"g": state.generator.trainable_variables,
                    "d": freezing.trained_variables(config,
                                                    state.discriminator)}
    self.n_disc = config.train.n_disc
    self.conditional = bool(config.model.num_classes)
    self._augment = _compiled_augmentation(
        augment_lib.build(config.augment.name, config.augment.groups),
        global_batch)
    self.draws = random_streams.DrawCounter()
    self.d_numbers = [self.draws.take() for _ in range(self.n_disc)]
    self.g_number = self.draws.take()
    self.group_numbers = {group: self.draws.take() for group in (
        self.lazy("d") + self.groups["g"])}

  def eager(self, net: str) -> list[penalties_lib.PenaltyGroup]:
    return [group for group in self.groups[net] if group.interval == 1]

  def lazy(self, net: str) -> list[penalties_lib.PenaltyGroup]:
    return [group for group in self.groups[net] if group.interval > 1]

  # Reductions. Metrics are this replica's shares: summed over the replicas
  # they give global-batch means.

  @staticmethod
  def replicas() -> int:
    return tf.distribute.get_replica_context().num_replicas_in_sync

  def average(self, per_example: tf.Tensor) -> tf.Tensor:
    """This replica's share of the global mean of per-example values [b]."""
    return tf.nn.compute_average_loss(
        per_example,
        global_batch_size=per_example.shape[0] * self.replicas())

  def global_mean(self, per_example: tf.Tensor) -> tf.Tensor:
    context = tf.distribute.get_replica_context()
    return context.all_reduce(tf.distribute.ReduceOp.SUM,
                              self.average(per_example))

  # The one update helper.

  def update(self, net: str, objective: Callable[[], tuple[tf.Tensor, object]]
             ) -> tuple[tf.Tensor, object]:
    """One update of G ("g") or D ("d") on the loss `objective` returns.

    Args:
      net: which network and optimizer.
      objective: () -> (this replica's share of the loss, anything else the
        phase wants back), evaluated on the tape.

    Returns:
      This replica's share of the update's gradient norm, and the rest of
      what objective returned.
    """
    optimizer = self.optimizer(net)
    with tf.GradientTape() as tape:
      loss, rest = objective()
      scaled = optimizer.scale_loss(loss)
    norm = apply_gradients(optimizer, tape, scaled, self.trained[net])
    return norm / self.replicas(), rest

  def optimizer(self, net: str) -> keras.optimizers.Optimizer:
    return self.state.g_optimizer if net == "g" else self.state.d_optimizer

  # Inputs of the losses and penalties.

  def judge(self, step: tf.Tensor, number: int) -> _Judge:
    return _Judge(self.state.discriminator, self._augment,
                  self.state.augment.p, self.config.seed, step, number)

  def real_batch(self, real, k: int):
    return real["image"][k], real["label"][k] if self.conditional else None

  def fake_inputs(self, step: tf.Tensor, number: int, count: int = 0):
    """This replica's noise and labels of draw `number` (count: global)."""
    model = self.config.model
    return random_streams.fake_inputs(
        seed=self.config.seed, latent_dim=model.latent_dim,
        num_classes=model.num_classes, global_batch=count or self.global_batch,
        step=step, number=number)

  def generate(self, z: tf.Tensor, labels: tf.Tensor | None) -> tf.Tensor:
    return models.generate(self.state.generator, z, labels, training=True)

  def fakes(self, step: tf.Tensor, number: int):
    """Generated images with no path to G, their labels."""
    z, labels = self.fake_inputs(step, number)
    return tf.stop_gradient(self.generate(z, labels)), labels

  def penalty_seed(self, step: tf.Tensor, number: int) -> tf.Tensor:
    return random_streams.stream_seed(self.config.seed,
                                      random_streams.PENALTY, step, number)

  def d_penalty_inputs(self, judge, images, real_labels, fake, fake_labels,
                       step, number) -> penalties_lib.PenaltyInputs:
    # G's images are float32; without fakes (a group on reals alone) so are
    # the reals given to the penalties.
    return penalties_lib.PenaltyInputs(
        judge=judge, real=tf.cast(images, tf.float32),
        real_labels=real_labels,
        fake=None if fake is None else tf.stop_gradient(fake),
        fake_labels=fake_labels, seed=self.penalty_seed(step, number),
        settings=None, state=None, mean=self.global_mean)

  def g_penalty_inputs(self, step, group) -> penalties_lib.GeneratorInputs:
    number, split = self.group_numbers[group], self.split

    def latents(count: int):
      z, labels = self.fake_inputs(step, number, count)
      return split.to_w(z, labels, True), labels, z

    return penalties_lib.GeneratorInputs(
        latents=latents,
        synthesize=lambda w, labels, z: tf.cast(
            split.synthesize(w, labels, True, noise_of=z), tf.float32),
        rows=random_streams.replica_rows, batch=self.global_batch,
        seed=self.penalty_seed(step, number), settings=None, state=None,
        mean=self.global_mean)

  # Penalty groups.

  def penalties(self, group: penalties_lib.PenaltyGroup, inputs
                ) -> tuple[tf.Tensor, Metrics]:
    """The group's weighted per-example sum [b] and its metrics.

    `inputs` (PenaltyInputs or GeneratorInputs) gets each penalty's settings
    and state. The metrics: each penalty's raw term as penalties/<name>,
    then the values of its state as penalties/<name>_<variable>.
    """
    state, total, metrics = self.state, 0.0, {}
    for name, penalty, weight in group.penalties:
      variables = state.penalties.variables_of.get(name, {})
      term = penalty.term(dataclasses.replace(
          inputs, settings=self.config.penalties[name], state=variables))
      metrics[f"penalties/{name}"] = self.average(term)  # term: [b]
      weight = state.schedules.get(f"penalties.{name}.weight", weight)
      total += penalty.scale * tf.cast(weight, term.dtype) * term
    for name, _, _ in group.penalties:
      for key, variable in state.penalties.variables_of.get(name, {}).items():
        # Equal on every replica.
        metrics[f"penalties/{name}_{key}"] = (variable.read_value()
                                              / self.replicas())
    return total, metrics


def group_name(group: penalties_lib.PenaltyGroup) -> str:
  """A lazy group's phase: d_r1, g_pl, d_r1_r2, ..."""
  return f"{group.network}_" + "_".join(name for name, _, _ in group.penalties)


# Phase kinds --------------------------------------------------------------

PhaseBuilder = Callable[[Parts], list[Phase]]


@dataclasses.dataclass(frozen=True)
class PhaseKind:
  name: str
  order: float
  build: PhaseBuilder


PHASE_KINDS: list[PhaseKind] = []


def phase_kind(name: str, order: float) -> Callable[[PhaseBuilder],
                                                    PhaseBuilder]:
  """Registers a builder of a kind of phase: Parts -> its phases.

  Builders are called in the order they were registered (a later one takes
  later draw numbers); their phases run in the order of `order`.
  """

  def add(build: PhaseBuilder) -> PhaseBuilder:
    if any(kind.name == name for kind in PHASE_KINDS):
      raise KeyError(f"phase kind {name!r} is registered twice")
    PHASE_KINDS.append(PhaseKind(name, order, build))
    return build

  return add


class _DPass(NamedTuple):
  """What one evaluation of D's loss gives besides its gradient."""
  loss: tf.Tensor  # this replica's share
  real_logits: tf.Tensor  # [b]
  fake_logits: tf.Tensor  # [b]
  penalties: Metrics  # of the eager penalties


def _d_loss(parts: Parts, judge, images, real_labels, fake, fake_labels,
            step, number) -> tuple[tf.Tensor, _DPass]:
  """D's loss with the eager penalties, and the pass that gave it."""
  real_logits = judge(images, real_labels)
  fake_logits = judge(fake, fake_labels)
  per_example = parts.loss.discriminator(real_logits, fake_logits)
  metrics = {}
  for group in parts.eager("d"):
    terms, group_metrics = parts.penalties(group, parts.d_penalty_inputs(
        judge, images, real_labels, fake, fake_labels, step, number))
    per_example += terms
    metrics.update(group_metrics)
  loss = parts.average(per_example)
  return loss, _DPass(loss, real_logits, fake_logits, metrics)


def _g_penalties(parts: Parts, step) -> tuple[tf.Tensor, Metrics]:
  """G's eager penalties: their share of G's loss and their metrics."""
  total, metrics = 0.0, {}
  for group in parts.eager("g"):
    terms, group_metrics = parts.penalties(
        group, parts.g_penalty_inputs(step, group))
    total += parts.average(terms)
    metrics.update(group_metrics)
  return total, metrics


def _d_metrics(parts: Parts, norm: tf.Tensor, last: _DPass,
               rt_sum: tf.Tensor) -> Metrics:
  """D's metrics from its last update, and r_t summed over its updates."""
  return {"losses/d": last.loss,
          "d_output/real": parts.average(tf.sigmoid(last.real_logits)),
          "d_output/fake": parts.average(tf.sigmoid(last.fake_logits)),
          "grad_norm/d": norm,
          # E[sign(D(real))] on the augmented reals: ADA's r_t.
          "augment/rt": rt_sum / parts.n_disc, **last.penalties}


@phase_kind("d", order=10)
def _d_phases(parts: Parts) -> list[Phase]:
  """D's n_disc updates on fresh fakes, or with `train.simultaneous` one
  pass of G and D that gives both updates."""

  def d_updates(real) -> Metrics:
    step = parts.state.step.read_value()
    rt_sum = 0.0
    for k, number in enumerate(parts.d_numbers):
      images, real_labels = parts.real_batch(real, k)
      fake, fake_labels = parts.fakes(step, number)
      norm, last = parts.update("d", functools.partial(
          _d_loss, parts, parts.judge(step, number), images, real_labels,
          fake, fake_labels, step, number))
      rt_sum += parts.average(tf.sign(last.real_logits))
    return _d_metrics(parts, norm, last, rt_sum)

  if parts.config.train.simultaneous:
    return [Phase("d_and_g", lambda real: _simultaneous(parts, real))]
  return [Phase("d", d_updates)]


def _simultaneous(parts: Parts, real) -> Metrics:
  """One batch of fakes and one pass of D give both losses (n_disc = 1).

  G's loss is taken from D's logits before D's update, as in the
  TensorFlow DCGAN tutorial: G and D forward once each, a quarter less work
  per step than alternating updates for the DCGAN. The two updates share
  one forward pass, so this is the one place with two tapes at once.
  """
  state = parts.state
  step = state.step.read_value()
  (number,) = parts.d_numbers
  images, real_labels = parts.real_batch(real, 0)
  z, fake_labels = parts.fake_inputs(step, number)
  with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
    with d_tape.stop_recording():  # D's tape needs no path into G.
      fake = parts.generate(z, fake_labels)
      g_penalty, g_penalties = _g_penalties(parts, step)
    d_loss, d_pass = _d_loss(parts, parts.judge(step, number), images,
                             real_labels, fake, fake_labels, step, number)
    g_loss = parts.average(parts.loss.generator(
        tf.stop_gradient(d_pass.real_logits), d_pass.fake_logits))
    d_scaled = state.d_optimizer.scale_loss(d_loss)
    g_scaled = state.g_optimizer.scale_loss(g_loss + g_penalty)
  d_norm = apply_gradients(state.d_optimizer, d_tape, d_scaled,
                           parts.trained["d"])
  g_norm = apply_gradients(state.g_optimizer, g_tape, g_scaled,
                           parts.trained["g"])
  return {**_d_metrics(parts, d_norm / parts.replicas(), d_pass,
                       parts.average(tf.sign(d_pass.real_logits))),
          "losses/g": g_loss, "grad_norm/g": g_norm / parts.replicas(),
          **g_penalties}


@phase_kind("g", order=30)
def _g_phases(parts: Parts) -> list[Phase]:
  """G's update against the updated D on fresh fakes, with G's eager
  penalties in its loss (none with train.simultaneous)."""

  def g_update(real) -> Metrics:
    step = parts.state.step.read_value()
    z, fake_labels = parts.fake_inputs(step, parts.g_number)
    judge = parts.judge(step, parts.g_number)
    real_logits = None
    if parts.loss.generator_needs_real:
      images, real_labels = parts.real_batch(real, parts.n_disc - 1)
      real_logits = tf.stop_gradient(judge(images, real_labels))

    def objective():
      g_logits = judge(parts.generate(z, fake_labels), fake_labels)
      g_loss = parts.average(parts.loss.generator(real_logits, g_logits))
      g_penalty, penalties = _g_penalties(parts, step)
      return g_loss + g_penalty, (g_loss, penalties)

    norm, (g_loss, penalties) = parts.update("g", objective)
    return {"losses/g": g_loss, "grad_norm/g": norm, **penalties}

  return [] if parts.config.train.simultaneous else [Phase("g", g_update)]


def _lazy_phase(parts: Parts, group: penalties_lib.PenaltyGroup,
                inputs_of: Callable) -> Phase:
  """An update of the group's network with N times its penalties alone
  (StyleGAN2's lazy regularization; the optimizer's rate and betas are
  corrected for it, optimizer.lazy_ratios).

  `inputs_of(real, step)` gives the penalties' inputs, before the tape.
  """
  name = group_name(group)

  def fn(real) -> Metrics:
    step = parts.state.step.read_value()
    inputs = inputs_of(real, step)

    def objective():
      terms, metrics = parts.penalties(group, inputs)
      return parts.average(group.interval * terms), metrics

    norm, metrics = parts.update(group.network, objective)
    return {f"grad_norm/{name}": norm, **metrics}

  return Phase(name, fn, group.interval)


@phase_kind("d_lazy", order=20)
def _d_lazy_phases(parts: Parts) -> list[Phase]:
  """One update of D per lazy group of D's penalties, on its steps."""

  def inputs_of(group):
    number = parts.group_numbers[group]

    def inputs(real, step) -> penalties_lib.PenaltyInputs:
      images, real_labels = parts.real_batch(real, 0)
      # Only penalties on fakes (r2, gp) need G's images: R1 alone would
      # otherwise pay a G forward pass, and move w's average, for nothing.
      fake, fake_labels = (parts.fakes(step, number) if any(
          penalty.needs_fake for _, penalty, _ in group.penalties)
                           else (None, None))
      return parts.d_penalty_inputs(parts.judge(step, number), images,
                                    real_labels, fake, fake_labels, step,
                                    number)

    return inputs

  return [_lazy_phase(parts, group, inputs_of(group))
          for group in parts.lazy("d")]


@phase_kind("g_lazy", order=40)
def _g_lazy_phases(parts: Parts) -> list[Phase]:
  """One update of G per lazy group of G's penalties (the path length)."""
  return [_lazy_phase(parts, group, lambda real, step, group=group:
                      parts.g_penalty_inputs(step, group))
          for group in parts.lazy("g")]


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


@phase_kind("ema", order=50)
def _ema_phases(parts: Parts) -> list[Phase]:
  """The moving average G_ema, then the step counter."""

  def finish(real) -> Metrics:
    del real
    state = parts.state
    step = state.step.read_value()
    _update_ema(state, ema_rate(parts.config, state.schedules, step))
    state.step.assign_add(1)
    return {}

  return [Phase("ema", finish)]


@phase_kind("schedules", order=0)
def _schedule_phases(parts: Parts) -> list[Phase]:
  """The scheduled values at the step, before anything reads them."""

  def assign(metrics: Metrics, step: tf.Tensor) -> Metrics:
    del metrics
    parts.state.schedules.update(step)
    return {}

  return [Phase("schedules", assign, replicated=False)]


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


@phase_kind("augment_p", order=60)
def _augment_p_phases(parts: Parts) -> list[Phase]:
  """ADA's p after the step (augment.p_mode=adaptive), outside the
  replicas, from D's r_t reduced over the global batch: one value for the
  whole cluster. A fixed p may follow schedules.augment.p instead."""
  if parts.config.augment.p_mode != "adaptive":
    return []

  def adapt(metrics: Metrics, step: tf.Tensor) -> Metrics:
    _adapt_p(parts.state.augment, parts.config.augment,
             metrics["augment/rt"], step, parts.global_batch)
    return {}

  return [Phase("augment_p", adapt, replicated=False)]


def make_phases(state: state_lib.GanState, config: ml_collections.ConfigDict,
                global_batch: int) -> list[Phase]:
  """The phases of one training step, in the order they run."""
  parts = Parts(state, config, global_batch)
  built = [(kind.order, phase) for kind in PHASE_KINDS
           for phase in kind.build(parts)]
  return [phase for _, phase in sorted(built, key=lambda pair: pair[0])]
