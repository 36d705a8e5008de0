"""The whole training state, built once inside the strategy's scope."""

import dataclasses

import keras
import ml_collections
import tensorflow as tf

from trainer.models import ARCHITECTURES
from trainer import optimizer as optimizer_lib
from trainer.penalties import base as penalties_lib
from trainer import schedules as schedules_lib

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
      penalty = penalties_lib.PENALTIES.get(name)
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


def build_state(config: ml_collections.ConfigDict,
                strategy: tf.distribute.Strategy) -> GanState:
  """Creates networks, optimizers and the step counter in the scope.

  `config` is a resolved config (trainer.config.resolve).
  """
  build = ARCHITECTURES.get(config.model.architecture)
  rates = optimizer_lib.learning_rates(config)
  ratios = optimizer_lib.lazy_ratios(config)
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
        optimizer_lib.make_optimizer(rates[net], config.optim, loss_scaling,
                                     schedules, ratios[net])
        for net in ("g", "d"))
    g_optimizer.build(generator.trainable_variables)
    # Slots for all of D, its layers that train.freeze_d freezes too: the
    # checkpoint's layout does not depend on it (a resumed run may change
    # it), and the updates leave those slots alone (phases.apply_gradients).
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
