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

from trainer.models import ARCHITECTURES

# Purposes of stateless random streams, folded into the config's seed.
NOISE, PENALTY, FIXED_NOISE, EVAL_NOISE, LABELS = 1, 2, 3, 4, 5


@dataclasses.dataclass
class GanState:
  """The whole training state; every field is checkpointed."""
  generator: keras.Model
  discriminator: keras.Model
  generator_ema: keras.Model
  g_optimizer: keras.optimizers.Optimizer
  d_optimizer: keras.optimizers.Optimizer
  step: tf.Variable

  def trackables(self) -> dict:
    """Everything to checkpoint, by name."""
    objects = {f.name: getattr(self, f.name)
               for f in dataclasses.fields(self)}
    # Keras 3 does not expose the state of its random seed generators (D's
    # dropout) to tf.train.Checkpoint; without it a resumed run would draw
    # other dropout masks. Variables it does track are stored once anyway.
    objects["network_states"] = [
        v.value for net in (self.generator, self.discriminator,
                            self.generator_ema)
        for v in net.non_trainable_variables]
    return objects


def _optimizer(lr: float, optim: ml_collections.ConfigDict,
               loss_scaling: bool) -> keras.optimizers.Optimizer:
  optimizer = keras.optimizers.Adam(lr, beta_1=optim.beta1,
                                    beta_2=optim.beta2)
  if loss_scaling:
    optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
  return optimizer


def build_state(config: ml_collections.ConfigDict,
                strategy: tf.distribute.Strategy) -> GanState:
  """Creates networks, optimizers and the step counter in the scope."""
  build = ARCHITECTURES.get(config.model.architecture)
  policy = config.runtime.mixed_precision
  loss_scaling = policy == "mixed_float16"
  keras.utils.set_random_seed(config.seed)
  with strategy.scope():
    generator, discriminator = build(config.model, policy)
    generator_ema = keras.models.clone_model(generator)
    for ema, var in zip(generator_ema.variables, generator.variables):
      ema.assign(var)
    g_optimizer = _optimizer(config.optim.g_lr, config.optim, loss_scaling)
    d_optimizer = _optimizer(config.optim.d_lr, config.optim, loss_scaling)
    g_optimizer.build(generator.trainable_variables)
    d_optimizer.build(discriminator.trainable_variables)
    # Only the first replica's increment counts, so all replicas agree.
    step = tf.Variable(
        0, dtype=tf.int64, trainable=False, name="step",
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
  return GanState(generator, discriminator, generator_ema, g_optimizer,
                  d_optimizer, step)


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
