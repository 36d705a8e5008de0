"""Per-example random draws: their distribution and independence."""

import numpy as np
import tensorflow as tf

from trainer.models import example_draws


def test_noise_inputs_are_standard_normal_and_their_own_per_layer():
  seeds = tf.range(64, dtype=tf.int32) * 7919
  sizes = [4, 8, 8, 16, 16]
  noises = [n.numpy() for n in example_draws.draw_noise(seeds, sizes)]
  assert [n.shape for n in noises] == [(64, r, r, 1) for r in sizes]
  values = np.concatenate([n.ravel() for n in noises])  # 45,056 values
  # Mean and standard deviation within 5 standard errors; normal tails.
  assert abs(values.mean()) < 5 / np.sqrt(values.size)
  assert abs(values.std() - 1.0) < 5 / np.sqrt(2 * values.size)
  assert 0.040 < np.mean(np.abs(values) > 2.0) < 0.051  # 0.0455
  # Layers of one size draw different maps; the first pixels of two layers
  # are uncorrelated over the examples.
  assert not np.allclose(noises[1], noises[2])
  first = np.stack([n[:, 0, 0, 0] for n in noises])  # [layers, 64]
  correlations = np.corrcoef(first)[np.triu_indices(len(sizes), 1)]
  assert np.all(np.abs(correlations) < 0.5), correlations
  # An example's draw is its seed's alone.
  alone = example_draws.draw_noise(seeds[5:6], sizes)
  for n, a in zip(noises, alone):
    np.testing.assert_array_equal(n[5:6], a)

