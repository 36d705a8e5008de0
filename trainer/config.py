"""Resolves, checks, logs and writes the experiment config; reads saved ones."""

import copy
import importlib.util
import json
import os

from absl import logging
import ml_collections
import tensorflow as tf

from trainer import augment as augment_lib
from trainer.data import sources
from trainer import defaults
from trainer.errors import UserError
from trainer import files
from trainer import losses as losses_lib
from trainer.models import ARCHITECTURES
from trainer.penalties import base as penalties_lib
from trainer import schedules as schedules_lib

MIXED_PRECISION_POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
AUGMENT_P_MODES = ("adaptive", "fixed")

# Config fields that define the shapes of the saved state, for every
# architecture: a checkpoint written under one value cannot be restored
# under another. Each architecture adds its own (Architecture.state_fields).
_STATE_DEFINING = ("model.architecture", "model.image_size", "model.channels",
                   "model.latent_dim", "model.num_classes")


def from_file(path: str,
              variant: str | None = None) -> ml_collections.ConfigDict:
  """The config of the config file at `path` (configs/<name>.py), unresolved.

  Config files are loaded by path, as --config names them, not imported.

  Raises:
    ValueError: the file does not know `variant`.
  """
  name = os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(variant)


_get = schedules_lib.get_path


def _fill(tree: dict, values: dict) -> None:
  """Sets each value of the nested dict `values` that `tree` lacks."""
  for key, value in values.items():
    if isinstance(value, dict):
      _fill(tree.setdefault(key, {}), value)
    else:
      tree.setdefault(key, value)


def names(text: str, setting: str) -> list[str]:
  """The names of a comma-separated setting; a name given twice is refused."""
  found = [n.strip() for n in text.split(",") if n.strip()]
  twice = sorted({n for n in found if found.count(n) > 1})
  if twice:
    raise UserError(f"{setting}={text!r} names {', '.join(twice)} more than "
                    "once; name each once")
  return found


