"""The shared layers: faster dropout and batch norm, spectral normalization."""

from typing import Callable, NamedTuple

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import cpu_strategy
from tests.conftest import load_config
from trainer.models import ARCHITECTURES
from trainer.models import layers

_N = 200_000  # elements per draw: the keep fraction's sd is about 0.001


def _keep_mask(rate: float, dtype=tf.float32, shape=(400, 500)):
  layer = layers.Dropout(rate, seed=3)
  out = layer(tf.ones(shape, dtype), training=True)
  assert out.dtype == dtype and out.shape == shape
  return out.numpy().astype(np.float64)


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5, 0.9])
def test_keeps_one_minus_rate_and_is_unbiased(rate):
  out = _keep_mask(rate)
  kept = out != 0
  sd = np.sqrt(rate * (1 - rate) / _N)
  assert abs(kept.mean() - (1 - rate)) < 5 * sd
  # Kept values carry the exact inverse keep probability of the 16-bit
  # threshold, so the expected output is the input.
  levels = 2**16
  scale = levels / (levels - round(rate * levels))
  np.testing.assert_allclose(out[kept], scale, rtol=1e-6)
  assert abs(out.mean() - 1.0) < 5 * sd * scale


def test_the_two_halves_of_a_draw_are_independent():
  # Neighbouring elements share one 32-bit draw; if the halves were
  # related, both would be kept together more (or less) often than 0.7**2.
  kept = (_keep_mask(0.3).reshape(-1, 2) != 0)
  both = (kept[:, 0] & kept[:, 1]).mean()
  sd = np.sqrt(0.49 * 0.51 / (_N // 2))
  assert abs(both - 0.49) < 5 * sd


def test_dropout_refuses_a_noise_shape():
  with pytest.raises(ValueError, match="takes no noise_shape"):
    layers.Dropout(0.3, noise_shape=(None, 1))


def test_identity_off_training_and_at_rate_zero():
  x = tf.random.normal([4, 7, 7, 3])
  np.testing.assert_array_equal(layers.Dropout(0.3)(x, training=False), x)
  np.testing.assert_array_equal(layers.Dropout(0.0)(x, training=True), x)


def test_each_call_draws_a_new_mask_of_any_size():
  layer = layers.Dropout(0.5, seed=1)
  x = tf.ones([3, 5, 7])  # an odd number of elements
  first, second = (layer(x, training=True).numpy() != 0 for _ in range(2))
  assert first.shape == (3, 5, 7)
  assert (first != second).any()


def test_bfloat16_gradient_is_the_mask():
  layer = layers.Dropout(0.3, seed=5)
  x = tf.random.normal([64, 14, 14, 8], dtype=tf.float32)
  x = tf.cast(x, tf.bfloat16)
  with tf.GradientTape() as tape:
    tape.watch(x)
    out = layer(x, training=True)
    total = tf.reduce_sum(tf.cast(out, tf.float32))
  grad = tape.gradient(total, x).numpy().astype(np.float32)
  kept = out.numpy() != 0
  scale = np.float32(tf.cast(2**16 / (2**16 - 19661), tf.bfloat16))
  np.testing.assert_array_equal(grad[kept], scale)
  np.testing.assert_array_equal(grad[~kept], 0.0)


def test_dcgan_discriminator_uses_it():
  _, d = ARCHITECTURES.get("dcgan")(load_config().model, "float32")
  dropouts = [layer for layer in d.layers
              if isinstance(layer, layers.Dropout)]
  assert [layer.rate for layer in dropouts] == [0.3, 0.3]


def _set_weights(layer, channels, rng):
  layer.gamma.assign(rng.uniform(0.5, 1.5, channels).astype(np.float32))
  layer.beta.assign(rng.normal(size=channels).astype(np.float32))
  layer.moving_mean.assign(rng.normal(size=channels).astype(np.float32))
  layer.moving_variance.assign(
      rng.uniform(0.5, 2.0, channels).astype(np.float32))


def _batch_norm_run(layer, x, weights, loss_weights):
  """Outputs, gradients and moving statistics of one training step."""
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = layer(x, training=True)
    loss = tf.reduce_sum(tf.cast(y, loss_weights.dtype)**2 * loss_weights)
  grads = tape.gradient(loss, [x] + weights)
  return {"y": y, "dx": grads[0], "dgamma": grads[1], "dbeta": grads[2],
          "moving_mean": layer.moving_mean,
          "moving_variance": layer.moving_variance,
          "inference": layer(x, training=False)}


class _Float64BatchNorm:
  """The batch norm formula in float64: the reference for both layers."""

  def __init__(self, source):
    self.gamma, self.beta, self.moving_mean, self.moving_variance = (
        tf.Variable(tf.cast(v, tf.float64)) for v in
        (source.gamma, source.beta, source.moving_mean,
         source.moving_variance))
    self.momentum, self.epsilon = source.momentum, source.epsilon

  def __call__(self, x, training):
    axes = list(range(len(x.shape) - 1))
    mean, variance = tf.nn.moments(x, axes)
    if training:
      for moving, batch in ((self.moving_mean, mean),
                            (self.moving_variance, variance)):
        moving.assign(moving * self.momentum + batch * (1 - self.momentum))
    else:
      mean, variance = self.moving_mean, self.moving_variance
    return tf.nn.batch_normalization(x, mean, variance, self.beta,
                                     self.gamma, self.epsilon)


@pytest.mark.parametrize("shape", [(64, 48), (32, 7, 7, 16)])
@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_batch_norm_matches_keras(shape, dtype):
  rng = np.random.default_rng(0)
  x = tf.constant(rng.normal(2.0, 3.0, shape).astype(np.float32))
  # A loss that weighs every element differently: a loss that weighs each
  # channel evenly (such as the sum of squares) has a zero gradient through
  # the normalisation.
  loss_weights = tf.constant(rng.normal(size=shape).astype(np.float32))
  errors = {}
  for name, layer in (("keras", keras.layers.BatchNormalization(dtype=dtype)),
                      ("ours", layers.BatchNormalization(dtype=dtype))):
    layer.build(shape)
    _set_weights(layer, shape[-1], np.random.default_rng(1))
    reference = _Float64BatchNorm(layer)
    x_in = tf.cast(x, layer.compute_dtype)
    expected = _batch_norm_run(
        reference, tf.cast(x_in, tf.float64),
        [reference.gamma, reference.beta], tf.cast(loss_weights, tf.float64))
    actual = _batch_norm_run(layer, x_in, [layer.gamma, layer.beta],
                             loss_weights)
    assert actual["y"].dtype == layer.compute_dtype
    errors[name] = {
        key: np.abs(tf.cast(actual[key], tf.float64).numpy() -
                    expected[key].numpy()).max() /
             np.abs(expected[key].numpy()).max() for key in expected}
  # Ours is as exact as Keras' own, within float rounding.
  bound = 1e-5 if dtype == "float32" else 2e-2
  for key, error in errors["ours"].items():
    assert error <= max(2 * errors["keras"][key], bound), (key, errors)


def test_synchronized_batch_norm_uses_the_global_batch():
  # Over two replicas, the moments are those of the global batch: the moving
  # mean moves towards the mean of both halves, not of one half.
  strategy = cpu_strategy(2)
  with strategy.scope():
    layer = layers.BatchNormalization(synchronized=True, momentum=0.0)
    layer.build((None, 3))
  halves = tf.constant([[0.0] * 3] * 4 + [[8.0] * 3] * 4)
  dataset = strategy.experimental_distribute_dataset(
      tf.data.Dataset.from_tensor_slices(halves).batch(8))

  @tf.function
  def step(x):
    return strategy.run(lambda x: layer(x, training=True), args=(x,))

  step(next(iter(dataset)))
  np.testing.assert_allclose(layer.moving_mean.numpy(), [4.0] * 3)
  np.testing.assert_allclose(layer.moving_variance.numpy(), [16.0] * 3)


def test_dcgan_generator_uses_it():
  g, _ = ARCHITECTURES.get("dcgan")(load_config().model, "float32")
  norms = [layer for layer in g.layers
           if isinstance(layer, keras.layers.BatchNormalization)]
  assert norms and all(isinstance(layer, layers.BatchNormalization)
                       for layer in norms)


@pytest.mark.parametrize("shape", [(64, 48), (32, 7, 7, 16)])
def test_batch_norm_trains_through_the_fused_kernel(shape):
  # The point of the layer: one fused op in training, Keras' ops otherwise.
  layer = layers.BatchNormalization(dtype="mixed_bfloat16")
  layer.build(shape)

  def op_types(training):
    graph = tf.function(lambda x: layer(x, training=training)) \
        .get_concrete_function(tf.TensorSpec(shape, tf.bfloat16)).graph
    return {op.type for op in graph.get_operations()}

  assert "FusedBatchNormV3" in op_types(True)
  assert "FusedBatchNormV3" not in op_types(False)


class _WeightLayer(NamedTuple):
  """A kind of weight layer, for the spectral normalization tests."""
  make: Callable[..., keras.layers.Layer]  # (dtype=...) -> a new layer
  inputs: Callable[[np.random.Generator], np.ndarray]
  output_axis: int  # of the weight
  function: Callable  # (inputs, weight) -> outputs in plain ops


# Without biases, which take no part in the normalization.
_WEIGHT_LAYERS = {
    "dense": _WeightLayer(
        lambda **kw: keras.layers.Dense(6, use_bias=False, **kw),
        lambda rng: rng.normal(size=(4, 9)), -1, lambda x, w: x @ w),
    "conv2d": _WeightLayer(
        lambda **kw: keras.layers.Conv2D(6, 3, padding="same",
                                         use_bias=False, **kw),
        lambda rng: rng.normal(size=(2, 5, 5, 3)), -1,
        lambda x, w: keras.ops.conv(x, w, padding="same")),
    # The kernel is [kh, kw, out, in]: the output channels are axis 2.
    "conv2d_transpose": _WeightLayer(
        lambda **kw: keras.layers.Conv2DTranspose(
            6, 3, strides=2, padding="same", use_bias=False, **kw),
        lambda rng: rng.normal(size=(2, 4, 4, 3)), 2,
        lambda x, w: keras.ops.conv_transpose(x, w, strides=2,
                                              padding="same")),
    "embedding": _WeightLayer(
        lambda **kw: keras.layers.Embedding(10, 6, **kw),
        lambda rng: rng.integers(0, 10, size=(8,)), -1,
        lambda x, w: tf.gather(w, x)),
}


def _spectral(kind: str, dtype: str = "float32"):
  """A spectrally normalized layer and an input for it (float32 or int).

  The weight is scaled to a largest singular value of 3, far from 1.
  """
  keras.utils.set_random_seed(0)  # the kernel's and u's initial draws
  x = _WEIGHT_LAYERS[kind].inputs(np.random.default_rng(0))
  x = tf.constant(x.astype(np.float32) if x.dtype == np.float64 else x)
  layer = layers.SpectralNormalization(_WEIGHT_LAYERS[kind].make(dtype=dtype))
  layer.build(x.shape)
  weight = layer.layer.weights[0]
  weight.assign(weight * 3.0 / _largest_singular_value(weight, kind))
  return layer, x


def _matrix(weight, kind: str) -> tf.Tensor:
  """A weight [..., out, ...] as the matrix [n, out] whose norm is asked."""
  weight = keras.ops.moveaxis(weight, _WEIGHT_LAYERS[kind].output_axis, -1)
  return tf.reshape(weight, [-1, weight.shape[-1]])


def _largest_singular_value(weight, kind: str) -> float:
  matrix = _matrix(tf.cast(weight, tf.float64), kind).numpy()
  return float(np.linalg.svd(matrix, compute_uv=False)[0])


@pytest.mark.parametrize("kind", sorted(_WEIGHT_LAYERS))
def test_spectral_norm_brings_the_largest_singular_value_to_one(kind):
  layer, x = _spectral(kind)
  for _ in range(30):  # one power iteration each
    layer(x, training=True)
  weight = layer.normalized_weight()
  np.testing.assert_allclose(_largest_singular_value(weight, kind), 1.0,
                             atol=2e-3)
  # normalized_weight() is what the layer computes with.
  np.testing.assert_allclose(layer(x, training=False),
                             _WEIGHT_LAYERS[kind].function(x, weight),
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", sorted(_WEIGHT_LAYERS))
def test_spectral_norm_gradient_goes_through_sigma(kind):
  layer, x = _spectral(kind)
  reference = _WEIGHT_LAYERS[kind].function
  rng = np.random.default_rng(1)
  loss_weights = rng.normal(size=layer.compute_output_shape(x.shape))
  with tf.GradientTape() as tape:
    y = layer(x, training=True)
    loss = tf.reduce_sum(y * loss_weights.astype(np.float32))
  kernel = layer.layer.weights[0]
  grad = tape.gradient(loss, kernel).numpy().astype(np.float64)
  # Reference in float64: W / sigma with sigma = |M u| for the u the call
  # stored and used, held fixed; and the same with sigma held constant, as
  # a layer that normalizes its kernel in place would backpropagate.
  u = tf.constant(layer.spectral_u.numpy(), tf.float64)
  x64 = tf.cast(x, tf.float64) if x.dtype.is_floating else x
  w = tf.cast(kernel, tf.float64)
  grads = {}
  for name, through_sigma in (("through_sigma", True), ("constant", False)):
    with tf.GradientTape() as tape:
      tape.watch(w)
      sigma = tf.norm(tf.linalg.matvec(_matrix(w, kind), u))
      if not through_sigma:
        sigma = tf.stop_gradient(sigma)
      loss = tf.reduce_sum(reference(x64, w / sigma) * loss_weights)
    grads[name] = tape.gradient(loss, w).numpy()
  np.testing.assert_allclose(grad, grads["through_sigma"], rtol=1e-4,
                             atol=1e-5 * np.abs(grad).max())
  assert not np.allclose(grad, grads["constant"], rtol=1e-2)
  # W / sigma(W) does not change when W is scaled: no gradient along W.
  kernel = kernel.numpy()
  cosine = np.sum(grad * kernel) / (np.linalg.norm(grad) *
                                   np.linalg.norm(kernel))
  assert abs(cosine) < 1e-5


def test_spectral_norm_inference_uses_the_stored_u():
  layer, x = _spectral("conv2d")
  trained = layer(x, training=True)
  u = layer.spectral_u.numpy()
  # With training=False or unset: no power iteration, the weight of the
  # last training call.
  for training in (False, None):
    np.testing.assert_array_equal(layer(x, training=training), trained)
    np.testing.assert_array_equal(layer.spectral_u.numpy(), u)


def test_spectral_norm_u_starts_as_a_seeded_unit_vector():
  def first_u(seed):
    keras.utils.set_random_seed(seed)
    layer = layers.SpectralNormalization(keras.layers.Dense(6))
    layer.build((None, 9))
    return layer.spectral_u.numpy()

  u = first_u(1)
  assert u.shape == (6,) and abs(np.linalg.norm(u) - 1.0) < 1e-6
  np.testing.assert_array_equal(first_u(1), u)
  assert not np.allclose(first_u(2), u)


def test_spectral_norm_refuses_a_layer_without_a_weight_matrix():
  with pytest.raises(TypeError, match="wraps Conv2DTranspose, Conv2D, Dense, "
                     "Embedding; got Flatten"):
    layers.SpectralNormalization(keras.layers.Flatten())


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
@pytest.mark.parametrize("kind", ["dense", "conv2d_transpose"])
def test_spectral_norm_under_mixed_precision(kind, policy):
  layer, x = _spectral(kind, policy)
  full, _ = _spectral(kind)  # the same weights in float32
  kernel = layer.layer.weights[0].numpy()
  for _ in range(3):
    y = layer(tf.cast(x, layer.layer.compute_dtype), training=True)
    full(x, training=True)
  assert y.dtype == layer.layer.compute_dtype
  assert np.isfinite(tf.cast(y, tf.float32).numpy()).all()
  # The variables stay float32 and the kernel is not rewritten (nor rounded
  # to the compute dtype); the power iteration runs in float32, as without
  # mixed precision.
  assert layer.spectral_u.dtype == "float32"
  np.testing.assert_array_equal(layer.layer.weights[0].numpy(), kernel)
  np.testing.assert_allclose(layer.spectral_u.numpy(),
                             full.spectral_u.numpy(), rtol=1e-6, atol=1e-7)


def test_spectral_norm_under_mirrored_strategy_matches_one_replica():
  # One training call in a replica context, inside a tf.function: every
  # replica ends with the same u, the u of a one-replica call.
  strategy = cpu_strategy(2)
  single, x = _spectral("conv2d_transpose")
  with strategy.scope():
    mirrored = layers.SpectralNormalization(
        keras.layers.Conv2DTranspose.from_config(single.layer.get_config()))
    mirrored.build(x.shape)
  mirrored.set_weights(single.get_weights())
  initial = single.spectral_u.numpy()
  dataset = strategy.experimental_distribute_dataset(
      tf.data.Dataset.from_tensor_slices(x).batch(x.shape[0]))

  @tf.function
  def step(x):
    return strategy.run(lambda x: mirrored(x, training=True), args=(x,))

  outputs = strategy.experimental_local_results(step(next(iter(dataset))))
  expected = single(x, training=True)
  first, second = (u.numpy() for u in strategy.experimental_local_results(
      mirrored.spectral_u.value))
  np.testing.assert_array_equal(first, second)
  np.testing.assert_allclose(first, single.spectral_u.numpy(), rtol=1e-6)
  assert not np.allclose(first, initial)  # the call did update u
  np.testing.assert_allclose(tf.concat(outputs, 0), expected, rtol=1e-5,
                             atol=1e-6)
