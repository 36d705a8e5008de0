"""Network pickles as workdirs of ours: what `python -m trainer.convert` does.

`read` reads a pickle without running anything from it (pickles.py) and
names its kind; `plan_of` infers our config for its networks (networks.py,
and tf1.py for TensorFlow StyleGAN2's); `check` loads them into networks
built from that config, writing nothing (`inspect`); `create` writes a
new workdir: the resolved config.json and a checkpoint of step 0 whose G,
D and G_ema hold the pickle's networks and whose optimizers, step and
augmentation start afresh, as a new run's do.
The workdir then serves trainer.apply, trainer.evaluate and init.from as
a run's workdir does.
"""

import contextlib
import dataclasses
import os
from typing import Any, Iterator

from absl import logging
import keras
import ml_collections
import numpy as np
import tensorflow as tf

from trainer import checkpoint as checkpoint_lib
from trainer import config as config_lib
from trainer import defaults
from trainer import files
from trainer import state as state_lib
from trainer.convert import networks
from trainer.convert import pickles
from trainer.convert import tf1  # pylint: disable=unused-import
from trainer.errors import UserError
from trainer.models import ARCHITECTURES

# What is not converted, by the pickle's names for it, and why it need not be.
_NOT_CONVERTED = {
    "augment_pipe": "ADA's augmentation pipeline and its p; a run of ours "
                    "starts from augment.*",
    "training_set_kwargs": "the training data's settings; set data.* to "
                           "train",
    "cur_nimg": "the images seen; the workdir starts at step 0",
}
_OPTIMIZER_STATE = "_opt_state"  # R3GAN's G_opt_state, D_opt_state


@dataclasses.dataclass
class Plan:
  """A pickle's conversion, decided and not yet done.

  Attributes:
    pickled: what the pickle holds.
    kind: its kind (pickles.kind_of).
    format: how that kind converts (networks.FORMATS).
    fields: our model.* fields for its networks.
    config: the resolved config of the workdir: the base config of the
      architecture with `fields`.
    sources: each of our networks (G, D, G_ema) -> the pickle's network
      that gives it; without D when the pickle has none.
  """
  pickled: pickles.Pickled
  kind: str
  format: networks.Format
  fields: dict[str, Any]
  config: ml_collections.ConfigDict
  sources: dict[str, str]


def read(path: str) -> tuple[pickles.Pickled, str]:
  """The pickle's content and kind; nothing in it runs.

  Raises:
    pickles.BadPickle, pickles.RefusedGlobal, pickles.UnknownPickle.
  """
  pickled = pickles.read(path)
  return pickled, pickles.kind_of(pickled)


def plan_of(pickled: pickles.Pickled, kind: str) -> Plan:
  """How the pickle converts: our config for it and where each network goes.

  Raises:
    networks.UnsupportedNetwork: the kind is not converted, or its networks
      hold what ours cannot compute.
  """
  format_, fields = networks.infer(kind, pickled.networks)
  config = defaults.base(fields["architecture"])
  config.model.update(fields)
  sources = {}
  for ours in networks.OURS:
    found = [name for name in format_.sources[ours]
             if name in pickled.networks]
    if found:
      sources[ours] = found[0]
  return Plan(pickled, kind, format_, fields, config_lib.resolve(config),
              sources)


def load_into(plan: Plan, models: dict[str, keras.Model]) -> None:
  """Loads each of our networks in `models` from its source in the pickle.

  Raises:
    weights.WeightMismatch: a parameter that does not fit, or a variable
      of ours that gets none.
  """
  for ours, source in plan.sources.items():
    plan.format.load(ours, models[ours], plan.pickled.networks[source],
                     plan.fields)


def check(plan: Plan) -> None:
  """Loads the pickle's networks into networks built from the plan's config
  (G's and G_ema's into one G), as `create` would, and writes nothing.

  Raises:
    weights.WeightMismatch: as `create`.
  """
  model = plan.config.model
  g, d = ARCHITECTURES.get(model.architecture).build(model, "float32")
  load_into(plan, {"G": g, "D": d, "G_ema": g})


