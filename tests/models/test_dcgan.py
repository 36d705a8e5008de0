"""The DCGAN networks, sized from the config."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import load_config
from trainer.errors import UserError
from trainer import models
from trainer.models import ARCHITECTURES
from trainer.models import layers
from trainer import state as state_lib


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


def _spectral_networks(policy="float32", **overrides):
  config = load_config(**{"model.d_spectral_norm": True,
                          "model.g_spectral_norm": True, **overrides})
  return ARCHITECTURES.get("dcgan")(config.model, policy)


def _wrapped(model: keras.Model) -> list[str | None]:
  """For each weight layer of the model: the type it wraps, or None."""
  kinds = (keras.layers.Dense, keras.layers.Conv2D,
           keras.layers.Conv2DTranspose, keras.layers.Embedding,
           layers.SpectralNormalization)
  return [type(layer.layer).__name__
          if isinstance(layer, layers.SpectralNormalization) else None
          for layer in model.layers if isinstance(layer, kinds)]


def _trainable_count(model: keras.Model) -> int:
  return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


@pytest.mark.parametrize("num_classes", [0, 10])
def test_spectral_norm_wraps_every_weight_layer(num_classes):
  plain_g, plain_d = ARCHITECTURES.get("dcgan")(
      load_config(**{"model.num_classes": num_classes}).model, "float32")
  g, d = _spectral_networks(**{"model.num_classes": num_classes})
  # D: both convolutions, the logit layer and the projection's embedding;
  # G: the dense layer and the transposed convolutions, not its embedding.
  assert sorted(_wrapped(d)) == ["Conv2D", "Conv2D", "Dense"] + (
      ["Embedding"] if num_classes else [])
  assert _wrapped(g) == [None] * bool(num_classes) + [
      "Dense", "Conv2DTranspose", "Conv2DTranspose", "Conv2DTranspose"]
  # u is not trained: the same parameters, and one u per output unit more.
  for plain, model in ((plain_g, g), (plain_d, d)):
    assert _trainable_count(model) == _trainable_count(plain)
    units = sum(layer.spectral_u.shape[0] for layer in model.layers
                if isinstance(layer, layers.SpectralNormalization))
    assert model.count_params() == plain.count_params() + units
  labels = tf.fill([2], 3) if num_classes else None
  images = models.generate(g, tf.zeros([2, 100]), labels, training=True)
  assert images.shape == (2, 28, 28, 1) and images.dtype == tf.float32
  logits = models.judge(d, images, labels, training=True)
  assert logits.dtype == tf.float32 and np.isfinite(logits.numpy()).all()


def test_spectral_norm_under_mixed_precision_keeps_float32_ends():
  g, d = _spectral_networks("mixed_bfloat16")
  images = g(tf.zeros([2, 100]), training=True)
  assert images.dtype == tf.float32
  logits = d(images, training=True)
  assert logits.dtype == tf.float32 and np.isfinite(logits.numpy()).all()
  wrapper = next(layer for layer in g.layers
                 if isinstance(layer, layers.SpectralNormalization))
  assert wrapper.layer.compute_dtype == "bfloat16"
  assert wrapper.output.dtype == "bfloat16"


def test_a_spectrally_normalized_generator_clones_with_its_own_u():
  # As state.build_state makes G_ema: a clone, then G's values copied in.
  g, _ = _spectral_networks()
  ema = keras.models.clone_model(g)
  for copy, var in zip(ema.variables, g.variables):
    copy.assign(var)
  wrappers = [[layer for layer in model.layers
               if isinstance(layer, layers.SpectralNormalization)]
              for model in (g, ema)]
  assert len(wrappers[1]) == len(wrappers[0]) == 4
  z = tf.random.stateless_normal([2, 100], [3, 4])
  np.testing.assert_array_equal(ema(z, training=False), g(z, training=False))
  before = [layer.spectral_u.numpy() for layer in wrappers[0]]
  ema(z, training=True)
  for u, original, cloned in zip(before, *wrappers):
    assert cloned.spectral_u is not original.spectral_u
    np.testing.assert_array_equal(original.spectral_u.numpy(), u)
    # (The output layer's u has one element, +-1: it cannot move.)
    assert u.size == 1 or not np.array_equal(cloned.spectral_u.numpy(), u)


def test_checkpoints_restore_u_exactly(tmp_path):
  config = load_config(**{"model.d_spectral_norm": True,
                          "model.g_spectral_norm": True,
                          "model.num_classes": 10,
                          "model.g_width": 8, "model.d_width": 8})
  strategy = tf.distribute.get_strategy()
  trained = state_lib.build_state(config, strategy)
  z, labels = tf.zeros([2, 100]), tf.fill([2], 3)
  for g in (trained.generator, trained.generator_ema):
    images = g([z, labels], training=True)
  trained.discriminator([images, labels], training=True)
  path = tf.train.Checkpoint(**trained.trackables()).save(tmp_path / "ckpt")

  def u_values(state):
    """Every u, by network and place (names differ between builds)."""
    return {(i, j): v.numpy()
            for i, net in enumerate((state.generator, state.discriminator,
                                     state.generator_ema))
            for j, v in enumerate(net.non_trainable_variables)
            if v.name == "spectral_u"}

  fresh = state_lib.build_state(config, strategy)
  expected, initial = u_values(trained), u_values(fresh)
  # G and G_ema: 4 layers each; D: 2 convolutions, logits, embedding.
  assert len(expected) == 12 and expected.keys() == initial.keys()
  # Those with more than one element (not G's output or D's logit layer)
  # moved away from their initial value.
  assert all(not np.array_equal(expected[k], initial[k])
             for k in expected if expected[k].size > 1)
  tf.train.Checkpoint(**fresh.trackables()).restore(path).assert_consumed()
  restored = u_values(fresh)
  for key, value in expected.items():
    np.testing.assert_array_equal(restored[key], value)
