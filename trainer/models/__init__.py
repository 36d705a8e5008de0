"""Networks, looked up by `model.architecture`.

Each architecture declares the `model.*` fields of its own, with their
defaults and ranges; the config resolver (trainer/config.py) fills in and
checks them, so that a config needs to name only what it changes.
"""

import dataclasses
from typing import Callable

import keras
import ml_collections

from trainer.models import dcgan
from trainer.registry import Registry

# An architecture builds (generator, discriminator) for one replica from the
# model config and a Keras dtype policy name.
Builder = Callable[[ml_collections.ConfigDict, str],
                   tuple[keras.Model, keras.Model]]


@dataclasses.dataclass(frozen=True)
class Architecture:
  """A network family: its builder and the model fields it declares.

  Attributes:
    build: (model config, dtype policy) -> (G, D).
    fields: model.<name> -> default, for the fields of this family.
    positive: those of its fields that must be >= 1.
    unit_interval: those that must be in [0, 1).
  """
  build: Builder
  fields: dict[str, object]
  positive: tuple[str, ...] = ()
  unit_interval: tuple[str, ...] = ()

  def __call__(self, config: ml_collections.ConfigDict,
               dtype: str) -> tuple[keras.Model, keras.Model]:
    return self.build(config, dtype)


ARCHITECTURES: Registry[Architecture] = Registry("architecture",
                                                 "model.architecture")
ARCHITECTURES.register("dcgan")(Architecture(
    build=dcgan.build,
    fields={"g_width": 64, "d_width": 64, "d_dropout": 0.3,
            "sync_batchnorm": True, "d_spectral_norm": False,
            "g_spectral_norm": False},
    positive=("g_width", "d_width"), unit_interval=("d_dropout",)))
