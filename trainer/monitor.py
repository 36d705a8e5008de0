"""What training and evaluation show of the networks on fixed inputs."""

import math

import ml_collections
import numpy as np
import tensorflow as tf

from trainer import distribute
from trainer import models
from trainer import random_streams
from trainer import state as state_lib
from trainer import summaries


class Monitor:
  """The fixed-noise image grids and D's histograms on fixed batches.

  Args:
    strategy: the outputs are computed on its replicas.
    state: the networks to show.
    config: the experiment config (train.grid_size, train.histogram_samples).
    real: {"image": float32 [N, H, W, C], "label": int32 [N]}, as given by
      pipeline.first_examples: D's probabilities on real images use these.
  """

  def __init__(self, strategy: tf.distribute.Strategy,
               state: state_lib.GanState,
               config: ml_collections.ConfigDict, real: dict[str, np.ndarray]):
    replicas = strategy.num_replicas_in_sync
    train = config.train
    # Rounded up to a multiple of the replica count, trimmed when written.
    count = max(train.grid_size, train.histogram_samples)
    count = math.ceil(count / replicas) * replicas
    noise = tf.random.stateless_normal(
        [count, config.model.latent_dim],
        random_streams.stream_seed(config.seed, random_streams.FIXED_NOISE)).numpy()
    # Conditional grids cycle through the classes.
    fake_labels = models.balanced_labels(count, config.model.num_classes)
    real_labels = (np.resize(real["label"], count)
                   if config.model.num_classes else None)
    rows = [noise, fake_labels, np.resize(real["image"], (count,) +
                                          real["image"].shape[1:]),
            real_labels]
    self._inputs = tuple(None if r is None else
                         distribute.distribute_rows(strategy, r) for r in rows)
    self._grid_size = train.grid_size
    self._hist_size = train.histogram_samples

    def replica_fn(z, fake_labels, images, real_labels):
      generate = lambda g: models.generate(g, z, fake_labels,
                                              training=False)
      fake = generate(state.generator)
      probability = lambda x, labels: tf.sigmoid(models.judge(
          state.discriminator, x, labels, training=False))
      return {"samples/generator": fake,
              "samples/generator_ema": generate(state.generator_ema),
              "d_probability/real": probability(images, real_labels),
              "d_probability/fake": probability(fake, fake_labels)}

    self._run = distribute.replicated(strategy, replica_fn)

  def outputs(self) -> dict[str, np.ndarray]:
    """The grids' images and D's probabilities on the fixed batches."""
    outputs = {k: v.numpy() for k, v in self._run(*self._inputs).items()}
    return {name: value[:self._hist_size if name.startswith("d_probability")
                        else self._grid_size]
            for name, value in outputs.items()}

  def write(self, writer: summaries.Writer, step: int) -> None:
    outputs = self.outputs()
    for name in ("samples/generator", "samples/generator_ema"):
      writer.images(step, name, outputs[name])
    writer.histograms(step, {name: outputs[name] for name in
                             ("d_probability/real", "d_probability/fake")})
