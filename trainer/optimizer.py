"""The optimizers: Adam with a fused update, lazily corrected rates.

Lazy penalty groups add updates to a network; its optimizer's learning rate
and betas are corrected for them (lazy_ratios), as StyleGAN2 does.
"""

from absl import logging
import keras
import ml_collections
import numpy as np
import tensorflow as tf

from trainer.penalties import base as penalties_lib
from trainer import schedules as schedules_lib


def lazy_ratios(config: ml_collections.ConfigDict) -> dict[str, float]:
  """{"g": ..., "d": ...}: each optimizer's lazy correction.

  Lazy penalty groups add updates; each optimizer's learning rate is scaled
  by its ratio and its betas raised to it (penalties_lib.lazy_ratio), so that a
  lazy run moves as far per minibatch as an eager one.
  """
  return {net: penalties_lib.lazy_ratio(
      penalties_lib.penalty_groups(config.penalties, net)) for net in ("g", "d")}


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
    # phases.apply_gradients sums the gradients over the replicas itself
    # (for their global norm); Keras would all-reduce them again, moving
    # every gradient's bytes twice per update.
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


def make_optimizer(lr: float, optim: ml_collections.ConfigDict,
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


def set_learning_rates(g_optimizer: keras.optimizers.Optimizer,
                       d_optimizer: keras.optimizers.Optimizer,
                       schedules: schedules_lib.ScheduledValues,
                       config: ml_collections.ConfigDict) -> None:
  """Applies the config's learning rates over the restored ones.

  Keras checkpoints an optimizer's learning rate; the config decides it, so
  that a run resumed with another rate uses that rate (with the lazy
  penalties' correction, learning_rates).
  """
  rates = learning_rates(config)
  for optimizer, net in ((g_optimizer, "g"), (d_optimizer, "d")):
    if f"optim.{net}_lr" in schedules:
      continue  # the schedule assigns it before every step
    wanted = rates[net]
    restored = float(optimizer.learning_rate.numpy())
    if not np.isclose(restored, wanted, rtol=1e-6):
      logging.info("optim.%s_lr: %g from the config replaces %g from the "
                   "checkpoint", net, wanted, restored)
      optimizer.learning_rate = wanted
