"""The whole training state, built once inside the strategy's scope.

Also the stateless random streams of a run: every random draw of training and
evaluation (noise, penalties, fixed grids) comes from the config's seed, a
purpose and counters, so a resumed run draws what an uninterrupted one would.
"""

import dataclasses

import keras
import ml_collections
import numpy as np
import tensorflow as tf

from trainer import losses as losses_lib
from trainer import schedules as schedules_lib
from trainer.models import ARCHITECTURES

# Purposes of stateless random streams, folded into the config's seed.
NOISE, PENALTY, FIXED_NOISE, EVAL_NOISE, LABELS, AUGMENT = 1, 2, 3, 4, 5, 6


class AugmentState(tf.Module):
  """The augmentation probability p and the overfitting signal's sums.

  p is one value for the whole cluster: it is only assigned outside the
  replicas, from sums reduced over the global batch.

  Attributes:
    p: the probability of each augmentation, float32 scalar.
    rt_sum: sum of the per-step r_t = E[sign(D(real))] since p's last
      adjustment; rt_count: how many steps it holds.
  """

  def __init__(self, p: float):
    super().__init__(name="augment")
    kwargs = dict(trainable=False,
                  aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    self.p = tf.Variable(p, dtype=tf.float32, name="p", **kwargs)
    self.rt_sum = tf.Variable(0.0, name="rt_sum", **kwargs)
    self.rt_count = tf.Variable(0.0, name="rt_count", **kwargs)


class PenaltyState(tf.Module):
  """The variables of the named penalties that keep state (Penalty.state).

  Attributes:
    variables_of: penalty name -> {variable name: float32 scalar variable};
      only penalties with state appear.
  """

  def __init__(self, penalties_config: ml_collections.ConfigDict):
    super().__init__(name="penalties")
    self.variables_of = {}
    for name in [n for n in penalties_config.names.split(",") if n]:
      penalty = losses_lib.PENALTIES.get(name)
      if penalty.state:
        # Assigned from values that are equal on every replica.
        self.variables_of[name] = {
            key: tf.Variable(value, dtype=tf.float32, trainable=False,
                             name=f"{name}_{key}",
                             aggregation=(
                                 tf.VariableAggregation.ONLY_FIRST_REPLICA))
            for key, value in penalty.state}

  def metrics(self) -> dict[str, tf.Variable]:
    """penalties/<name>_<variable> -> the variable."""
    return {f"penalties/{name}_{key}": variable
            for name, variables in self.variables_of.items()
            for key, variable in variables.items()}


@dataclasses.dataclass
class GanState:
  """The whole training state; every field is checkpointed."""
  generator: keras.Model
  discriminator: keras.Model
  generator_ema: keras.Model
  g_optimizer: keras.optimizers.Optimizer
  d_optimizer: keras.optimizers.Optimizer
  step: tf.Variable
  augment: AugmentState
  # Checkpointed when some named penalty keeps state (a run without such a
  # penalty restores checkpoints written before penalties could).
  penalties: PenaltyState = dataclasses.field(
      metadata={"checkpoint": "if_variables"})
  # Not checkpointed: the step and the config determine its values.
  schedules: schedules_lib.ScheduledValues = dataclasses.field(
      metadata={"checkpoint": False})

  def trackables(self) -> dict:
    """Everything to checkpoint, by name."""
    objects = {f.name: getattr(self, f.name)
               for f in dataclasses.fields(self)
               if f.metadata.get("checkpoint", True) is True
               or (f.metadata.get("checkpoint") == "if_variables"
                   and getattr(self, f.name).variables)}
    # Keras 3 does not expose the state of its random seed generators (D's
    # dropout) to tf.train.Checkpoint; without it a resumed run would draw
    # other dropout masks. Variables it does track are stored once anyway.
    objects["network_states"] = [
        v.value for net in (self.generator, self.discriminator,
                            self.generator_ema)
        for v in net.non_trainable_variables]
    return objects


def lazy_ratios(config: ml_collections.ConfigDict) -> dict[str, float]:
  """{"g": ..., "d": ...}: each optimizer's lazy correction.

  Lazy penalty groups add updates; each optimizer's learning rate is scaled
  by its ratio and its betas raised to it (losses.lazy_ratio), so that a
  lazy run moves as far per minibatch as an eager one.
  """
  return {net: losses_lib.lazy_ratio(
      losses_lib.penalty_groups(config.penalties, net)) for net in ("g", "d")}


def learning_rates(config: ml_collections.ConfigDict) -> dict[str, float]:
  """{"g": G's, "d": D's} Adam learning rate, lazy-corrected."""
  ratios = lazy_ratios(config)
  return {"g": config.optim.g_lr * ratios["g"],
          "d": config.optim.d_lr * ratios["d"]}


def _read_at_use(name: str) -> property:
  """An attribute that, holding a callable, returns what it returns."""
  private = "_" + name

  def get(self):
    value = getattr(self, private)
    return value() if callable(value) else value

  return property(get, lambda self, value: setattr(self, private, value))


class Adam(keras.optimizers.Adam):
  """Keras' Adam with its update in one fused op per variable, and without
  a second reduction of gradients that are already summed over replicas.

  Its variables and so its checkpoints are Keras' Adam's. The update is
  TensorFlow's ResourceApplyAdam, the same formula as Keras' (the
  epsilon-hat form, m and v updated in place): one op per weight instead of
  about 20. The step's graph is smaller and its first trace shorter, and
  each update reads and writes a weight's bytes about 7 times instead of
  about 30, which counts where the update is bound by memory, as on GPUs.

  Both overrides are of methods of Keras 3's TensorFlow backend
  (keras/src/backend/tensorflow/optimizer.py, Keras 3.15). If a Keras release
  renames them, tests/test_step.py fails: its checks against Keras' Adam and
  of one all-reduce per update.

  The betas may be callables, read at every update (schedules): Keras' Adam
  casts its betas to tensors; a variable there would become part of the
  checkpoint, which the scheduled values are not.
  """
  beta_1 = _read_at_use("beta_1")
  beta_2 = _read_at_use("beta_2")

  def _all_reduce_sum_gradients(self, grads_and_vars):
    # train._apply sums the gradients over the replicas itself (for their
    # global norm); Keras would all-reduce them again, moving every
    # gradient's bytes twice per update.
    return list(grads_and_vars)

  def _distributed_tf_update_step(self, distribution, grads_and_vars,
                                  learning_rate):
    # Keras' TensorFlow backend calls this once per update, outside the
    # replicas. The formula's scalars are made once per device and dtype,
    # not once per weight.
    scalars = {}

    def update(variable, gradient):
      # `variable` is one device's copy of a weight (update() calls this once
      # per device), and so are the slots' handles here.
      dtype = variable.dtype
      if (variable.device, dtype) not in scalars:
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        scalars[variable.device, dtype] = dict(
            beta1_power=beta_1**step, beta2_power=beta_2**step,
            lr=tf.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype))
      index = self._get_variable_index(variable)
      return tf.raw_ops.ResourceApplyAdam(
          var=variable.handle, m=self._momentums[index].value.handle,
          v=self._velocities[index].value.handle,
          grad=tf.cast(tf.convert_to_tensor(gradient), dtype),
          **scalars[variable.device, dtype])

    for gradient, variable in grads_and_vars:
      distribution.extended.update(variable, update, args=(gradient,),
                                   group=False)


