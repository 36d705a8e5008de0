"""The InceptionV3 extractor (eval.extractor=inception_v3) in this process.

Untrained weights (ImageNet's cannot be downloaded here): this checks the
loading from a file, the grey digits' way in and both outputs, not the
features' quality. tests/metrics/test_evaluator.py evaluates a G with it.
"""

import keras
import numpy as np
import tensorflow as tf

from trainer import features


def test_grey_digits_give_pool_features_and_class_probabilities(tmp_path):
  weights = tmp_path / "inception_v3.weights.h5"
  keras.applications.InceptionV3(weights=None).save_weights(weights)
  extractor = features.build("inception_v3", str(weights), (28, 28, 1))
  assert extractor.num_classes == 1000
  assert extractor.identity.startswith("inception_v3-")
  images = tf.random.stateless_uniform([3, 28, 28, 1], [0, 1], -1.0, 1.0)
  embeddings, probabilities = extractor.extract(images)
  assert embeddings.shape == (3, 2048) and probabilities.shape == (3, 1000)
  np.testing.assert_allclose(np.sum(probabilities, axis=1), 1.0, rtol=1e-5)
  # Each image's features are its own, whatever the batch.
  alone, _ = extractor.extract(images[1:2])
  np.testing.assert_allclose(alone, embeddings[1:2], rtol=1e-4, atol=1e-5)
  assert not np.allclose(embeddings[0], embeddings[1])
  weights.unlink()  # 96 MB
