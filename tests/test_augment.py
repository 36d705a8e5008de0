"""Augmentation before D: differentiable, replica-invariant, chosen by name."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from trainer import augment
from trainer.errors import UserError

SEED = tf.constant([3, 7])
PIPELINES = augment.AUGMENTATIONS.names()
CHANNELS = (1, 3)
EVERY_GROUP = [(name, group) for name in PIPELINES
               for group in augment.AUGMENTATIONS.get(name).valid_groups]
ADA_GEOMETRIC = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso",
                 "xfrac")
ADA_COLOUR = ("brightness", "contrast", "lumaflip", "hue", "saturation")
ADA_INTEGER = "xflip,rotate90,xint"


def _images(batch: int = 8, size: int = 16, channels: int = 3,
            seed: int = 0) -> tf.Tensor:
  """Random images [batch, size, size, channels] in [-1, 1]."""
  return tf.random.stateless_uniform([batch, size, size, channels],
                                     [seed, 1], -1.0, 1.0)


def _augment(name: str, images: tf.Tensor, groups: str = "", p: float = 1.0,
             seed: tf.Tensor = SEED) -> tf.Tensor:
  """One replica's augmentation of its whole batch."""
  draws = augment.Draws(seed, images.shape[0])
  return augment.build(name, groups)(images, tf.constant(p), draws)


