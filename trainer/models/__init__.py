"""Networks, looked up by `model.architecture`."""

from typing import Callable

import keras
import ml_collections

from trainer.models import dcgan
from trainer.registry import Registry

# An architecture builds (generator, discriminator) for one replica from the
# model config and a Keras dtype policy name.
Builder = Callable[[ml_collections.ConfigDict, str],
                   tuple[keras.Model, keras.Model]]

ARCHITECTURES: Registry = Registry("architecture", "model.architecture")
ARCHITECTURES.register("dcgan")(dcgan.build)
