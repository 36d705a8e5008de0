"""The DCGAN networks, sized from the config."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import load_config
from trainer.errors import UserError
from trainer.models import ARCHITECTURES


@pytest.mark.parametrize("size,channels", [(28, 1), (32, 3), (64, 3)])
def test_sizes(size, channels):
  config = load_config(**{"model.image_size": size,
                          "model.channels": channels})
  g, d = ARCHITECTURES.get("dcgan")(config.model, "float32")
  images = g(tf.random.normal([2, 100]), training=False)
  assert images.shape == (2, size, size, channels)
  assert float(tf.reduce_max(tf.abs(images))) <= 1.0  # tanh
  assert d(images, training=False).shape == (2, 1)


def test_seed_network_at_28():
  g, d = ARCHITECTURES.get("dcgan")(load_config().model, "float32")
  # noise 100 -> 7x7x256 -> 7x7x128 -> 14x14x64 -> 28x28x1
  shapes = [tuple(layer.output.shape[1:]) for layer in g.layers
            if "conv2d_transpose" in layer.name or "reshape" in layer.name]
  assert shapes == [(7, 7, 256), (7, 7, 128), (14, 14, 64), (28, 28, 1)]
  # D: conv 64, conv 128, one logit, no sigmoid at the end.
  convs = [layer.filters for layer in d.layers if hasattr(layer, "filters")]
  assert convs == [64, 128]
  assert d.layers[-1].activation.__name__ == "linear"


def test_mixed_precision_keeps_logits_and_images_float32():
  g, d = ARCHITECTURES.get("dcgan")(load_config().model, "mixed_bfloat16")
  images = g(tf.zeros([1, 100]))
  assert images.dtype == tf.float32
  assert d(images).dtype == tf.float32
  assert g.layers[1].compute_dtype == "bfloat16"


def test_unreachable_size_is_a_user_error():
  with pytest.raises(UserError, match="model.image_size=13"):
    ARCHITECTURES.get("dcgan")(load_config(**{"model.image_size": 13}).model,
                               "float32")


def test_unknown_architecture_lists_the_valid_ones():
  with pytest.raises(UserError, match="valid: dcgan"):
    ARCHITECTURES.get("resnet")


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_conditional_networks_use_the_label(policy):
  config = load_config(**{"model.num_classes": 10})
  g, d = ARCHITECTURES.get("dcgan")(config.model, policy)
  z = tf.random.stateless_normal([4, 100], [1, 2])
  three, five = tf.fill([4], 3), tf.fill([4], 5)
  images = g([z, three], training=False)
  assert images.shape == (4, 28, 28, 1) and images.dtype == tf.float32
  assert not np.allclose(images, g([z, five], training=False))
  logits = d([images, three], training=False)
  assert logits.shape == (4, 1) and logits.dtype == tf.float32
  # Projection: only the label's term changes with the label.
  embedding = next(layer for layer in d.layers
                   if isinstance(layer, keras.layers.Embedding))
  embedding.embeddings.assign(tf.zeros_like(embedding.embeddings))
  np.testing.assert_array_equal(d([images, three]), d([images, five]))