def _per_image_equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Whether each image of a [B, H, W, C] equals that of b exactly [B]."""
  return np.all(a == b, axis=(1, 2, 3))


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("name", PIPELINES)
def test_shape_and_dtype_are_kept(name, channels):
  images = _images(channels=channels)
  out = _augment(name, images)
  assert out.shape == images.shape and out.dtype == images.dtype
  assert np.isfinite(out.numpy()).all()


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("name, groups", [
    ("ada", ",".join(ADA_GEOMETRIC)), ("diffaugment", "translation,cutout")])
def test_geometric_groups_keep_values_in_the_input_range(name, groups,
                                                         channels):
  # Bilinear weights are convex and reflection samples the image itself;
  # translation and cutout bring in zeros.
  images = _images(channels=channels)
  out = _augment(name, images, groups).numpy()
  assert out.min() >= -1.0 and out.max() <= 1.0
  assert not np.array_equal(out, images.numpy())


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("name, groups", [("ada", ",".join(ADA_COLOUR)),
                                          ("diffaugment", "color")])
def test_colour_groups_give_finite_changed_values(name, groups, channels):
  images = _images(channels=channels)
  out = _augment(name, images, groups).numpy()
  assert np.isfinite(out).all()
  assert not _per_image_equal(out, images.numpy()).any()


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("groups", ["", ",".join(ADA_COLOUR)])
def test_ada_at_p_zero_is_the_identity_bit_for_bit(groups, channels):
  images = _images(channels=channels)
  out = _augment("ada", images, groups, p=0.0)
  np.testing.assert_array_equal(tf.bitcast(out, tf.int32),
                                tf.bitcast(images, tf.int32))


@pytest.mark.parametrize("channels", CHANNELS)
def test_diffaugment_changes_every_image_whatever_p(channels):
  images = _images(channels=channels)
  out = _augment("diffaugment", images, p=0.0).numpy()
  assert not _per_image_equal(out, images.numpy()).any()


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("name, group", EVERY_GROUP)
def test_the_gradient_reaches_the_input_through_each_group(name, group,
                                                           channels):
  images = _images(channels=channels)
  weights = _images(channels=channels, seed=1)
  with tf.GradientTape() as tape:
    tape.watch(images)
    loss = tf.reduce_sum(_augment(name, images, group) * weights)
  grad = tape.gradient(loss, images).numpy()
  assert np.isfinite(grad).all()
  assert np.any(grad != 0)


@pytest.mark.parametrize("name", PIPELINES)
def test_the_gradient_reaches_a_generator_through_the_augmentation(name):
  size, channels = 8, 3
  generator = keras.Sequential([
      keras.Input([4]),
      keras.layers.Dense(size * size * channels, activation="tanh"),
      keras.layers.Reshape([size, size, channels])])
  noise = tf.random.stateless_normal([4, 4], [5, 5])
  with tf.GradientTape() as tape:
    fakes = generator(noise)
    loss = tf.reduce_mean(tf.square(_augment(name, fakes) - 0.5))
  grads = tape.gradient(loss, generator.trainable_weights)
  for grad in grads:
    assert np.isfinite(grad.numpy()).all()
    assert np.any(grad.numpy() != 0)


@pytest.mark.parametrize("name", PIPELINES)
def test_the_seed_alone_decides_the_output(name):
  images = _images()
  first = _augment(name, images).numpy()
  np.testing.assert_array_equal(first, _augment(name, images).numpy())
  other = _augment(name, images, seed=tf.constant([3, 8])).numpy()
  assert not np.array_equal(first, other)


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("name", PIPELINES)
def test_two_replicas_augment_their_halves_as_one_does_the_whole(name,
                                                                 channels):
  images = _images(channels=channels)
  half = images.shape[0] // 2
  pipeline = augment.build(name, "")
  p = tf.constant(0.7)
  whole = pipeline(images, p, augment.Draws(SEED, 2 * half))
  halves = [
      pipeline(images[:half], p,
               augment.Draws(SEED, 2 * half, rows=lambda t: t[:half])),
      pipeline(images[half:], p,
               augment.Draws(SEED, 2 * half, rows=lambda t: t[half:]))]
  np.testing.assert_array_equal(tf.concat(halves, 0), whole)


def test_draws_are_per_example_and_fresh_on_each_call():
  draws = augment.Draws(SEED, 6)
  first, second = draws.uniform([2]), draws.uniform([2])
  assert first.shape == (6, 2) and draws.normal().shape == (6,)
  assert not np.array_equal(first, second)
  integers = augment.Draws(SEED, 1000).integers(-2, 2).numpy()
  assert set(integers) == {-2, -1, 0, 1, 2}


@pytest.mark.parametrize("group", augment.ADA_GROUPS)
def test_each_ada_group_at_p_one_changes_rgb_images(group):
  images = _images()
  out = _augment("ada", images, group).numpy()
  assert not _per_image_equal(out, images.numpy()).all()


@pytest.mark.parametrize("group", ["hue", "saturation"])
def test_hue_and_saturation_are_identities_on_grey(group):
  images = _images(channels=1)
  np.testing.assert_array_equal(_augment("ada", images, group), images)


def test_xflip_flips_some_images_and_keeps_the_others():
  images = _images()
  out = _augment("ada", images, "xflip").numpy()
  flipped = _per_image_equal(out, tf.reverse(images, [2]).numpy())
  kept = _per_image_equal(out, images.numpy())
  assert np.all(flipped | kept)
  assert flipped.any() and kept.any()  # the flip itself is a coin toss


def test_rotate90_gives_a_quarter_turn_of_each_image():
  images = _images()
  out = _augment("ada", images, "rotate90").numpy()
  turns = [_per_image_equal(out, tf.image.rot90(images, k).numpy())
           for k in range(4)]
  assert np.all(np.any(turns, axis=0))
  assert sum(t.any() for t in turns) > 1


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("name, groups", [("ada", ADA_INTEGER),
                                          ("diffaugment", "translation")])
def test_integer_groups_only_move_pixels(name, groups, channels):
  images = _images(size=12, channels=channels).numpy()
  out = _augment(name, tf.constant(images), groups).numpy()
  zero = name == "diffaugment"  # zeros come in from outside
  for before, after in zip(images, out):
    allowed = np.append(before, 0.0) if zero else before
    assert np.isin(after, allowed).all()


def test_an_integer_translation_reflects_about_the_edge():
  # A 1-pixel-wide ramp: whatever the shift, each column's value is the
  # input's at the mirrored column, so the columns hold ramp values only
  # and the rows stay equal.
  ramp = tf.tile(tf.linspace(-1.0, 1.0, 16)[None, None, :, None],
                 [8, 16, 1, 1])  # [8, 16, 16, 1]
  out = _augment("ada", ramp, "xint").numpy()
  np.testing.assert_array_equal(out, np.broadcast_to(out[:, :1], out.shape))
  assert np.isin(out, ramp.numpy()).all()


def test_lumaflip_and_hue_act_about_the_luma_axis():
  images = _images()
  luma = tf.reduce_mean(images, axis=3, keepdims=True)
  flipped = _augment("ada", images, "lumaflip")
  # The chroma stays; the luma keeps or changes its sign.
  np.testing.assert_allclose(flipped - tf.reduce_mean(flipped, 3, True),
                             images - luma, atol=1e-5)
  turned = _augment("ada", images, "hue")
  # A turn about the axis keeps the luma and the chroma's length.
  np.testing.assert_allclose(tf.reduce_mean(turned, 3, True), luma, atol=1e-5)
  np.testing.assert_allclose(tf.norm(turned, axis=3), tf.norm(images, axis=3),
                             rtol=1e-4, atol=1e-5)


def test_lumaflip_negates_or_keeps_grey_images():
  images = _images(channels=1).numpy()
  out = _augment("ada", tf.constant(images), "lumaflip").numpy()
  kept = _per_image_equal(out, images)
  # The mean of the reflection's rows sums to -1 up to rounding.
  np.testing.assert_allclose(out[~kept], -images[~kept], rtol=1e-6)
  assert 0 < kept.sum() < len(kept)


@pytest.mark.parametrize("name", PIPELINES)
def test_works_in_a_tf_function_with_static_shapes(name):
  images = _images()
  pipeline = augment.build(name, "")

  @tf.function(input_signature=[tf.TensorSpec(images.shape, tf.float32),
                                tf.TensorSpec([], tf.float32),
                                tf.TensorSpec([2], tf.int32)])
  def run(images, p, seed):
    out = pipeline(images, p, augment.Draws(seed, images.shape[0]))
    assert out.shape == images.shape  # static, at tracing
    return out

  np.testing.assert_allclose(run(images, tf.constant(1.0), SEED),
                             _augment(name, images), atol=1e-5)


@pytest.mark.parametrize("name", PIPELINES)
def test_bfloat16_images_come_back_in_bfloat16(name):
  # Values a bfloat16 generator could give, in either dtype.
  rounded = tf.cast(tf.cast(_images(), tf.bfloat16), tf.float32)
  out = _augment(name, tf.cast(rounded, tf.bfloat16))
  assert out.dtype == tf.bfloat16
  np.testing.assert_allclose(tf.cast(out, tf.float32),
                             _augment(name, rounded), atol=0.05)


def test_no_name_means_no_augmentation():
  assert augment.build("", "") is None


@pytest.mark.parametrize("name, groups, message", [
    ("mixup", "", r"unknown augmentation 'mixup' in augment.name; "
     r"valid: ada, diffaugment"),
    ("ada", "xflip,foo", r"unknown group 'foo' of augmentation 'ada' in "
     r"augment.groups; valid: aniso, brightness, contrast, hue, lumaflip, "
     r"rotate, rotate90, saturation, scale, xflip, xfrac, xint"),
    ("diffaugment", "cutout, cutout", r"group 'cutout' is named twice .*"
     r"color, cutout, translation"),
    ("ada", " , ", r"no group of augmentation 'ada' .*aniso, brightness"),
])
def test_bad_names_say_what_is_valid(name, groups, message):
  with pytest.raises(UserError, match=message):
    augment.build(name, groups)


def test_build_gives_the_groups_asked_for_in_the_pipelines_order():
  diffaugment = augment.build("diffaugment", "cutout, color")
  assert diffaugment.groups == ("color", "cutout")
  assert not diffaugment.uses_p
  ada = augment.build("ada", "")
  assert ada.groups == augment.ADA_GROUPS and ada.uses_p


def test_images_must_be_grey_or_rgb():
  with pytest.raises(UserError, match="C 1 .* or 3"):
    _augment("ada", _images(channels=4))
