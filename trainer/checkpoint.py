"""Whole-state checkpoints: restored by themselves, written by the chief."""

import os
import tempfile

from absl import logging
import ml_collections
import tensorflow as tf

from trainer import config as config_lib
from trainer import signals
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
                   remedy: str) -> None:
  """Raises UserError if the run that wrote checkpoint `path` (a --checkpoint
  of any run) saved a model other than `config`'s; see
  trainer.config.check_compatible."""
  workdir = workdir_of(path)
  if workdir is not None:
    config_lib.check_compatible(config, workdir, remedy=remedy)


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
      # TensorFlow's text goes on to print the variable's values.
      first = str(e).strip().splitlines()[0].split(" Target variable:")[0]
      raise UserError(
          f"checkpoint {path} cannot be restored into this model ({first}). "
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