def check_new_workdir(workdir: str) -> None:
  """Raises UserError unless `workdir` is free: absent or an empty directory."""
  if not tf.io.gfile.exists(workdir):
    return
  if not tf.io.gfile.isdir(workdir) or tf.io.gfile.listdir(workdir):
    raise UserError(
        f"--workdir={workdir} exists and is not an empty directory; "
        "trainer.convert writes a new workdir and leaves existing ones "
        "alone: pass a new directory")


@contextlib.contextmanager
def _removed_on_failure(workdir: str) -> Iterator[None]:
  """What is written within it is removed if it does not complete."""
  existed = tf.io.gfile.exists(workdir)
  try:
    yield
  except BaseException:
    if not existed:
      tf.io.gfile.rmtree(workdir)
    else:
      for name in tf.io.gfile.listdir(workdir):
        path = os.path.join(workdir, name.rstrip("/"))
        if tf.io.gfile.isdir(path):
          tf.io.gfile.rmtree(path)
        else:
          tf.io.gfile.remove(path)
    raise


def create(plan: Plan, workdir: str, strategy: tf.distribute.Strategy
           ) -> str:
  """Writes the workdir: checkpoint ckpt-0, then config.json.

  Args:
    plan: what `plan_of` returned.
    workdir: a new directory, or an empty one (check_new_workdir).
    strategy: the strategy the state is built in (any: a checkpoint
      restores under every strategy).

  Returns:
    The checkpoint's path.

  Raises:
    UserError: the workdir is not free (nothing is written), or a
      parameter does not fit (weights.WeightMismatch).
  """
  check_new_workdir(workdir)
  state = state_lib.build_state(plan.config, strategy)
  load_into(plan, {"G": state.generator, "D": state.discriminator,
               "G_ema": state.generator_ema})
  with _removed_on_failure(workdir):
    tf.io.gfile.makedirs(workdir)
    path = checkpoint_lib.Checkpointer(
        workdir, state.trackables(), keep=plan.config.train.keep_checkpoints,
        is_chief=True).save(0)
    # Last: a workdir with its config holds its checkpoint too.
    files.write_atomically(os.path.join(workdir, "config.json"),
                           config_lib.to_json(plan.config) + "\n")
  logging.info("Converted %s into %s (%s)", plan.pickled.path, workdir, path)
  return path


# --- what the commands print --------------------------------------------------


def _summary(value: Any) -> str:
  """An entry that is not a network, in a few words."""
  if isinstance(value, (dict, list, tuple)):
    return f"a {type(value).__name__} of {len(value)}"
  return repr(value)


def _entries(pickled: pickles.Pickled) -> dict[str, Any]:
  """The pickle's top-level entries by name (its networks by theirs)."""
  if isinstance(pickled.data, dict):
    return {str(key): value for key, value in pickled.data.items()}
  return dict(pickled.networks)


def contents(pickled: pickles.Pickled, kind: str) -> str:
  """What the pickle holds: its kind, and each entry with its class and size
  (networks: parameters and buffers)."""
  lines = [f"{pickled.path}: a network pickle of "
           f"{networks.FORMATS.get(kind).title} (kind {kind})"]
  entries = _entries(pickled)
  width = max(map(len, entries), default=0)
  for name, value in entries.items():
    if isinstance(value, pickles.Module) and value.kind == "tf1":
      # TensorFlow's variables, trained or not (w_avg, noise maps).
      values = sum(int(np.size(a)) for a in value.params.values())
      what = f"{value.class_name}: {values:,} variable values"
    elif isinstance(value, pickles.Module):
      parameters = sum(int(np.size(a)) for key, a in value.params.items()
                       if key not in value.buffers)
      buffers = sum(int(np.size(value.params[key])) for key in value.buffers)
      what = (f"{value.class_name}: {parameters:,} parameters, "
              f"{buffers:,} buffer values")
    else:
      what = _summary(value)
    lines.append(f"  {name:<{width}}  {what}")
  return "\n".join(lines)