def _optimizer(lr: float, optim: ml_collections.ConfigDict,
               loss_scaling: bool, schedules: schedules_lib.ScheduledValues,
               ratio: float = 1.0) -> keras.optimizers.Optimizer:
  """Adam; `lr` is already lazy-corrected, the betas are raised to `ratio`."""

  # The betas' horizons in minibatches are kept: beta ** ratio per update.
  def beta(name: str):
    value = schedules.get(f"optim.{name}", optim[name])
    if not isinstance(value, tf.Variable):
      return value**ratio
    return lambda: value.read_value()**ratio

  optimizer = Adam(lr, beta_1=beta("beta1"), beta_2=beta("beta2"))
  if loss_scaling:
    optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
  return optimizer


def build_state(config: ml_collections.ConfigDict,
                strategy: tf.distribute.Strategy) -> GanState:
  """Creates networks, optimizers and the step counter in the scope.

  `config` is a resolved config (trainer.config.resolve).
  """
  build = ARCHITECTURES.get(config.model.architecture)
  rates, ratios = learning_rates(config), lazy_ratios(config)
  policy = config.runtime.mixed_precision
  loss_scaling = policy == "mixed_float16"
  keras.utils.set_random_seed(config.seed)
  with strategy.scope():
    schedules = schedules_lib.ScheduledValues(
        schedules_lib.from_config(config), config.train.batch_size)
    generator, discriminator = build(config.model, policy)
    generator_ema = keras.models.clone_model(generator)
    for ema, var in zip(generator_ema.variables, generator.variables):
      ema.assign(var)
    g_optimizer, d_optimizer = (
        _optimizer(rates[net], config.optim, loss_scaling, schedules,
                   ratios[net])
        for net in ("g", "d"))
    g_optimizer.build(generator.trainable_variables)
    d_optimizer.build(discriminator.trainable_variables)
    # Only the first replica's increment counts, so all replicas agree.
    step = tf.Variable(
        0, dtype=tf.int64, trainable=False, name="step",
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    augment = AugmentState(config.augment.p)
    penalties = PenaltyState(config.penalties)
    for optimizer, net in ((g_optimizer, "g"), (d_optimizer, "d")):
      if f"optim.{net}_lr" in schedules:
        schedules.bind(f"optim.{net}_lr", optimizer.learning_rate,
                       lambda value, ratio=ratios[net]: value * ratio)
    if "augment.p" in schedules:
      schedules.bind("augment.p", augment.p)
  return GanState(generator, discriminator, generator_ema, g_optimizer,
                  d_optimizer, step, augment, penalties, schedules)


def stream_seed(seed: int, purpose: int, *counters: tf.Tensor) -> tf.Tensor:
  """A stateless seed [2] for one purpose at given counters (step, ...)."""
  value = tf.constant([seed, purpose], tf.int64)
  for counter in counters:
    value = tf.random.experimental.stateless_fold_in(value, counter)
  return value


# Class-conditional networks (model.num_classes > 0) take [inputs, labels];
# the others take the inputs alone. Labels are None for the latter, so that
# callers need not know which kind they hold.


def generate(generator: keras.Model, z: tf.Tensor, labels: tf.Tensor | None,
             *, training: bool) -> tf.Tensor:
  """G(z), or G(z | labels) for a class-conditional G: images [B, H, W, C]."""
  return generator(z if labels is None else [z, labels], training=training)


def judge(discriminator: keras.Model, images: tf.Tensor,
          labels: tf.Tensor | None, *, training: bool) -> tf.Tensor:
  """D's logits [B] for images (of the given classes, if conditional)."""
  inputs = images if labels is None else [images, labels]
  return tf.squeeze(discriminator(inputs, training=training), axis=-1)


def balanced_labels(count: int, num_classes: int) -> np.ndarray | None:
  """0, 1, ..., K-1, 0, 1, ... (int32 [count]); None if unconditional."""
  if not num_classes:
    return None
  return (np.arange(count) % num_classes).astype(np.int32)
