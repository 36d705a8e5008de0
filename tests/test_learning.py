"""G learns: a few hundred steps on real MNIST move its samples to the data.

The statistic is the Frechet distance between Gaussians fitted to a simple
feature of real and generated digits (4x4 average-pooled pixels, 49 numbers).
BENCHMARKS.md records the values seen on this machine.
"""

import numpy as np
import tensorflow as tf

from tests.conftest import cpu_strategy, load_config
from trainer import train
from trainer.data import pipeline
from trainer.data import sources


def _features(images: tf.Tensor) -> np.ndarray:
  pooled = tf.nn.avg_pool2d(images, 4, 4, "VALID")  # [N, 7, 7, 1]
  return tf.reshape(pooled, [images.shape[0], -1]).numpy().astype(np.float64)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
  values, vectors = np.linalg.eigh(matrix)
  return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
  mean_a, mean_b = a.mean(0), b.mean(0)
  cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  root_a = _sqrt_psd(cov_a)
  cross = np.trace(_sqrt_psd(root_a @ cov_b @ root_a))
  return float(np.sum((mean_a - mean_b) ** 2)
               + np.trace(cov_a) + np.trace(cov_b) - 2 * cross)


def test_generator_moves_toward_the_data(tmp_path, mnist_dir):
  config = load_config(**{
      "data.source": f"idx:{mnist_dir}", "data.split": "test",
      "train.steps": 200, "train.batch_size": 64, "train.steps_per_loop": 50,
      "train.log_every": 50, "train.image_every": 1000,
      "train.checkpoint_every": 1000, "model.g_width": 32,
      "model.d_width": 32})
  source = sources.load(config.data.source, sources.Request(
      split="test", image_size=28, channels=1, resize=False))
  real = pipeline.first_images(source, 2000)
  real_features = _features(real)
  z = tf.random.stateless_normal([2000, 100], seed=[7, 7])

  untrained = train.build_state(config, cpu_strategy(2))
  before = frechet_distance(
      _features(untrained.generator_ema(z, training=False)), real_features)
  trained = train.run(config, str(tmp_path), cpu_strategy(2))
  after = frechet_distance(
      _features(trained.generator_ema(z, training=False)), real_features)
  mean_digit = np.repeat(real.numpy().mean(0, keepdims=True), 2000, axis=0)
  collapsed = frechet_distance(_features(tf.constant(mean_digit)),
                               real_features)

  # Shown with `pytest -s`; BENCHMARKS.md records the values seen.
  print(f"Frechet distance on pooled pixels: untrained {before:.2f}, "
        f"after 200 steps {after:.2f}, mean digit {collapsed:.2f}")
  assert after < 0.1 * before, (before, after)
  # Closer to the data than a generator that always draws the mean digit.
  assert after < collapsed, (after, collapsed)
