"""Checks, logs and writes the resolved experiment config."""

import json
import os

from absl import logging
import ml_collections
import tensorflow as tf

from trainer import files
from trainer.errors import UserError

MIXED_PRECISION_POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")

# Config sections that define the shapes of the saved state: a checkpoint
# written under one of these cannot be restored under another.
_STATE_DEFINING = ("model.architecture", "model.image_size", "model.channels",
                   "model.latent_dim", "model.g_width", "model.d_width",
                   "model.num_classes")
# Defaults of state-defining fields added after runs were saved without them.
_STATE_DEFAULTS = {"model.num_classes": 0}


def _at_least(config, path: str, minimum: float) -> None:
  value = _get(config, path)
  if value < minimum:
    raise UserError(f"{path}={value} is out of range; it must be >= {minimum}")


def _in_unit_interval(config, path: str) -> None:
  value = _get(config, path)
  if not 0 <= value < 1:
    raise UserError(f"{path}={value} is out of range; it must be in [0, 1)")


def simultaneous(config: ml_collections.ConfigDict) -> bool:
  """train.simultaneous; configs written before the field existed train
  with alternating updates, as they did."""
  return bool(config.train.get("simultaneous", False))


def _get(config, path: str):
  value = config
  for part in path.split("."):
    value = value[part]
  return value


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises UserError naming the first field that is out of range.

  Names (losses, sources, architectures) are checked by their registries when
  they are looked up; this checks numbers and fixed choices.
  """
  for path in ("train.steps", "train.batch_size", "train.n_disc",
               "train.steps_per_loop", "train.log_every",
               "train.checkpoint_every", "train.keep_checkpoints",
               "train.image_every", "train.grid_size",
               "train.histogram_samples", "model.latent_dim",
               "model.g_width", "model.d_width", "model.channels"):
    _at_least(config, path, 1)
  for path in ("eval.num_samples", "eval.num_real", "eval.batch_size",
               "eval.kid_subsets", "eval.kid_subset_size", "eval.pr_k",
               "eval.is_splits"):
    _at_least(config, path, 1)
  _at_least(config, "train.eval_every", 0)
  _at_least(config, "model.num_classes", 0)
  _at_least(config, "model.image_size", 8)
  _at_least(config, "model.gp_weight", 0)
  for path in ("optim.g_lr", "optim.d_lr"):
    if not _get(config, path) > 0:
      raise UserError(f"{path}={_get(config, path)} is out of range; "
                      "it must be > 0")
  for path in ("optim.beta1", "optim.beta2", "model.ema_decay",
               "model.d_dropout"):
    _in_unit_interval(config, path)
  if simultaneous(config) and config.train.n_disc != 1:
    raise UserError(
        f"train.simultaneous=True takes G's and D's updates from one forward "
        f"pass, so it needs train.n_disc=1 (got {config.train.n_disc}); set "
        "train.simultaneous=False for several D updates per step")
  policy = config.runtime.mixed_precision
  if policy not in MIXED_PRECISION_POLICIES:
    raise UserError(f"runtime.mixed_precision={policy!r} is not valid; valid: "
                    f"{', '.join(MIXED_PRECISION_POLICIES)}")


def to_json(config: ml_collections.ConfigDict) -> str:
  return json.dumps(config.to_dict(), indent=2, sort_keys=True)


def state_signature(config: ml_collections.ConfigDict | dict) -> dict:
  """The config fields that fix the shapes and dtypes of the saved state."""
  if isinstance(config, ml_collections.ConfigDict):
    config = config.to_dict()
  signature = {}
  for path in _STATE_DEFINING:
    try:
      signature[path] = _get(config, path)
    except KeyError:
      signature[path] = _STATE_DEFAULTS.get(path)
  # Only float16 adds state (the loss scale); float32 and bfloat16 runs can
  # continue each other.
  policy = config.get("runtime", {}).get("mixed_precision")
  signature["loss scaling"] = policy == "mixed_float16"
  return signature


def read_saved(workdir: str) -> dict | None:
  """The config saved in <workdir>/config.json, or None if there is none.

  Raises:
    UserError: the file exists but cannot be read as JSON.
  """
  path = os.path.join(workdir, "config.json")
  if not tf.io.gfile.exists(path):
    return None
  try:
    with tf.io.gfile.GFile(path) as f:
      return json.load(f)
  except (tf.errors.OpError, json.JSONDecodeError) as e:
    raise UserError(f"cannot read the saved config {path}: {e}") from None


def check_compatible(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Raises UserError if workdir's saved config defines a different model."""
  saved = read_saved(workdir)
  if saved is None:
    return
  old, new = state_signature(saved), state_signature(config)
  diffs = [f"{k}: saved {old[k]!r}, now {new[k]!r}" for k in old
           if old[k] != new[k]]
  if diffs:
    raise UserError(
        f"workdir {workdir} holds a run of a different model ("
        + "; ".join(diffs) + "). Use another --workdir, or the same config.")


def log_and_write(config: ml_collections.ConfigDict, workdir: str,
                  write: bool) -> None:
  """Logs the resolved config and, if `write`, saves <workdir>/config.json."""
  text = to_json(config)
  logging.info("Resolved config:\n%s", text)
  if write:
    # Through tf.io.gfile: the workdir may be a gs:// or other remote path.
    files.write_atomically(os.path.join(workdir, "config.json"), text + "\n")
