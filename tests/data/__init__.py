"""Tests of trainer/data/, and what several of them read with."""

import numpy as np
import tensorflow as tf

from trainer.data import sources


def read_all(source: sources.Source) -> tuple[np.ndarray, np.ndarray]:
  """All images and labels of `source`, in index order."""
  data = source.read(tf.range(source.num_examples, dtype=tf.int64))
  return data["image"].numpy(), data["label"].numpy()