def resolve(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The config every entry point works with: complete and checked.

  The one place where a config (a config file's, or a run's saved one in
  this version's layout: migrate_saved) gets the fields it does not set,
  from the base config (trainer/defaults.py) with its architecture's own,
  the penalties its loss implies, and every range and name check. Resolving
  a resolved config returns an equal one.

  Raises:
    UserError: the first field that is out of range or names nothing valid.
  """
  values = config.to_dict()
  _fill(values, defaults.base(config.model.architecture).to_dict())
  resolved = ml_collections.ConfigDict(values)
  architecture = ARCHITECTURES.get(resolved.model.architecture)
  loss = losses_lib.LOSSES.get(resolved.model.loss)
  penalties = names(resolved.penalties.names, "penalties.names")
  for name in penalties:
    penalties_lib.PENALTIES.get(name)
  resolved.penalties.names = ",".join(
      penalties + [n for n in loss.penalties if n not in penalties])
  augment_lib.build(resolved.augment.name, resolved.augment.groups)
  _validate(resolved, architecture)
  _validate_schedules(resolved, architecture)
  return resolved


def _leaves(config: ml_collections.ConfigDict, prefix: str = ""):
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      yield from _leaves(value, f"{prefix}{key}.")
    else:
      yield f"{prefix}{key}"


def _validate_schedules(config: ml_collections.ConfigDict,
                        architecture) -> None:
  """Each schedule names a schedulable value and ends inside its range."""
  unknown = [p for p in _leaves(config.schedules)
             if p not in schedules_lib.SCHEDULABLE]
  if unknown:
    raise UserError(f"schedules.{unknown[0]} is not a schedulable value; "
                    f"valid: {', '.join(schedules_lib.SCHEDULABLE)}")
  for path in schedules_lib.SCHEDULABLE:
    spec = _get(config.schedules, path)
    if not isinstance(spec, str):
      raise UserError(f"schedules.{path}={spec!r} is not a schedule; write "
                      "a string, kind(end, kimg), or \"\" for a constant")
  for path, schedule in schedules_lib.from_config(config).items():
    # The end value must pass the checks the value itself passes.
    probe = ml_collections.ConfigDict(config.to_dict())
    *parents, leaf = path.split(".")
    _get(probe, ".".join(parents))[leaf] = schedule.end
    try:
      _validate(probe, architecture)
    except UserError as e:
      raise UserError(f"schedules.{path}={_get(config.schedules, path)!r} "
                      f"ends out of range: {e}") from None
  scheduled = schedules_lib.specs(config)
  if "augment.p" in scheduled and config.augment.p_mode != "fixed":
    raise UserError(
        f"schedules.augment.p is set, but augment.p_mode="
        f"{config.augment.p_mode!r} moves p by its own rule; set "
        "augment.p_mode=fixed to schedule p")
  if "model.ema_decay" in scheduled and ema_in_images(config):
    raise UserError(
        "schedules.model.ema_decay is set, but G_ema has a half-life in "
        f"images (model.ema_kimg={config.model.ema_kimg}, or a schedule of "
        "it); schedule model.ema_kimg, or set model.ema_kimg=0 without one")


def ema_in_images(config: ml_collections.ConfigDict) -> bool:
  """Whether G_ema's rate comes from a half-life in images (ema_kimg).

  It does when model.ema_kimg > 0 or when a schedule drives it, which may
  start from 0 (R3GAN ramps the half-life up from 0).
  """
  return (config.model.ema_kimg > 0
          or "model.ema_kimg" in schedules_lib.specs(config))


def _at_least(config, path: str, minimum: float) -> None:
  value = _get(config, path)
  if value < minimum:
    raise UserError(f"{path}={value} is out of range; it must be >= {minimum}")


def _in_unit_interval(config, path: str) -> None:
  value = _get(config, path)
  if not 0 <= value < 1:
    raise UserError(f"{path}={value} is out of range; it must be in [0, 1)")


def _positive(config, path: str) -> None:
  value = _get(config, path)
  if not value > 0:
    raise UserError(f"{path}={value} is out of range; it must be > 0")


def _validate(config: ml_collections.ConfigDict, architecture) -> None:
  """Raises UserError naming the first field that is out of range."""
  for path in ("train.steps", "train.batch_size", "train.n_disc",
               "train.steps_per_loop", "train.log_every",
               "train.checkpoint_every", "train.keep_checkpoints",
               "train.image_every", "train.grid_size",
               "train.histogram_samples", "model.latent_dim",
               "model.channels", "augment.interval"):
    _at_least(config, path, 1)
  for field in architecture.positive:
    _at_least(config, f"model.{field}", 1)
  for path in ("eval.num_samples", "eval.num_real", "eval.batch_size",
               "eval.kid_subsets", "eval.kid_subset_size", "eval.pr_k",
               "eval.is_splits"):
    _at_least(config, path, 1)
  _at_least(config, "train.eval_every", 0)
  # Its upper bound, D's layer count, is checked on the built D
  # (trainer/models/freezing.py).
  _at_least(config, "train.freeze_d", 0)
  _at_least(config, "model.num_classes", 0)
  _at_least(config, "model.image_size", 8)
  for name, settings in config.penalties.items():
    if name != "names":
      _at_least(config, f"penalties.{name}.weight", 0)
      _at_least(config, f"penalties.{name}.interval", 1)
      if name in penalties_lib.PENALTIES:
        problem = penalties_lib.PENALTIES.get(name).check(settings)
        if problem:
          raise UserError(f"penalties.{name}.{problem}")
  for path in ("optim.g_lr", "optim.d_lr", "augment.speed_kimg"):
    _positive(config, path)
  for path in ("model.ema_kimg", "model.ema_rampup"):
    _at_least(config, path, 0)
  for path in ("optim.beta1", "optim.beta2", "model.ema_decay"):
    _in_unit_interval(config, path)
  for field in architecture.unit_interval:
    _in_unit_interval(config, f"model.{field}")
  if not 0 <= config.augment.p <= 1:
    raise UserError(f"augment.p={config.augment.p} is out of range; it must "
                    "be in [0, 1]")
  if not 0 < config.augment.target < 1:
    raise UserError(f"augment.target={config.augment.target} is out of "
                    "range; it must be in (0, 1)")
  if config.augment.p_mode not in AUGMENT_P_MODES:
    raise UserError(f"augment.p_mode={config.augment.p_mode!r} is not valid; "
                    f"valid: {', '.join(AUGMENT_P_MODES)}")
  if config.train.simultaneous and config.train.n_disc != 1:
    raise UserError(
        f"train.simultaneous=True takes G's and D's updates from one forward "
        f"pass, so it needs train.n_disc=1 (got {config.train.n_disc}); set "
        "train.simultaneous=False for several D updates per step")
  if config.data.on_bad_image not in sources.ON_BAD_IMAGE:
    raise UserError(f"data.on_bad_image={config.data.on_bad_image!r} is not "
                    f"valid; valid: {', '.join(sources.ON_BAD_IMAGE)}")
  policy = config.runtime.mixed_precision
  if policy not in MIXED_PRECISION_POLICIES:
    raise UserError(f"runtime.mixed_precision={policy!r} is not valid; valid: "
                    f"{', '.join(MIXED_PRECISION_POLICIES)}")


# The layout of the configs that to_json writes, saved as config.json's
# "version"; a file without it is of version 0 (written before versions).
# A change of the layout adds a step to _MIGRATIONS and 1 to this.
VERSION = 2
_VERSION_FIELD = "version"


def to_json(config: ml_collections.ConfigDict) -> str:
  """The config as config.json holds it: its fields and the layout version."""
  return json.dumps({**config.to_dict(), _VERSION_FIELD: VERSION}, indent=2,
                    sort_keys=True)


# Fields that runs saved before versions may lack, with the values that kept
# them training as they did. Fields not named here either existed from the
# start or do nothing at these values (penalties not named, augmentation
# off); resolve() fills them from the base config.
_UNVERSIONED_FIELDS = {
    "model": {"num_classes": 0, "ema_kimg": 0.0, "ema_rampup": 0.0},
    "train": {"simultaneous": False, "eval_at_start": False},
    "data": {"on_bad_image": "stop"},
    "runtime": {"intra_op_threads": 0, "inter_op_threads": 0},
    # The gradient penalty of wgan_gp: eager, weight 10 (model.gp_weight).
    "penalties": {"names": "", "gp": {"weight": 10.0, "interval": 1}},
    "augment": {"name": ""},
}
# The same for the model fields of an architecture.
_UNVERSIONED_MODEL_FIELDS = {
    "dcgan": {"d_spectral_norm": False, "g_spectral_norm": False},
}


def _from_unversioned(saved: dict) -> None:
  """Version 0 to 1: the layouts of the runs saved before versions.

  Before penalties had a section, wgan_gp's weight was model.gp_weight.
  Before schedules, augment.p_mode=linear moved p from augment.p to
  augment.p_end over augment.p_kimg thousand images: now a schedule of p.
  """
  model = saved.setdefault("model", {})
  gp_weight = model.pop("gp_weight", None)
  if "penalties" not in saved and gp_weight is not None:
    saved["penalties"] = {"gp": {"weight": gp_weight}}
  _fill(saved, _UNVERSIONED_FIELDS)
  _fill(model, _UNVERSIONED_MODEL_FIELDS.get(model.get("architecture"), {}))
  augment = saved["augment"]
  end, kimg = augment.pop("p_end", 0.0), augment.pop("p_kimg", 500.0)
  if augment.get("p_mode") == "linear":
    schedules = saved.setdefault("schedules", {}).setdefault("augment", {})
    schedules["p"] = f"linear({end!r}, {kimg!r})"
    augment["p_mode"] = "fixed"


def _stylegan2_as_the_reference(saved: dict) -> None:
  """Version 1 to 2: StyleGAN2's D gained d_architecture, mbstd_groups and
  d_mapping_layers; the runs before had a resnet D with consecutive groups.

  Their weights load as they were, but G's upsampling and D's downsampling
  convolutions now compute StyleGAN2's function (resampling.up_conv,
  down_conv), so a resumed run goes on with those. A class-conditional
  StyleGAN2 of version 1 projected D's features on a label embedding,
  which the reference's label mapping replaced: its checkpoint does not
  load.
  """
  model = saved.get("model", {})
  if model.get("architecture") == "stylegan2":
    _fill(model, {"d_architecture": "resnet",
                  "mbstd_groups": "consecutive", "d_mapping_layers": 8})


# _MIGRATIONS[v] takes a saved config of version v to version v + 1.
_MIGRATIONS = (_from_unversioned, _stylegan2_as_the_reference)


def migrate_saved(saved: dict) -> dict:
  """A run's saved config (config.json) of any version, in today's layout.

  The one place that knows the layouts of older versions: the steps of
  _MIGRATIONS, in turn from the config's version to this one. The result
  has no version field; the fields it lacks are those that resolve() fills
  from the defaults, as for a config file.

  Raises:
    UserError: the config is of a version newer than this code reads.
  """
  migrated = copy.deepcopy(saved)
  version = migrated.pop(_VERSION_FIELD, 0)
  if version not in range(VERSION + 1):
    raise UserError(
        f"it is of config version {version!r}, and this code reads versions "
        f"up to {VERSION}: a newer version of the trainer wrote it")
  for step in _MIGRATIONS[version:]:
    step(migrated)
  return migrated


def state_signature(config: ml_collections.ConfigDict | dict, *,
                    networks_only: bool = False) -> dict:
  """The config fields that fix the shapes and dtypes of the saved state.

  `config` is resolved, or saved and migrated (migrate_saved). With
  `networks_only`, those of the networks' variables alone (what init.from
  takes), without the optimizers' loss scale.
  """
  if isinstance(config, ml_collections.ConfigDict):
    config = config.to_dict()
  signature = {path: _get(config, path) for path in _STATE_DEFINING}
  # A saved run's own architecture says which of its fields define state.
  architecture = ARCHITECTURES.get(signature["model.architecture"])
  for field in architecture.state_fields:
    signature[f"model.{field}"] = config["model"][field]
  # Only float16 adds state (the loss scale); float32 and bfloat16 runs can
  # continue each other.
  if not networks_only:
    signature["loss scaling"] = (
        config["runtime"]["mixed_precision"] == "mixed_float16")
  return signature


def read_saved(workdir: str) -> dict | None:
  """The config saved in <workdir>/config.json, or None if there is none.

  Of any version, it comes in this version's layout (migrate_saved).

  Raises:
    UserError: the file exists but cannot be read as JSON, or is of a newer
      version than this code reads.
  """
  path = os.path.join(workdir, "config.json")
  if not tf.io.gfile.exists(path):
    return None
  try:
    with tf.io.gfile.GFile(path) as f:
      return migrate_saved(json.load(f))
  except (tf.errors.OpError, json.JSONDecodeError, UserError) as e:
    raise UserError(f"cannot read the saved config {path}: {e}") from None


def model_differences(
    old: ml_collections.ConfigDict | dict, new: ml_collections.ConfigDict | dict,
    *, networks_only: bool = False) -> list[tuple[str, object, object]]:
  """The state-defining fields (state_signature) whose values differ between
  two configs, as (field, old value, new value); only the architecture when
  that differs, since each architecture has fields of its own."""
  old, new = (state_signature(c, networks_only=networks_only)
              for c in (old, new))
  keys = (["model.architecture"]
          if old["model.architecture"] != new["model.architecture"] else old)
  return [(k, old[k], new[k]) for k in keys if old[k] != new[k]]


def check_compatible(
    config: ml_collections.ConfigDict, workdir: str, *,
    remedy: str = "Use another --workdir, or the same config",
    networks_only: bool = False) -> None:
  """Raises UserError if workdir's saved config defines a different model.

  The message names the fields that differ (only the architecture, if that
  differs) and ends with `remedy`. With `networks_only`, only the fields of
  the networks' shapes count (state_signature).
  """
  saved = read_saved(workdir)
  if saved is None:
    return
  diffs = [f"{k}: saved {old!r}, now {new!r}" for k, old, new in
           model_differences(saved, config, networks_only=networks_only)]
  if diffs:
    raise UserError(
        f"workdir {workdir} holds a run of a different model ("
        + "; ".join(diffs) + f"). {remedy}.")


def log_and_write(config: ml_collections.ConfigDict, workdir: str,
                  write: bool) -> None:
  """Says where the run and its config are and, if `write`, saves the config
  as <workdir>/config.json.

  The whole config is logged at verbosity 1 only (-v=1): on the console it
  would bury the start of the run.
  """
  text = to_json(config)
  path = os.path.join(workdir, "config.json")
  if write:
    # Through tf.io.gfile: the workdir may be a gs:// or other remote path.
    files.write_atomically(path, text + "\n")
  logging.info("Run of %s (%s loss) in %s; its full config: %s and "
               "TensorBoard's Text tab (-v=1 logs it here)",
               config.model.architecture, config.model.loss, workdir, path)
  logging.vlog(1, "Resolved config:\n%s", text)
