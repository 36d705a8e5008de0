"""The StyleGAN2 networks, tiny: shapes, modulation, latents, precision."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import assert_float32_finite_ends
from tests.conftest import assert_replicas_agree
from tests.conftest import cpu_strategy
from tests.conftest import load_config
from tests.conftest import synthetic_32
from trainer.errors import UserError
from trainer.models import ARCHITECTURES
from trainer.models import stylegan2
from trainer import state as state_lib
from trainer import step as step_lib

# Channels 32 at 4x4 and 8x8, 16 at 16x16, 8 at 32x32, 4 at 64x64.
TINY = {"model.architecture": "stylegan2", "model.image_size": 32,
        "model.channels": 1, "model.channel_base": 256,
        "model.channel_max": 32, "model.w_dim": 16,
        "model.mapping_layers": 2, "model.latent_dim": 8,
        "train.batch_size": 4}


def _config(**overrides):
  return load_config(**{**TINY, **overrides})


def _networks(policy: str = "float32", **overrides):
  config = _config(**overrides)
  return ARCHITECTURES.get("stylegan2")(config.model, policy)


def _z(batch: int = 4, seed: int = 0) -> tf.Tensor:
  return tf.random.stateless_normal([batch, 8], [seed, 1])


def _inputs(x, labels):
  return x if labels is None else [x, labels]


@pytest.mark.parametrize("size,channels,num_classes",
                         [(32, 1, 0), (32, 3, 10), (64, 1, 10), (64, 3, 0),
                          (128, 3, 10)])
def test_shapes_and_ranges(size, channels, num_classes):
  g, d = _networks(**{"model.image_size": size, "model.channels": channels,
                      "model.num_classes": num_classes})
  labels = tf.constant([0, 3, 5, 9]) if num_classes else None
  for training in (False, True):
    images = g(_inputs(_z(), labels), training=training)
    assert images.shape == (4, size, size, channels)
    assert images.dtype == tf.float32
    assert np.isfinite(images.numpy()).all()
    logits = d(_inputs(images, labels), training=training)
    assert logits.shape == (4, 1) and logits.dtype == tf.float32
    assert np.isfinite(logits.numpy()).all()
  # Inference images are the training ones (here without style mixing)
  # clipped to [-1, 1]; at initialization the raw ones exceed it.
  mapping = stylegan2.mapping_of(g)
  assert mapping.num_ws == 2 * int(np.log2(size)) - 2
  raw = stylegan2.synthesis_of(g)(mapping(_inputs(_z(), labels)),
                                  training=True)
  assert float(tf.reduce_max(tf.abs(raw))) > 1.0
  inference = g(_inputs(_z(), labels), training=False)
  assert float(tf.reduce_max(tf.abs(inference))) <= 1.0
  np.testing.assert_allclose(inference, tf.clip_by_value(raw, -1, 1),
                             atol=1e-6)


def _expected_counts(size: int, channels: int, classes: int,
                     base: int = 256, most: int = 32, w: int = 16,
                     z: int = 8, mapping: int = 2, mbstd: int = 1):
  """(G trainable, G not trainable, D) parameters, from the architecture.

  Written from StyleGAN2's description, not from the code: the mapping's
  fully connected layers (the label's embedding concatenated to z); a 4x4
  constant; per resolution two modulated 3x3 convolutions (one at 4x4),
  each with an affine style layer (w -> its input channels), a bias, a
  noise strength and a fixed noise map, and a toRGB 1x1 modulated
  convolution with its affine layer and bias; D's fromRGB, per resolution
  down to 8 a 1x1 skip (no bias) and two 3x3 convolutions, then the 4x4
  epilogue (minibatch std, a 3x3 convolution, a fully connected layer, the
  logit) and the projection's class embedding.
  """
  width = lambda r: min(base // r, most)
  resolutions = [2**i for i in range(2, int(np.log2(size)) + 1)]
  # The label's embedding: a dense layer of the one-hot label, with bias.
  g = (classes * w + (w if classes else 0)
       + (z + (w if classes else 0)) * w + w
       + (mapping - 1) * (w * w + w))
  g += 16 * width(4)
  g_fixed = w  # w's average
  for r in resolutions:
    c, previous = width(r), width(r // 2)
    convs = [(c, c)] if r == 4 else [(previous, c), (c, c)]
    for cin, cout in convs:
      g += w * cin + cin + 9 * cin * cout + cout + 1
      g_fixed += r * r
    g += w * c + c + c * channels + channels
  d = channels * width(size) + width(size)
  for r in resolutions[:0:-1]:
    c, half = width(r), width(r // 2)
    d += c * half + 9 * c * c + c + 9 * c * half + half
  c4 = width(4)
  d += 9 * (c4 + mbstd) * c4 + c4 + 16 * c4 * c4 + c4
  if classes:  # c4 outputs, and the label's mapping: embedding and 8 layers
    d += c4 * c4 + c4 + classes * c4 + c4 + 8 * (c4 * c4 + c4)
  else:
    d += c4 + 1
  return g, g_fixed, d


@pytest.mark.parametrize("size,channels,num_classes",
                         [(32, 1, 0), (64, 3, 10), (128, 1, 10)])
def test_parameter_counts(size, channels, num_classes):
  g, d = _networks(**{"model.image_size": size, "model.channels": channels,
                      "model.num_classes": num_classes})
  count = lambda variables: sum(int(np.prod(v.shape)) for v in variables)
  assert (count(g.trainable_variables), count(g.non_trainable_variables),
          count(d.variables)) == _expected_counts(size, channels, num_classes)


def test_the_label_conditions_both_networks():
  g, d = _networks(**{"model.num_classes": 10})
  three, five = tf.fill([4], 3), tf.fill([4], 5)
  images = g([_z(), three], training=False)
  assert not np.allclose(images, g([_z(), five], training=False))
  assert not np.allclose(d([images, three]), d([images, five]))


def _copy_weights(source: keras.Model, target: keras.Model) -> None:
  assert len(source.variables) == len(target.variables)
  for s, t in zip(source.variables, target.variables):
    t.assign(s)


@pytest.mark.slow
def test_the_two_modulated_convolutions_agree():
  keras.utils.set_random_seed(0)
  scaled, _ = _networks(**{"model.modconv": "scaled",
                           "model.num_classes": 10})
  grouped, _ = _networks(**{"model.modconv": "grouped",
                            "model.num_classes": 10})
  _copy_weights(scaled, grouped)
  # Non-zero noise strengths, so that the noise path is compared too.
  scaled, grouped = _with_noise(scaled), _with_noise(grouped)
  inputs = [_z(), tf.constant([1, 2, 3, 4])]
  outputs, grads = [], []
  for g in (scaled, grouped):
    with tf.GradientTape() as tape:
      images = g(inputs, training=True)
      loss = tf.reduce_sum(images * tf.sin(tf.range(32.0))[:, None, None])
    outputs.append(images.numpy())
    grads.append([tf.convert_to_tensor(grad) for grad in
                  tape.gradient(loss, g.trainable_variables)])
  np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-4, atol=1e-5)
  for a, b in zip(*grads):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_psi_zero_gives_one_image_per_label():
  g, _ = _networks(**{"model.num_classes": 10})
  mapping, synthesis = stylegan2.mapping_of(g), stylegan2.synthesis_of(g)
  # Some history for w_avg, so that it is not its initial zeros.
  g([_z(seed=7), tf.fill([4], 2)], training=True)
  labels = tf.fill([4], 3)

  def images(z, psi):
    ws = mapping([z, labels], psi=psi)
    return synthesis(ws, noise_mode="const").numpy()

  truncated = images(_z(seed=0), 0.0)
  np.testing.assert_allclose(truncated, images(_z(seed=1), 0.0), atol=1e-6)
  np.testing.assert_allclose(truncated[0], truncated[3], atol=1e-6)
  assert not np.allclose(images(_z(seed=0), 1.0), images(_z(seed=1), 1.0))
  # psi = 0 is the synthesis of w_avg itself.
  w_avg = tf.tile(mapping.w_avg[None, None], [4, mapping.num_ws, 1])
  np.testing.assert_allclose(
      truncated, synthesis(w_avg, noise_mode="const"), atol=1e-6)
  # A cutoff truncates only the coarse ws.
  ws = mapping([_z(), labels], psi=0.0, truncation_cutoff=2)
  np.testing.assert_allclose(ws[:, :2], w_avg[:, :2], atol=1e-6)
  np.testing.assert_allclose(ws[:, 2:], mapping([_z(), labels])[:, 2:])


def test_w_avg_moves_in_training_mode_only():
  g, _ = _networks()
  mapping = stylegan2.mapping_of(g)
  np.testing.assert_array_equal(mapping.w_avg.numpy(), 0.0)
  g(_z(), training=False)
  mapping(_z(), psi=0.5)
  np.testing.assert_array_equal(mapping.w_avg.numpy(), 0.0)
  w = mapping(_z())[:, 0]  # [B, w_dim]
  g(_z(), training=True)
  expected = (1 - 0.995) * tf.reduce_mean(w, axis=0)
  # The layer averages in another order: equal within float32 rounding of
  # the sum (about 1e-7 of |w| ~ 1, times 0.005), also where the mean is
  # near 0, which a relative tolerance alone does not allow.
  np.testing.assert_allclose(mapping.w_avg.numpy(), expected, rtol=1e-5,
                             atol=1e-8)


def test_style_mixing_takes_a_second_z_from_a_cutoff():
  g, _ = _networks()
  mapping = stylegan2.mapping_of(g)
  z = _z(batch=64)
  plain = mapping(z).numpy()
  mixed = mapping(z, style_mixing=1.0).numpy()
  # The first w is always the example's own; later ones switch once.
  np.testing.assert_array_equal(mixed[:, 0], plain[:, 0])
  same = np.all(mixed == plain, axis=-1)  # [B, num_ws]
  assert not same.all()
  assert all(np.array_equal(row, np.sort(row)[::-1]) for row in same)
  # Deterministic given z; training mode mixes with the config's 0.9.
  np.testing.assert_array_equal(mixed, mapping(z, style_mixing=1.0))
  trained = mapping(z, training=True).numpy()
  assert 0.7 < np.mean(~np.all(trained == plain, axis=(1, 2))) < 1.0
  np.testing.assert_array_equal(
      stylegan2.mix(plain, mixed, range(3, plain.shape[1])),
      np.concatenate([plain[:, :3], mixed[:, 3:]], axis=1))
  # A middle range: the others' ws on either side stay.
  np.testing.assert_array_equal(
      stylegan2.mix(plain, mixed, range(2, 4)),
      np.concatenate([plain[:, :2], mixed[:, 2:4], plain[:, 4:]], axis=1))


def test_generator_is_a_function_of_its_inputs():
  g, _ = _networks()
  a = g(_z(), training=True).numpy()
  np.testing.assert_array_equal(a, g(_z(), training=True))
  b = g(_z(seed=1), training=True).numpy()
  assert not np.allclose(a, b)
  clone = keras.models.clone_model(g)
  _copy_weights(g, clone)
  np.testing.assert_array_equal(clone(_z(), training=False),
                                g(_z(), training=False))


def test_each_examples_draws_are_its_own():
  # Noise inputs and style mixing depend on the example alone, not on the
  # batch it is in: the halves of a batch are the batch's halves.
  g = _with_noise(_networks()[0])
  z = _z(batch=8)
  whole = g(z, training=True).numpy()
  halves = np.concatenate([g(z[:4], training=True), g(z[4:], training=True)])
  # Kernels of other batch sizes round differently: float32's noise.
  np.testing.assert_allclose(halves, whole, rtol=1e-4, atol=1e-5)
  # The control: the noise is there (examples differ without it).
  plain = stylegan2.synthesis_of(g)(stylegan2.mapping_of(g)(z), training=True,
                                    noise_mode="none")
  assert not np.allclose(plain, g(z, training=False), atol=1e-4)


def _with_noise(g: keras.Model) -> keras.Model:
  """G with non-zero noise strengths (they start at 0)."""
  for v in g.trainable_variables:
    if "noise_strength" in v.path:
      v.assign(0.3)
  return g


@pytest.mark.slow
def test_w_avg_is_the_average_over_replicas():
  strategy = cpu_strategy(2)
  with strategy.scope():
    g, _ = _networks()
  mapping = stylegan2.mapping_of(g)
  z = _z(batch=8)
  w = mapping(z)[:, 0]  # [8, w_dim], before any update
  shards = strategy.experimental_distribute_values_from_function(
      lambda context: z[4 * context.replica_id_in_sync_group:][:4])
  tf.function(lambda z: strategy.run(
      lambda z: g(z, training=True), args=(z,)))(shards)
  copies = [v.numpy() for v in mapping.w_avg.value.values]
  assert len(copies) == 2
  np.testing.assert_array_equal(copies[0], copies[1])
  np.testing.assert_allclose(copies[0], 0.005 * tf.reduce_mean(w, axis=0),
                             rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("policy,reduced",
                         [("mixed_bfloat16", "bfloat16"),
                          ("mixed_float16", "float16")])
def test_mixed_precision_in_the_top_resolutions(policy, reduced):
  # num_fp16_res=2 at 32x32: 16x16 and 32x32 reduced, 4x4 and 8x8 float32.
  g, d = _networks(policy, **{"model.num_fp16_res": 2,
                              "model.num_classes": 10})
  synthesis = stylegan2.synthesis_of(g)
  dtypes = {layer.name: layer.compute_dtype
            for layer in synthesis.convs + synthesis.to_rgbs}
  for res, expected in ((4, "float32"), (8, "float32"), (16, reduced),
                        (32, reduced)):
    assert dtypes[f"conv{res}_1"] == dtypes[f"torgb{res}"] == expected
    if res < 32:
      assert d.get_layer(f"conv{res * 2}_0").compute_dtype == (
          reduced if res >= 8 else "float32")
  assert d.get_layer("fromrgb").compute_dtype == reduced
  assert stylegan2.mapping_of(g).compute_dtype == "float32"
  for name in ("mbstd", "conv4", "fc", "logits", "projection"):
    assert d.get_layer(name).compute_dtype == "float32"
  # The layers' outputs are in their dtypes; the networks' ends float32.
  w = tf.zeros([4, 16])
  top = synthesis.convs[-1](tf.zeros([4, 32, 32, 8]), w, noise_mode="const")
  low = synthesis.convs[2](tf.zeros([4, 8, 8, 32]), w, noise_mode="const")
  assert (top.dtype, low.dtype) == (reduced, tf.float32)
  assert_float32_finite_ends(g, d, _z(), tf.constant([1, 2, 3, 4]))


def test_float32_policy_keeps_every_layer_float32():
  g, d = _networks(**{"model.num_fp16_res": 4})
  synthesis = stylegan2.synthesis_of(g)
  assert {layer.compute_dtype for layer in synthesis.convs} == {"float32"}
  assert {layer.compute_dtype for layer in d.layers} == {"float32"}


def _up_to_mbstd(d: keras.Model) -> keras.Model:
  """D up to its minibatch standard deviation's output."""
  return keras.Model(d.inputs, d.get_layer("mbstd").output)


@pytest.mark.parametrize("groups", ["consecutive", "strided"])
def test_minibatch_std_couples_the_examples_of_a_group(groups):
  # Read at the layer: through D's last layers the added channel's effect
  # on a logit can be below float32's resolution for some weights.
  _, d = _networks(**{"model.mbstd_groups": groups})
  images = tf.random.stateless_uniform([4, 32, 32, 1], [0, 1], -1, 1)
  changed = tf.tensor_scatter_nd_update(images, [[3]],
                                        -images[3:4])  # [B, H, W, C]
  up_to = _up_to_mbstd(d)
  before, after = up_to(images).numpy(), up_to(changed).numpy()
  assert not np.allclose(before[0, ..., -1], after[0, ..., -1], rtol=1e-4)
  np.testing.assert_array_equal(before[0, ..., :-1], after[0, ..., :-1])
  # The control: groups of one example share nothing.
  _, single = _networks(**{"model.mbstd_group": 1})
  np.testing.assert_allclose(single(images)[:3], single(changed)[:3],
                             rtol=1e-5)


def test_strided_groups_take_every_nth_example():
  # 8 examples in 2 groups of 4: strided groups are {0, 2, 4, 6} and
  # {1, 3, 5, 7} (StyleGAN2's), consecutive ones {0..3} and {4..7}.
  _, d = _networks(**{"model.mbstd_groups": "strided"})
  up_to = _up_to_mbstd(d)
  images = tf.random.stateless_uniform([8, 32, 32, 1], [0, 3], -1, 1)
  order = [0, 2, 4, 6, 1, 3, 5, 7]
  _, consecutive = _networks(**{"model.mbstd_groups": "consecutive"})
  consecutive.set_weights(d.get_weights())
  strided = up_to(images).numpy()
  regrouped = _up_to_mbstd(consecutive)(tf.gather(images, order)).numpy()
  np.testing.assert_allclose(strided[order], regrouped, rtol=1e-5,
                             atol=1e-6)


def test_minibatch_std_groups_do_not_depend_on_the_split():
  # Groups of 4 consecutive examples: a batch of 8 is two batches of 4.
  _, d = _networks()
  images = tf.random.stateless_uniform([8, 32, 32, 1], [0, 2], -1, 1)
  halves = np.concatenate([d(images[:4]), d(images[4:])])
  np.testing.assert_allclose(halves, d(images), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("batch", [1, 5, 6])
def test_minibatch_std_takes_any_batch(batch):
  # 6 in groups of 3, 5 and 1 in groups of 1.
  _, d = _networks()
  logits = d(tf.zeros([batch, 32, 32, 1]))
  assert logits.shape == (batch, 1)
  assert np.isfinite(logits.numpy()).all()
  # Also traced with an unknown batch.
  spec = tf.TensorSpec([None, 32, 32, 1])
  traced = tf.function(lambda x: d(x), input_signature=[spec])
  np.testing.assert_allclose(traced(tf.zeros([batch, 32, 32, 1])), logits,
                             rtol=1e-6)


def test_gradients_reach_every_trainable_weight():
  g, d = _networks(**{"model.num_classes": 10})
  labels = tf.constant([1, 2, 3, 4])
  with tf.GradientTape() as tape:
    logits = d([g([_z(), labels], training=True), labels], training=True)
    loss = tf.reduce_sum(tf.nn.softplus(logits))
  variables = g.trainable_variables + d.trainable_variables
  grads = tape.gradient(loss, variables)
  missing = [v.path for v, grad in zip(variables, grads)
             if grad is None or not np.any(tf.convert_to_tensor(grad))]
  assert not missing
  # Noise buffers and w_avg are not trained.
  assert {v.name for v in g.non_trainable_variables} == {"noise_const",
                                                         "w_avg"}


@pytest.mark.parametrize("field,value,message", [
    ("model.image_size", 48, "power of two"),
    ("model.modconv", "fused", "valid: auto, grouped, scaled"),
    ("model.channel_base", 16, "gives no channels"),
])
def test_invalid_settings_are_user_errors(field, value, message):
  with pytest.raises(UserError, match=message):
    _networks(**{field: value})


@pytest.mark.slow
def test_one_training_step():
  # Conditional, with R1 (second derivatives through D) in D's loss.
  config = _config(**{"model.num_classes": 10, "penalties.names": "r1",
                      "penalties.r1.interval": 1})
  strategy = cpu_strategy(1)
  state = state_lib.build_state(config, strategy)
  before = [v.numpy() for v in state.generator.trainable_variables]
  metrics, first_bad = step_lib.make_train_steps(
      config, strategy, state, synthetic_32(), 0)(1)
  assert first_bad == -1
  assert all(np.isfinite(v) for v in metrics.values()), metrics
  assert metrics["grad_norm/d"] > 0 and metrics["grad_norm/g"] > 0
  assert int(state.step.numpy()) == 1
  after = state.generator.trainable_variables
  assert all(not np.array_equal(b, a.numpy())
             for b, a in zip(before, after) if "kernel" in a.path)
  # G_ema's w_avg follows G's (non-trained variables are copied).
  w_avg = stylegan2.mapping_of(state.generator).w_avg.numpy()
  assert np.any(w_avg)
  np.testing.assert_array_equal(
      stylegan2.mapping_of(state.generator_ema).w_avg.numpy(), w_avg)


# ADA and R1 are left out: they act on D's side, the same for every
# architecture, and tests/test_step.py checks that replicas agree with them
# (and with the path length). The path
# length stays: its pass through the mapping network and the noise is this
# family's own (its noise, once drawn from w's bits, differed between
# replicas).
_AGREEMENT = {"train.batch_size": 8, "penalties.names": "pl",
              "penalties.pl.interval": 2}


@pytest.mark.slow
@pytest.mark.usefixtures("eager")
def test_one_and_two_replicas_agree():
  # The lazy path length, with style mixing and noise: 2 steps of a global
  # batch of 8 on one device and on two, op by op (the traced step is
  # test_one_training_step's).
  assert_replicas_agree(_config(**_AGREEMENT), synthetic_32())