def _why_not(name: str) -> str:
  if name.endswith(_OPTIMIZER_STATE):
    return "an optimizer's state; ours start afresh (optim.*)"
  return _NOT_CONVERTED.get(name, "not used by trainer.convert")


def _overrides(plan: Plan) -> str:
  """The plan's model fields as flags of trainer.main, with which a config
  file of the same architecture can start from the workdir (init.from)."""
  return " ".join(f"--config.model.{name}={value}"
                  for name, value in plan.fields.items()
                  if name != "architecture")


def describe(plan: Plan) -> str:
  """What converts into what, what does not, and our config's model."""
  lines = ["converted:"]
  for ours in networks.OURS:
    source = plan.sources.get(ours)
    lines.append(f"  {ours:<5} <- " + (
        source or "nothing (the pickle has no D): the config's D, with "
        "random weights"))
  lines.append("  (every parameter and buffer; the resampling filters, "
               "which ours hard-code, are checked to be ours)")
  used = set(plan.sources.values())
  others = [name for name in _entries(plan.pickled) if name not in used]
  if others:
    lines.append("not converted:")
    lines += [f"  {name}: {_why_not(name)}" for name in others]
  lines.append("our model (config.json's model.*; the other fields are the "
               "base config's, trainer/defaults.py, data.* included: set "
               "them to train):")
  lines += [f"  model.{name}={value}" for name, value in plan.fields.items()]
  return "\n".join(lines)


def summary(plan: Plan, workdir: str, checkpoint: str) -> str:
  """What `create` wrote, and the commands that use it."""
  architecture = plan.fields["architecture"]
  return "\n".join([
      f"wrote {workdir}: config.json and {checkpoint} (step 0), "
      + ", ".join(f"{ours} <- {source}"
                  for ours, source in plan.sources.items()),
      f"its data.* are the base config's (data.source="
      f"{plan.config.data.source}): set them to train or evaluate on data",
      "sample from it:",
      f"  python -m trainer.apply sample --workdir={workdir}",
      "fine-tune it (a new run that starts from its G, D and G_ema):",
      f"  python -m trainer.main --config=configs/{architecture}.py:<variant> "
      f"--workdir=<new run> --config.init.from={workdir} {_overrides(plan)}",
  ])


def warm_start(state: state_lib.GanState, config: ml_collections.ConfigDict,
               source: str) -> str:
  """init.from=<pickle>: G, D and G_ema of a new run from a network pickle
  of StyleGAN2-ADA, TensorFlow StyleGAN2 or R3GAN, read as `read` reads it
  (nothing in it runs) and loaded into the state's networks directly: no
  workdir is written.
  The rest starts afresh, as checkpoint.warm_start's.

  Raises:
    UserError: the pickle cannot be read or converted (trainer.convert's
      errors), or its networks are another model than the config's.
  """
  try:
    plan = plan_of(*read(source))
  except UserError as e:
    raise UserError(f"init.from={source}: {e}") from None
  differing = config_lib.model_differences(plan.config, config,
                                          networks_only=True)
  if differing:
    key, theirs, ours = differing[0]
    raise UserError(
        f"init.from={source} holds another model: {key} is {theirs!r} there "
        f"and {ours!r} here; take its model.* fields (python -m "
        f"trainer.convert inspect --pickle={source} prints them)")
  load_into(plan, {"G": state.generator, "D": state.discriminator,
                   "G_ema": state.generator_ema})
  if "D" not in plan.sources:
    logging.info("%s holds no D: D starts from its initialisation", source)
  logging.info("Started G, D and G_ema from %s (init.from); the optimizers, "
               "the step and ADA's p start afresh", source)
  return source
