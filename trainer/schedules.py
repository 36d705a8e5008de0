"""Config values that follow a schedule over the images seen.

A schedulable value of the config (SCHEDULABLE: the learning rates, Adam's
betas, the penalty weights, G_ema's decay or half-life, ADA's p) is constant
by default. `schedules.<path>` makes it move from its value in the config to
an end value over a number of thousands of images, then stay there:

    --config.optim.g_lr=2e-4 --config.schedules.optim.g_lr="cosine(5e-5, 20000)"

Kinds: `linear(end, kimg)` and `cosine(end, kimg)` (half a cosine, flat at
both ends); "" keeps the value constant. The clock is the images that G's
updates have seen: the steps done times `train.batch_size`, the count
StyleGAN2-ADA's and R3GAN's schedules use.

Inside the compiled loop each scheduled value is a variable assigned from the
step before every step, outside the replicas, so every replica and worker
uses the same value. The variables are not checkpointed: the step and the
config determine them, so a resumed run uses what an uninterrupted one
would, and a schedule can be added to or changed in a run that goes on.
"""

import dataclasses
import math
import re
from typing import Callable

import ml_collections
import tensorflow as tf

from trainer.errors import UserError
from trainer.penalties import base as penalties_lib

# The values a schedule may drive, by their config path.
SCHEDULABLE = (
    "optim.g_lr", "optim.d_lr", "optim.beta1", "optim.beta2",
    "model.ema_decay", "model.ema_kimg", "augment.p",
    *(f"penalties.{name}.weight" for name in penalties_lib.PENALTIES.names()))


def _linear(t: tf.Tensor) -> tf.Tensor:
  return t


def _cosine(t: tf.Tensor) -> tf.Tensor:
  return 0.5 * (1.0 - tf.cos(math.pi * t))


# Each kind maps the fraction of the schedule done, t in [0, 1], to the
# fraction of the way from the start value to the end value.
_KINDS: dict[str, Callable[[tf.Tensor], tf.Tensor]] = {
    "linear": _linear, "cosine": _cosine}
_SPEC = re.compile(r"^\s*(\w+)\s*\(\s*([^,()]+?)\s*,\s*([^,()]+?)\s*\)\s*$")


@dataclasses.dataclass(frozen=True)
class Schedule:
  """From `start` to `end` over `kimg` thousand images, then `end`."""
  kind: str
  start: float
  end: float
  kimg: float

  def __call__(self, images: tf.Tensor) -> tf.Tensor:
    """The value (float32 scalar) after `images` images."""
    done = tf.minimum(tf.cast(images, tf.float64) / (self.kimg * 1000.0), 1.0)
    fraction = tf.cast(_KINDS[self.kind](done), tf.float32)
    return self.start + (self.end - self.start) * fraction


def default_config() -> ml_collections.ConfigDict:
  """The `schedules` section: "" (constant) for every schedulable value."""
  config = ml_collections.ConfigDict()
  for path in SCHEDULABLE:
    node = config
    *parents, leaf = path.split(".")
    for part in parents:
      if part not in node:
        node[part] = ml_collections.ConfigDict()
      node = node[part]
    node[leaf] = ""
  return config


def get_path(config, path: str):
  """config.<dotted path>: config["a"]["b"] for "a.b"."""
  for part in path.split("."):
    config = config[part]
  return config


def specs(config: ml_collections.ConfigDict) -> dict[str, str]:
  """{path: spec} of the config's non-empty schedules."""
  return {path: get_path(config.schedules, path) for path in SCHEDULABLE
          if get_path(config.schedules, path).strip()}


def parse(path: str, spec: str, start: float) -> Schedule:
  """The schedule `spec` of the value at `path`, which starts at `start`.

  Raises:
    UserError: the spec is not `kind(end, kimg)` with a known kind, numbers
      and kimg > 0.
  """
  usage = (f"schedules.{path}={spec!r} is not a schedule; write "
           f"kind(end, kimg) with kind one of {', '.join(_KINDS)}, e.g. "
           f"'cosine({start:g}, 1000)' (from {path}={start:g} to the end "
           "value over kimg thousand images)")
  match = _SPEC.match(spec)
  if not match:
    raise UserError(usage)
  kind, end, kimg = match.groups()
  if kind not in _KINDS:
    raise UserError(f"schedules.{path}={spec!r}: unknown kind {kind!r}; "
                    f"valid: {', '.join(_KINDS)}")
  try:
    end, kimg = float(end), float(kimg)
  except ValueError:
    raise UserError(usage) from None
  if not kimg > 0:
    raise UserError(f"schedules.{path}={spec!r}: kimg={kimg:g} is out of "
                    "range; it must be > 0")
  return Schedule(kind, float(start), end, kimg)


def from_config(config: ml_collections.ConfigDict) -> dict[str, Schedule]:
  """The schedules of a resolved config, by path."""
  return {path: parse(path, spec, get_path(config, path))
          for path, spec in specs(config).items()}


class ScheduledValues:
  """The scheduled values of a run, as variables assigned before each step.

  Built inside the strategy's scope. `get(path, default)` is what the step
  reads: the variable of a scheduled value, else the constant `default`.
  `bind` makes `update` also assign another variable (an optimizer's
  learning rate, ADA's p) from a value.
  """

  def __init__(self, schedules: dict[str, Schedule], batch_size: int):
    self._schedules, self._batch_size = schedules, batch_size
    self._variables = {
        path: tf.Variable(
            schedule(0), trainable=False, name="schedule_" + path.replace(
                ".", "_"),
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        for path, schedule in schedules.items()}
    self._bound: list[tuple[str, tf.Variable, Callable]] = []

  def __contains__(self, path: str) -> bool:
    return path in self._schedules

  def get(self, path: str, default: float) -> tf.Variable | float:
    return self._variables.get(path, default)

  def bind(self, path: str, variable,
           transform: Callable[[tf.Tensor], tf.Tensor] = lambda v: v) -> None:
    """`update` assigns transform(value of `path`) to `variable`."""
    self._bound.append((path, variable, transform))
    variable.assign(transform(self._schedules[path](0)))

  def update(self, step: tf.Tensor) -> None:
    """Assigns every value for the step; outside the replicas."""
    images = tf.cast(step, tf.float64) * self._batch_size
    for path, variable in self._variables.items():
      variable.assign(self._schedules[path](images))
    for path, variable, transform in self._bound:
      variable.assign(transform(self._variables[path].read_value()))

  def summaries(self) -> dict[str, float]:
    """{"schedule/<path>": the value of the last step run}, for logging."""
    return {f"schedule/{path}": float(variable.numpy())
            for path, variable in self._variables.items()}
