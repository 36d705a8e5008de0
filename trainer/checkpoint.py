"""Whole-state checkpoints: restored by themselves, written by the chief;
and the explicit warm start of a new run's networks from another run
(init.from)."""

import os
import tempfile

from absl import logging
import keras
import ml_collections
import tensorflow as tf
from tensorflow.core.protobuf import trackable_object_graph_pb2

from trainer import config as config_lib
from trainer import signals
from trainer import state as state_lib
from trainer.errors import UserError


_DIRECTORY = "checkpoints"


def workdir_of(path: str) -> str | None:
  """The workdir of a checkpoint that training wrote, or None.

  Training writes <workdir>/checkpoints/ckpt-<step>; a checkpoint elsewhere
  has no workdir.
  """
  directory = os.path.dirname(path)
  if os.path.basename(directory) != _DIRECTORY:
    return None
  return os.path.dirname(directory)


def check_model_of(path: str, config: ml_collections.ConfigDict, *,
                   remedy: str, networks_only: bool = False) -> None:
  """Raises UserError if the run that wrote checkpoint `path` (a --checkpoint
  of any run) saved a model other than `config`'s; see
  trainer.config.check_compatible."""
  workdir = workdir_of(path)
  if workdir is not None:
    config_lib.check_compatible(config, workdir, remedy=remedy,
                                networks_only=networks_only)


def _error_line(error: Exception) -> str:
  """The first line of TensorFlow's error, without the values it goes on to
  print."""
  return str(error).strip().splitlines()[0].split(" Target variable:")[0]


# Fine-tuning (init.from) -------------------------------------------------


def resolve_init_source(path: str) -> str:
  """The checkpoint that init.from=`path` names.

  `path` is a workdir of trainer.main (its latest checkpoint) or a
  checkpoint such as <workdir>/checkpoints/ckpt-1000 (a network pickle is
  trainer.convert's: conversion.warm_start).

  Raises:
    UserError: `path` is neither a checkpoint nor a workdir with one.
  """
  if tf.io.gfile.exists(path + ".index"):
    return path
  latest = tf.train.latest_checkpoint(os.path.join(path, _DIRECTORY))
  if latest is None:
    raise UserError(
        f"init.from={path}: no such checkpoint (no {path}.index) nor a "
        f"workdir with one (none in {os.path.join(path, _DIRECTORY)}); pass "
        "a workdir of python -m trainer.main or a checkpoint such as "
        f"{os.path.join('<workdir>', _DIRECTORY, 'ckpt-1000')}")
  return latest


# The networks, as the checkpoint names them, and as messages do.
_NETWORKS = {"generator": "G", "discriminator": "D", "generator_ema": "G_ema"}


def _misfit(networks: dict, path: str) -> str | None:
  """What of `networks` (name -> network) checkpoint `path` lacks or holds in
  another shape: its first such variable, in words; None if all fit.

  Walks the networks' objects beside the checkpoint's, as restoring does,
  breadth first from the networks' names. (Restoring's own error names the
  variable under some strategies only.)
  """
  reader = tf.train.load_checkpoint(path)
  graph = trackable_object_graph_pb2.TrackableObjectGraph()
  graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
  shapes = reader.get_variable_to_shape_map()

  def saved_children(node: int | None) -> dict[str, int]:
    return {} if node is None else {
        child.local_name: child.node_id for child in graph.nodes[node].children}

  def saved_value(node: int | None) -> str | None:
    """The checkpoint key of a variable's value."""
    keys = {} if node is None else {
        a.name: a.checkpoint_key for a in graph.nodes[node].attributes}
    return keys.get("VARIABLE_VALUE")

  view = tf.train.TrackableView(tf.train.Checkpoint(**networks))
  queue = [(network, saved_children(0).get(name), _NETWORKS[name])
           for name, network in networks.items()]
  seen = set()
  while queue:
    obj, node, owner = queue.pop(0)
    if id(obj) in seen:
      continue
    seen.add(id(obj))
    if not isinstance(obj, (tf.Variable, keras.Variable)):
      children = saved_children(node)
      queue += [(child, children.get(name), owner)
                for name, child in view.children(obj).items()]
      continue
    name, key = getattr(obj, "path", obj.name), saved_value(node)
    if key is None:
      return f"{owner}'s {name} is not in the checkpoint"
    there, here = tuple(shapes[key]), tuple(obj.shape)
    if there != here:
      return f"{owner}'s {name} is {there} there and {here} in this model"
  return None


