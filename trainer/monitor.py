"""What training and evaluation show of the networks on fixed inputs."""

import math

import ml_collections
import numpy as np
import tensorflow as tf

from trainer import distribute
from trainer import state as state_lib
from trainer import summaries


class Monitor:
  """The fixed-noise image grids and D's histograms on fixed batches."""

  def __init__(self, strategy: tf.distribute.Strategy,
               state: state_lib.GanState,
               config: ml_collections.ConfigDict, real: np.ndarray):
    replicas = strategy.num_replicas_in_sync
    train = config.train
    # Rounded up to a multiple of the replica count, trimmed when written.
    count = max(train.grid_size, train.histogram_samples)
    count = math.ceil(count / replicas) * replicas
    noise = tf.random.stateless_normal(
        [count, config.model.latent_dim],
        state_lib.stream_seed(config.seed, state_lib.FIXED_NOISE)).numpy()
    real = np.resize(real, (count,) + real.shape[1:])
    self._inputs = (distribute.distribute_rows(strategy, noise),
                    distribute.distribute_rows(strategy, real))
    self._grid_size = train.grid_size
    self._hist_size = train.histogram_samples

    def replica_fn(z, images):
      fake = state.generator(z, training=False)
      probability = lambda x: tf.sigmoid(
          tf.squeeze(state.discriminator(x, training=False), -1))
      return {"samples/generator": fake,
              "samples/generator_ema": state.generator_ema(z, training=False),
              "d_probability/real": probability(images),
              "d_probability/fake": probability(fake)}

    @tf.function
    def run():
      outputs = strategy.run(replica_fn, args=self._inputs)
      return {k: strategy.gather(v, axis=0) for k, v in outputs.items()}

    self._run = run

  def outputs(self) -> dict[str, np.ndarray]:
    """The grids' images and D's probabilities on the fixed batches."""
    outputs = {k: v.numpy() for k, v in self._run().items()}
    return {name: value[:self._hist_size if name.startswith("d_probability")
                        else self._grid_size]
            for name, value in outputs.items()}

  def write(self, writer: summaries.Writer, step: int) -> None:
    outputs = self.outputs()
    for name in ("samples/generator", "samples/generator_ema"):
      writer.images(step, name, outputs[name])
    writer.histograms(step, {name: outputs[name] for name in
                             ("d_probability/real", "d_probability/fake")})
