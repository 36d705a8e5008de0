"""The R3GAN networks, tiny: shapes, sizes, initialization, precision."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import TINY_R3GAN
from tests.conftest import assert_float32_finite_ends
from tests.conftest import assert_replicas_agree
from tests.conftest import cpu_strategy
from tests.conftest import load_config
from tests.conftest import synthetic_32
from trainer.errors import UserError
from trainer.models import ARCHITECTURES
from trainer.models import r3gan
from trainer import state as state_lib
from trainer import step as step_lib

TINY = TINY_R3GAN  # tests/conftest.py says its widths and groups


def _config(**overrides):
  return load_config(**{**TINY, **overrides})


def _networks(policy: str = "float32", **overrides):
  return ARCHITECTURES.get("r3gan")(_config(**overrides).model, policy)


def _z(batch: int = 4, seed: int = 0) -> tf.Tensor:
  return tf.random.stateless_normal([batch, 8], [seed, 1])


def _inputs(x, labels):
  return x if labels is None else [x, labels]


def _expected_sizes(size: int, channels: int, classes: int) -> tuple[int,
                                                                     int]:
  """(G's, D's) parameter counts of TINY at a size, from R3GAN's design."""
  latent, base, widest, blocks, card, expansion = 8, 512, 32, 2, 8, 2
  stages = [2**i for i in range(2, int(math.log2(size)) + 1)]
  width = {r: min(base // r, widest) for r in stages}
  w4 = width[4]

  def block(r):
    inner = width[r] * expansion
    groups = card * width[r] // w4
    return (width[r] * inner  # 1x1 expansion
            + 9 * (inner // groups) * inner  # grouped 3x3
            + inner * width[r]  # 1x1 projection
            + 2 * inner)  # the two activations' biases

  residual = blocks * sum(block(r) for r in stages)
  # 1x1 convolutions where the width changes between stages.
  transitions = sum(width[r // 2] * width[r] for r in stages[1:]
                    if width[r] != width[r // 2])
  g_in = latent * (2 if classes else 1)  # z and the label's embedding
  g = (classes * latent + g_in * w4 + 16 * w4 + residual + transitions
       + width[size] * channels)
  d = (channels * width[size] + residual + transitions + 16 * w4
       + w4 * (w4 if classes else 1) + classes * w4)
  return g, d


@pytest.mark.parametrize("size,channels,num_classes", [
    (32, 1, 0), (32, 3, 10), (64, 1, 10), (64, 3, 0), (128, 3, 10),
    (128, 1, 0)])
def test_shapes_sizes_and_ranges(size, channels, num_classes):
  g, d = _networks(**{"model.image_size": size, "model.channels": channels,
                      "model.num_classes": num_classes})
  assert (g.count_params(), d.count_params()) == _expected_sizes(
      size, channels, num_classes)
  labels = tf.constant([0, 3, 5, 9]) if num_classes else None
  for training in (False, True):
    images = g(_inputs(_z(), labels), training=training)
    assert images.shape == (4, size, size, channels)
    assert images.dtype == tf.float32
    assert np.isfinite(images.numpy()).all()
    logits = d(_inputs(images, labels), training=training)
    assert logits.shape == (4, 1) and logits.dtype == tf.float32
    assert np.isfinite(logits.numpy()).all()
  # No tanh: training gives the raw images, inference clips them to
  # [-1, 1] (here made larger than that by a larger last convolution).
  kernel = g.get_layer("aggregation").to_image.kernel
  kernel.assign(kernel * 100.0)
  raw = g(_inputs(_z(), labels), training=True)
  assert float(tf.reduce_max(tf.abs(raw))) > 1.0
  np.testing.assert_allclose(g(_inputs(_z(), labels), training=False),
                             tf.clip_by_value(raw, -1.0, 1.0), atol=1e-6)


def test_the_label_conditions_both_networks():
  g, d = _networks(**{"model.num_classes": 10})
  three, five = tf.fill([4], 3), tf.fill([4], 5)
  images = g([_z(), three], training=True)
  assert not np.allclose(images, g([_z(), five], training=True))
  assert not np.allclose(d([images, three]), d([images, five]))


def _block(channels=16, cardinality=4, num_blocks=8) -> r3gan.ResidualBlock:
  keras.utils.set_random_seed(0)
  block = r3gan.ResidualBlock(channels, cardinality=cardinality, expansion=2,
                              num_blocks=num_blocks)
  block.build((None, 8, 8, channels))
  return block


def test_a_fresh_block_is_the_identity():
  block = _block()
  x = tf.random.stateless_normal([2, 8, 8, 16], [0, 2])
  np.testing.assert_array_equal(block(x), x)
  assert not np.any(block.project.kernel.numpy())
  # The control: with a non-zero last convolution the block adds a branch.
  block.project.kernel.assign(tf.fill(block.project.kernel.shape, 0.1))
  assert not np.allclose(block(x), x)


def test_every_network_starts_with_identity_blocks():
  g, d = _networks()
  blocks = [layer for model in (g, d) for layer in model.layers
            if isinstance(layer, r3gan.ResidualBlock)]
  assert len(blocks) == 2 * 2 * 4  # G and D, 2 per stage, 4 stages
  assert all(not np.any(b.project.kernel.numpy()) for b in blocks)


def test_initial_scales_follow_the_fix_up_rule():
  # Wide enough that the sample standard deviation is close to the rule's:
  # gain sqrt(2 / 1.04) * L^(-1/4) over sqrt(fan-in).
  block = _block(channels=128, cardinality=8, num_blocks=16)
  gain = math.sqrt(2.0 / (1.0 + 0.2**2)) * 16**-0.25
  fan_ins = {"expand": 128, "grouped": 9 * 256 // 8}
  for name, fan_in in fan_ins.items():
    kernel = getattr(block, name).kernel.numpy()
    assert kernel.std() == pytest.approx(gain / math.sqrt(fan_in), rel=0.02)
    assert abs(kernel.mean()) < 0.05 * kernel.std()
  assert not np.any(block.act1.bias.numpy())


def test_the_3x3_convolution_is_grouped():
  block = _block(channels=16, cardinality=4)
  conv = block.grouped  # 32 channels in 4 groups of 8
  assert conv.kernel.shape == (3, 3, 8, 32)
  x = tf.random.stateless_normal([2, 8, 8, 32], [1, 2])
  changed = tf.concat([x[..., :8] + 1.0, x[..., 8:]], axis=-1)  # group 0
  before, after = conv(x).numpy(), conv(changed).numpy()
  assert not np.allclose(before[..., :8], after[..., :8])
  np.testing.assert_array_equal(before[..., 8:], after[..., 8:])
  # And it is four convolutions side by side.
  kernels = tf.split(conv.kernel, 4, axis=-1)
  pieces = [tf.nn.conv2d(part, k, 1, "SAME")
            for part, k in zip(tf.split(x, 4, axis=-1), kernels)]
  np.testing.assert_allclose(before, tf.concat(pieces, axis=-1), rtol=1e-5,
                             atol=1e-5)


def test_narrower_stages_have_proportionally_fewer_groups():
  _, d = _networks(**{"model.image_size": 128})
  groups = {layer.name: layer.cardinality for layer in d.layers
            if isinstance(layer, r3gan.ResidualBlock)}
  assert groups == {f"d{r}_block{i}": g
                    for r, g in ((128, 1), (64, 2), (32, 4), (16, 8), (8, 8),
                                 (4, 8)) for i in (0, 1)}


@pytest.mark.parametrize("policy,reduced",
                         [("mixed_bfloat16", "bfloat16"),
                          ("mixed_float16", "float16")])
def test_mixed_precision_in_the_top_resolutions(policy, reduced):
  # num_fp16_res=2 at 32x32: 16x16 and 32x32 reduced, 4x4 and 8x8 float32.
  g, d = _networks(policy, **{"model.num_fp16_res": 2,
                              "model.num_classes": 10})
  for model, prefix in ((g, "g"), (d, "d")):
    for res, expected in ((4, "float32"), (8, "float32"), (16, reduced),
                          (32, reduced)):
      assert model.get_layer(f"{prefix}{res}_block0").compute_dtype == (
          expected)
  assert g.get_layer("basis").compute_dtype == "float32"
  assert g.get_layer("aggregation").compute_dtype == "float32"
  assert d.get_layer("extraction").compute_dtype == reduced
  for name in ("basis_depthwise", "basis_linear", "projection"):
    assert d.get_layer(name).compute_dtype == "float32"
  assert_float32_finite_ends(g, d, _z(), tf.constant([1, 2, 3, 4]))


def test_float32_policy_keeps_every_layer_float32():
  g, d = _networks(**{"model.num_fp16_res": 4})
  assert {layer.compute_dtype for layer in g.layers + d.layers} == {
      "float32"}


@pytest.mark.parametrize("field,value,message", [
    ("model.image_size", 48, r"power of two from 8 to 1024 \(8, 16, 32"),
    ("model.image_size", 2048, "power of two from 8 to 1024"),
    ("model.channel_base", 16, "gives no channels at 32x32"),
    ("model.cardinality", 3, "valid cardinalities for these widths: 2, 4, 8, "
     "16, 32, 64$"),
    ("model.cardinality", 0, "model.cardinality=0 is out of range"),
    ("model.num_fp16_res", -1, "must be >= 0"),
])
def test_invalid_settings_are_user_errors(field, value, message):
  with pytest.raises(UserError, match=message):
    _networks(**{field: value})


@pytest.mark.slow
def test_one_training_step_moves_the_zero_convolutions():
  # R3GAN's recipe, conditional: rpgan with R1 and R2 (second derivatives
  # through D) on every step.
  config = _config(**{"model.num_classes": 10, "model.loss": "rpgan",
                      "penalties.names": "r1,r2", "penalties.r1.interval": 1,
                      "penalties.r2.interval": 1, "optim.beta1": 0.0})
  strategy = cpu_strategy(1)
  state = state_lib.build_state(config, strategy)
  metrics, first_bad = step_lib.make_train_steps(
      config, strategy, state, synthetic_32(), 0)(1)
  assert first_bad == -1
  assert all(np.isfinite(v) for v in metrics.values()), metrics
  assert metrics["grad_norm/d"] > 0 and metrics["grad_norm/g"] > 0
  # Each block's last convolution starts at zero, and a step moves it.
  for network in (state.generator, state.discriminator):
    projections = [v for v in network.trainable_variables
                   if v.path.endswith("/project/kernel")]
    assert len(projections) == 8
    assert all(np.any(v.numpy()) for v in projections)


# Without ADA, as tests/models/test_stylegan2.py's agreement test says why.
_AGREEMENT = {"train.batch_size": 8, "model.loss": "rpgan",
              "penalties.names": "r1,r2", "penalties.r1.interval": 1,
              "penalties.r2.interval": 2, "model.num_classes": 10,
              "schedules.optim.d_lr": "cosine(5e-5, 0.016)"}


@pytest.mark.slow
@pytest.mark.usefixtures("eager")
def test_one_and_two_replicas_agree():
  # R3GAN's parts (rpgan, eager R1, lazy R2, a schedule, labels): 2
  # steps of a global batch of 8 on one device and on two.
  assert_replicas_agree(_config(**_AGREEMENT), synthetic_32())
