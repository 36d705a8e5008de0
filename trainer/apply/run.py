"""A trained run, loaded for use: its saved config and a restored checkpoint."""

import dataclasses

import ml_collections
import tensorflow as tf

from trainer import checkpoint as checkpoint_lib
from trainer import config as config_lib
from trainer.errors import UserError
from trainer.models import ARCHITECTURES
from trainer.models import latent
from trainer import state as state_lib


@dataclasses.dataclass
class TrainedRun:
  """A run's config and its networks at one checkpoint."""
  config: ml_collections.ConfigDict
  state: state_lib.GanState
  checkpoint: str
  step: int

  @property
  def num_classes(self) -> int:
    return self.config.model.num_classes

  @property
  def image_shape(self) -> tuple[int, int, int]:
    model = self.config.model
    return (model.image_size, model.image_size, model.channels)

  @property
  def split(self) -> latent.LatentSplit:
    """G_ema's mapping and synthesis (trainer/models/latent.py)."""
    return ARCHITECTURES.get(self.config.model.architecture).split(
        self.state.generator_ema)


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a run was trained with (<workdir>/config.json).

  Raises:
    UserError: there is no readable config.json in the workdir.
  """
  values = config_lib.read_saved(workdir)
  if values is None:
    raise UserError(
        f"{workdir} is not a training run's workdir: it has no config.json. "
        "Pass the --workdir of a run of python -m trainer.main")
  # read_saved brought an older run's config to this version's layout.
  return config_lib.resolve(ml_collections.ConfigDict(values))


def load(workdir: str, strategy: tf.distribute.Strategy,
         checkpoint: str = "") -> TrainedRun:
  """Builds the run's networks and restores `checkpoint` (default: latest).

  Raises:
    UserError: no config, no such checkpoint, or one that does not fit.
  """
  config = load_config(workdir)
  state = state_lib.build_state(config, strategy)
  checkpointer = checkpoint_lib.Checkpointer(
      workdir, state.trackables(), keep=config.train.keep_checkpoints,
      is_chief=False)
  path = checkpointer.chosen(checkpoint)
  checkpoint_lib.check_model_of(
      path, config, remedy=f"Use a checkpoint of {workdir}'s model")
  checkpointer.restore(path)
  return TrainedRun(config, state, path, int(state.step.numpy()))
