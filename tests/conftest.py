"""Shared test setup: two logical CPU devices and the real MNIST location.

The real data is found through one setting, the environment variable
GAN_TEST_MNIST_DIR (default ../shared/data/mnist, relative to the repository).
"""

import functools
import importlib.util
import os
import pathlib

import pytest
import tensorflow as tf

from trainer import distribute

REPO = pathlib.Path(__file__).resolve().parents[1]
MNIST_DIR = pathlib.Path(os.environ.get(
    "GAN_TEST_MNIST_DIR", REPO.parent / "shared" / "data" / "mnist"))

# Mirrored tests need two replicas on a machine without GPUs. This must run
# before TensorFlow starts its devices, i.e. at collection time.
distribute.configure_cpu_devices(2)


@pytest.fixture(scope="session")
def mnist_dir() -> pathlib.Path:
  """The real MNIST IDX directory; fails (not skips) if it is missing."""
  images = MNIST_DIR / "t10k-images-idx3-ubyte.gz"
  if not images.exists():
    pytest.fail(
        f"real MNIST not found: {images} is missing. Set GAN_TEST_MNIST_DIR "
        "to a directory with the MNIST IDX files (t10k-images-idx3-ubyte.gz, "
        "t10k-labels-idx1-ubyte.gz).", pytrace=False)
  return MNIST_DIR


@functools.cache
def cpu_strategy(replicas: int) -> tf.distribute.Strategy:
  """MirroredStrategy over the first `replicas` logical CPUs.

  One per replica count for the whole session: as in a real run, one process
  uses one strategy (several strategies' collectives could share keys).
  """
  return tf.distribute.MirroredStrategy(
      [f"/cpu:{i}" for i in range(replicas)])


def load_config(variant: str | None = "smoke", **overrides):
  """configs/dcgan_mnist.py's config, with dotted-path overrides.

  Example: load_config("smoke", **{"model.loss": "hinge"}).
  """
  spec = importlib.util.spec_from_file_location(
      "dcgan_mnist", REPO / "configs" / "dcgan_mnist.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(variant)
  for path, value in overrides.items():
    *parents, leaf = path.split(".")
    node = config
    for parent in parents:
      node = node[parent]
    node[leaf] = value
  return config