def warm_start(state: state_lib.GanState,
               config: ml_collections.ConfigDict) -> str:
  """Starts G, D and G_ema from the run that init.from names.

  Every variable the networks hold comes from its checkpoint: the weights,
  batch norm's statistics, spectral normalization's vectors, StyleGAN2's
  w_avg and constant noise. Nothing else does: not its optimizers, step
  (so the images seen and the data position), ADA's p, penalties' state,
  nor D's dropout's random state, which come from this run's config.

  Returns:
    The checkpoint it started from.

  Raises:
    UserError: no such source (resolve_init_source), a source of another
      model: the first field that differs, or, without its config, the
      first variable that does not fit, with both shapes.
  """
  source = config.init["from"]
  path = resolve_init_source(source)
  check_model_of(path, config, networks_only=True, remedy=(
      "init.from starts a run from one of the same model only: take that "
      "run's model.* fields"))
  networks = {name: getattr(state, name) for name in _NETWORKS}
  try:
    why = _misfit(networks, path)
    if why is None:
      tf.train.Checkpoint(**networks).restore(
          path).expect_partial().assert_existing_objects_matched()
  except (ValueError, AssertionError, tf.errors.OpError) as e:
    why = _error_line(e)
  if why:
    named = f"init.from={source}" + (f" ({path})" if path != source else "")
    raise UserError(f"{named} does not fit this model ({why}); start from "
                    "a run of the same model")
  logging.info("Started G, D and G_ema from %s (init.from); the optimizers, "
               "the step and ADA's p start afresh", path)
  return path


class Checkpointer:
  """Saves and restores every object of the training state.

  Args:
    workdir: the run's directory; checkpoints go to <workdir>/checkpoints.
    state: name -> trackable (networks, optimizers, the step variable).
    keep: how many recent checkpoints to keep.
    is_chief: only the chief writes to the workdir. Other tasks must still
      take part in saving (collective ops), so they write to a temporary
      directory that is removed afterwards.
  """

  def __init__(self, workdir: str, state: dict, *, keep: int, is_chief: bool):
    self._checkpoint = tf.train.Checkpoint(**state)
    self.directory = os.path.join(workdir, _DIRECTORY)
    self._is_chief = is_chief
    self._manager = tf.train.CheckpointManager(
        self._checkpoint, self.directory, max_to_keep=keep)

  @property
  def latest(self) -> str | None:
    return self._manager.latest_checkpoint

  def restore_latest(self) -> bool:
    """Restores the newest checkpoint, if any. Returns whether one was."""
    path = self.latest
    if path is None:
      return False
    self.restore(path)
    return True

  def restore(self, path: str) -> None:
    """Restores checkpoint `path` (a prefix such as .../ckpt-200) whole.

    Raises:
      UserError: it is missing, damaged, or holds another model's state.
    """
    try:
      self._checkpoint.restore(path).assert_consumed()
    # A truncated data file makes TensorFlow's reader raise IndexError.
    except (ValueError, AssertionError, IndexError, tf.errors.OpError) as e:
      raise UserError(
          f"checkpoint {path} cannot be restored into this model "
          f"({_error_line(e)}). "
          "It belongs to another model or is damaged; use another --workdir "
          "or the config that wrote it") from None
    logging.info("Restored %s", path)

  def chosen(self, path: str) -> str:
    """`path` if it names a checkpoint, else the latest one if `path` is "".

    Raises:
      UserError: `path` is not a checkpoint, or there is none to take.
    """
    if path and not tf.io.gfile.exists(path + ".index"):
      raise UserError(
          f"--checkpoint={path}: no such checkpoint (there is no "
          f"{path}.index); pass a path such as "
          f"{os.path.join(self.directory, 'ckpt-1000')}")
    path = path or self.latest
    if path is None:
      raise UserError(
          f"{os.path.dirname(self.directory)} has no checkpoint in "
          f"{self.directory}; train first with python -m trainer.main")
    return path

  def all_checkpoints(self) -> list[str]:
    """The checkpoints listed in the directory's state file, oldest first.

    A state file that is being rewritten reads as empty.
    """
    try:
      state = tf.train.get_checkpoint_state(self.directory)
    except (tf.errors.OpError, ValueError) as e:
      logging.warning("Cannot read the checkpoint list in %s yet: %s",
                      self.directory, str(e).splitlines()[0] if str(e) else e)
      return []
    return list(state.all_model_checkpoint_paths) if state else []

  def save(self, step: int) -> str:
    """Saves the state as the checkpoint of `step`; returns its path.

    Ctrl-C during the save stops the process only once it is complete.
    """
    with signals.uninterrupted():
      if self._is_chief:
        path = self._manager.save(checkpoint_number=step)
      else:
        with tempfile.TemporaryDirectory() as scratch:
          path = self._checkpoint.write(os.path.join(scratch, "ckpt"))
      logging.info("Saved checkpoint for step %d", step)
    return path
