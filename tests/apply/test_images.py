"""Tests for trainer.apply.images: files, grids, masks, quality, baselines."""

import pathlib

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from trainer.apply import images
from trainer.errors import UserError

SIZE = 28


def _save(path: pathlib.Path, pixels: np.ndarray, **options) -> str:
  """Writes uint8 [H, W, C] with PIL (not the code under test); its path."""
  pixels = pixels[..., 0] if pixels.shape[-1] == 1 else pixels
  Image.fromarray(np.ascontiguousarray(pixels)).save(path, **options)
  return str(path)


def _random_uint8(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _structured(batch: int = 2, size: int = SIZE,
                channels: int = 1) -> np.ndarray:
  """[B, size, size, C] in [-1, 1]: a ramp, a disc and a checkerboard."""
  y, x = np.mgrid[:size, :size] / (size - 1)
  disc = np.where((y - 0.5)**2 + (x - 0.4)**2 < 0.1, 0.8, -0.6)
  checks = np.where((np.arange(size)[:, None] // 4 +
                     np.arange(size)[None] // 4) % 2, 0.5, -0.5)
  pictures = [2 * x - 1, disc, checks, 0.9 * (y - x)]
  stack = np.stack([pictures[(i + c) % len(pictures)]
                    for i in range(batch) for c in range(channels)])
  return stack.reshape(batch, channels, size, size).transpose(
      0, 2, 3, 1).astype(np.float32)


def _center_hole(batch: int = 2) -> np.ndarray:
  """[B, 28, 28, 1]: 1 = known, 0 = the 14x14 hole at rows/cols 7..20."""
  return images.MASKS.get("center")(batch, SIZE, 0)


# uint8 conversion.


@pytest.mark.parametrize("value, expected", [
    (-1.0, 0), (1.0, 255), (0.0, 128), (0.5, 191), (-0.999, 0),
    (-3.0, 0), (7.0, 255)])
def test_to_uint8_rounds_and_clips(value, expected):
  converted = images.to_uint8(np.array([value], np.float32))
  assert converted.dtype == np.uint8
  assert converted[0] == expected


def test_from_uint8_inverts_to_uint8_exactly():
  every_level = np.arange(256, dtype=np.uint8)
  floats = images.from_uint8(every_level)
  assert floats.dtype == np.float32
  assert floats[0] == -1.0 and floats[-1] == 1.0
  np.testing.assert_allclose(floats, every_level / 127.5 - 1, atol=1e-6)
  np.testing.assert_array_equal(images.to_uint8(floats), every_level)


# Reading and writing files.


@pytest.mark.parametrize("channels", [1, 3])
def test_write_png_then_read_image_round_trips(tmp_path, channels):
  pixels = _random_uint8((SIZE, SIZE, channels))
  path = str(tmp_path / "sub" / "image.png")
  images.write_png(path, images.from_uint8(pixels))  # float in, uint8 out
  assert Image.open(path).mode == ("L" if channels == 1 else "RGB")
  read = images.read_image(path, image_size=SIZE, channels=channels,
                           resize=False)
  assert read.dtype == np.uint8
  np.testing.assert_array_equal(read, pixels)


def test_read_image_reads_jpeg(tmp_path):
  path = _save(tmp_path / "gray.jpg", np.full((SIZE, SIZE, 1), 90, np.uint8))
  read = images.read_image(path, image_size=SIZE, channels=1, resize=False)
  assert read.shape == (SIZE, SIZE, 1)
  assert np.abs(read.astype(int) - 90).max() <= 2  # JPEG is lossy


def _missing(directory: pathlib.Path) -> str:
  return str(directory / "nowhere.png")


def _corrupt(directory: pathlib.Path) -> str:
  path = directory / "corrupt.png"
  path.write_bytes(b"these bytes are not an image at all")
  return str(path)


def _folder(directory: pathlib.Path) -> str:
  _gray(directory)
  return str(directory)


def _too_big(directory: pathlib.Path) -> str:
  return _save(directory / "big.png", _random_uint8((32, 32, 1)))


def _rgb(directory: pathlib.Path) -> str:
  return _save(directory / "rgb.png", _random_uint8((SIZE, SIZE, 3)))


def _gray(directory: pathlib.Path) -> str:
  return _save(directory / "gray.png", _random_uint8((SIZE, SIZE, 1)))


@pytest.mark.parametrize("make, channels, message", [
    (_missing, 1, "nowhere.png does not exist"),
    (_folder, 1, "is a folder, and this reads one image file (a PNG, JPEG, "
     "GIF or BMP); give one of its images"),
    (_corrupt, 1, "corrupt.png is not an image that can be decoded"),
    (_too_big, 1, "big.png is 32x32 but the model takes 28x28 images; pass "
     "--resize to resize it"),
    (_rgb, 1, "rgb.png has 3 channels (RGB) but the model takes 1 "
     "(grayscale); pass --resize to convert it"),
    (_gray, 3, "gray.png has 1 channel (grayscale) but the model takes 3 "
     "(RGB); pass --resize to convert it"),
])
def test_read_image_errors_say_what_is_wrong(tmp_path, make, channels,
                                             message):
  path = make(tmp_path)
  with pytest.raises(UserError) as error:
    images.read_image(path, image_size=SIZE, channels=channels, resize=False)
  assert message in str(error.value)


def test_read_image_resizes_rgb_to_smaller_grayscale(tmp_path):
  pixels = np.zeros((32, 32, 3), np.uint8)
  pixels[:, :16] = (200, 100, 50)  # luminance 124.2
  pixels[:, 16:] = (0, 0, 255)  # luminance 29.07
  path = _save(tmp_path / "rgb32.png", pixels)
  read = images.read_image(path, image_size=SIZE, channels=1, resize=True)
  assert read.shape == (SIZE, SIZE, 1) and read.dtype == np.uint8
  # Away from the edge between the halves, the resize keeps the colours.
  np.testing.assert_array_equal(read[:, :11], 124)
  np.testing.assert_array_equal(read[:, 17:], 29)


_RGB = _random_uint8((SIZE, SIZE, 3), seed=1)
_GRAY = _random_uint8((SIZE, SIZE, 1), seed=2)


@pytest.mark.parametrize("pixels, channels, expected", [
    # RGBA -> RGB at the right size: alpha dropped, nothing resized.
    (np.dstack([_RGB, np.full((SIZE, SIZE), 7, np.uint8)]), 3, _RGB),
    # Grayscale -> RGB repeats the channel.
    (_GRAY, 3, np.repeat(_GRAY, 3, axis=-1)),
    # A non-square image is stretched to a square.
    (np.full((20, 40, 3), 60, np.uint8), 3, np.full((SIZE, SIZE, 3), 60)),
])
def test_read_image_resize_converts(tmp_path, pixels, channels, expected):
  path = _save(tmp_path / "image.png", pixels)
  read = images.read_image(path, image_size=SIZE, channels=channels,
                           resize=True)
  np.testing.assert_array_equal(read, expected)


# Grids and animations.


@pytest.mark.parametrize("border", [0, 1, 3])
def test_grid_places_tiles_in_rows_with_gray_gaps(border):
  count, height, width, columns = 5, 2, 3, 2
  tiles = np.arange(1, count + 1, dtype=np.uint8)[:, None, None, None] * 10
  tiles = np.broadcast_to(tiles, (count, height, width, 1))
  picture = images.grid(tiles, columns, border=border)
  assert picture.dtype == np.uint8
  assert picture.shape == (3 * height + 2 * border, 2 * width + border, 1)
  expected = np.full(picture.shape, 128, np.uint8)  # gaps and the 6th tile
  for index in range(count):
    row, column = divmod(index, columns)
    top, left = row * (height + border), column * (width + border)
    expected[top:top + height, left:left + width] = 10 * (index + 1)
  np.testing.assert_array_equal(picture, expected)


def test_grid_converts_floats():
  picture = images.grid(np.full((1, 2, 2, 3), -1.0, np.float32), 1)
  np.testing.assert_array_equal(picture, np.zeros((2, 2, 3), np.uint8))


def _read_gif(path: str) -> tuple[list[np.ndarray], dict]:
  """Every frame of a GIF as uint8 [H, W, 3], and the first frame's info."""
  gif = Image.open(path)
  info = dict(gif.info)
  frames = []
  for index in range(gif.n_frames):
    gif.seek(index)
    frames.append(np.asarray(gif.convert("RGB")))
  return frames, info


@pytest.mark.parametrize("channels, tolerance", [(1, 0), (3, 8)])
def test_write_gif_loops_scaled_frames(tmp_path, channels, tolerance):
  frames = _random_uint8((3, 4, 5, channels), seed=channels)
  path = str(tmp_path / "anim.gif")
  images.write_gif(path, images.from_uint8(frames), frame_ms=120, scale=2)
  read, info = _read_gif(path)
  assert len(read) == 3
  assert info["loop"] == 0 and info["duration"] == 120
  for frame, original in zip(read, frames):
    expected = original.repeat(2, axis=0).repeat(2, axis=1)
    expected = np.broadcast_to(expected, (8, 10, 3)).astype(int)
    # Grayscale is exact; an RGB palette may round colours.
    assert np.abs(frame.astype(int) - expected).max() <= tolerance


# Masks.


def test_center_mask_hole_is_the_middle_square():
  mask = images.MASKS.get("center")(2, SIZE, 0)
  assert mask.shape == (2, SIZE, SIZE, 1) and mask.dtype == np.float32
  expected = np.ones((SIZE, SIZE), np.float32)
  expected[7:21, 7:21] = 0.0
  for image_mask in mask:
    np.testing.assert_array_equal(image_mask[..., 0], expected)
  assert (mask[0] == 0).sum() == 14 * 14


def test_left_half_mask_hole_is_the_left_columns():
  mask = images.MASKS.get("left_half")(1, SIZE, 0)[0, ..., 0]
  np.testing.assert_array_equal(mask[:, :14], 0.0)
  np.testing.assert_array_equal(mask[:, 14:], 1.0)


def test_random_boxes_are_reproducible_and_differ_across_images():
  make = images.MASKS.get("random_boxes")
  mask = make(8, SIZE, 3)
  np.testing.assert_array_equal(mask, make(8, SIZE, 3))
  assert not np.array_equal(mask, make(8, SIZE, 4))
  assert set(np.unique(mask)) == {0.0, 1.0}
  assert len({image.tobytes() for image in mask}) == 8
  holes = (mask == 0).sum(axis=(1, 2, 3))
  # The union of 3 boxes with sides in [28 // 8, 28 // 3] = [3, 9].
  assert (holes >= 3 * 3).all() and (holes <= 3 * 9 * 9).all()


@pytest.mark.parametrize("name", ["center", "left_half", "random_boxes"])
def test_load_mask_by_name_is_the_registered_mask(name):
  mask = images.load_mask(name, count=4, size=SIZE, seed=5, resize=False)
  np.testing.assert_array_equal(mask, images.MASKS.get(name)(4, SIZE, 5))


def _white_square(size: int, channels: int, start: int, end: int) -> np.ndarray:
  """uint8 [size, size, channels], black with a white square (the hole)."""
  pixels = np.zeros((size, size, channels), np.uint8)
  pixels[start:end, start:end] = 255
  if channels == 4:
    pixels[..., 3] = 255  # opaque
  return pixels


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_load_mask_from_png_white_is_the_hole(tmp_path, channels):
  path = _save(tmp_path / "mask.png", _white_square(SIZE, channels, 7, 21))
  mask = images.load_mask(path, count=3, size=SIZE, seed=0, resize=False)
  np.testing.assert_array_equal(mask, _center_hole(3))


def test_load_mask_resizes_png_by_nearest(tmp_path):
  path = _save(tmp_path / "mask56.png", _white_square(2 * SIZE, 1, 14, 42))
  mask = images.load_mask(path, count=2, size=SIZE, seed=0, resize=True)
  np.testing.assert_array_equal(mask, _center_hole(2))


def test_load_mask_png_of_another_size_is_an_error(tmp_path):
  path = _save(tmp_path / "mask32.png", _white_square(32, 1, 8, 24))
  with pytest.raises(UserError, match=f"mask {path} is 32x32 but the images "
                     "are 28x28; pass --resize"):
    images.load_mask(path, count=1, size=SIZE, seed=0, resize=False)


def test_load_mask_unknown_spec_lists_the_names(tmp_path):
  with pytest.raises(UserError) as error:
    images.load_mask(str(tmp_path / "no_such_mask"), count=1, size=SIZE,
                     seed=0, resize=False)
  message = str(error.value)
  assert "center, left_half, random_boxes" in message
  assert "PNG path is also accepted" in message


@pytest.mark.parametrize("value, message", [
    (0, "has no hole"), (255, "has no known pixel")])
def test_load_mask_needs_hole_and_known_pixels(tmp_path, value, message):
  path = _save(tmp_path / "flat.png", np.full((SIZE, SIZE, 1), value,
                                              np.uint8))
  with pytest.raises(UserError, match=message):
    images.load_mask(path, count=1, size=SIZE, seed=0, resize=False)


# Quality numbers.


@pytest.mark.parametrize("difference", [0.01, 0.1, 0.5, 2.0])
def test_psnr_is_the_closed_form_of_the_mse(difference):
  a = np.zeros((2, 8, 8, 3), np.float32) - 0.5
  b = a + np.float32(difference)
  np.testing.assert_allclose(images.psnr(a, b),
                             10 * np.log10(4 / difference**2), rtol=1e-6)


def test_psnr_counts_only_the_region():
  a = _structured(2)
  mask = _center_hole(2)
  b = np.where(mask == 0, a + 0.2, a)  # damage in the hole only
  hole_psnr = images.psnr(a, b, region=1 - mask)
  np.testing.assert_allclose(hole_psnr, 10 * np.log10(4 / 0.04), rtol=1e-5)
  whole = images.psnr(a, b)
  fraction = 14 * 14 / SIZE**2
  np.testing.assert_allclose(whole, 10 * np.log10(4 / (0.04 * fraction)),
                             rtol=1e-5)
  assert np.isposinf(images.psnr(a, b, region=mask)).all()


def test_psnr_of_identical_images_is_infinite():
  a = _structured(3)
  assert np.isposinf(images.psnr(a, a)).all()


def _to_0_1(pixels: np.ndarray) -> np.ndarray:
  """[-1, 1] -> [0, 1], where SSIM is defined."""
  return (pixels + 1) / 2


def _noisy(clean: np.ndarray, seed: int, noise: float = 0.3) -> np.ndarray:
  rng = np.random.default_rng(seed)
  return np.clip(clean + rng.normal(0, noise, clean.shape), -1,
                 1).astype(np.float32)


@pytest.mark.parametrize("a, b", [
    (np.random.default_rng(1).uniform(-1, 1, (3, SIZE, SIZE, 1)),
     np.random.default_rng(2).uniform(-1, 1, (3, SIZE, SIZE, 1))),
    (_structured(3), _noisy(_structured(3), 3)),
    (_structured(2, channels=3), _noisy(_structured(2, channels=3), 4, 0.1)),
    (_structured(2, size=40), np.roll(_structured(2, size=40), 2, axis=2)),
], ids=["random", "structured", "rgb", "shifted"])
def test_ssim_agrees_with_tensorflow_on_0_1(a, b):
  a, b = a.astype(np.float32), b.astype(np.float32)
  expected = tf.image.ssim(_to_0_1(a), _to_0_1(b), max_val=1.0).numpy()
  np.testing.assert_allclose(images.ssim(a, b), expected, atol=1e-4)


def test_ssim_is_the_uint8_ssim():
  """The number usually reported: SSIM on 8-bit images, data range 255."""
  a = _structured(3)
  b = _noisy(a, 7)
  expected = tf.image.ssim(images.to_uint8(a), images.to_uint8(b),
                           max_val=255).numpy()
  np.testing.assert_allclose(images.ssim(a, b), expected, atol=2e-3)


def test_ssim_of_an_image_with_itself_is_one_and_with_its_negation_low():
  a = _structured(4, channels=3)
  np.testing.assert_allclose(images.ssim(a, a), 1.0, atol=1e-12)
  assert (images.ssim(a, -a) < 0.0).all()


@pytest.mark.parametrize("row, column", [(14, 14), (5, 5), (22, 9), (0, 0),
                                         (27, 3)])
def test_ssim_of_one_pixel_region_is_its_centred_window(row, column):
  """The region map is the window on each pixel; reflection past a border."""
  a = _structured(2)
  b = _noisy(a, 5)
  region = np.zeros((2, SIZE, SIZE, 1), np.float32)
  region[:, row, column] = 1.0
  radius = 5
  padding = [(0, 0), (radius, radius), (radius, radius), (0, 0)]
  window = np.s_[:, row:row + 2 * radius + 1, column:column + 2 * radius + 1]
  expected = tf.image.ssim(_to_0_1(np.pad(a, padding, mode="reflect"))[window],
                           _to_0_1(np.pad(b, padding, mode="reflect"))[window],
                           max_val=1.0).numpy()
  np.testing.assert_allclose(images.ssim(a, b, region=region), expected,
                             atol=1e-4)


def test_ssim_region_sees_damage_that_the_whole_image_dilutes():
  a = _structured(2)
  mask = _center_hole(2)
  b = np.where(mask == 0, _noisy(a, 6, 0.5), a)  # damage in the hole only
  hole = images.ssim(a, b, region=1 - mask)
  whole = images.ssim(a, b)
  assert (hole < whole - 0.1).all()
  assert (whole < 1.0).all()
  # Rows 0 and 1 are known and their windows (rows up to 6) miss the hole.
  top = np.zeros_like(mask)
  top[:, :2] = 1.0
  np.testing.assert_allclose(images.ssim(a, b, region=top), 1.0, atol=1e-12)


# Operators and baselines.


def test_downsample_averages_blocks_and_has_a_gradient():
  x = tf.constant(_structured(2))
  with tf.GradientTape() as tape:
    tape.watch(x)
    low = images.downsample(x, 4)
    total = tf.reduce_sum(low)
  assert low.shape == (2, 7, 7, 1)
  blocks = x.numpy().reshape(2, 7, 4, 7, 4, 1).mean(axis=(2, 4))
  np.testing.assert_allclose(low.numpy(), blocks, atol=1e-6)
  # Each pixel is 1/16 of one block mean.
  np.testing.assert_allclose(tape.gradient(total, x).numpy(), 1 / 16)


def test_downsample_works_in_tf_function():
  low = tf.function(lambda x: images.downsample(x, 2))(
      tf.constant(_structured(1)))
  assert low.shape == (1, 14, 14, 1)


def test_downsample_by_a_non_divisor_lists_the_valid_factors():
  with pytest.raises(UserError, match="factor 3 does not divide the 28x28 "
                     "image size; valid factors: 2, 4, 7, 14, 28"):
    images.downsample(tf.zeros((1, SIZE, SIZE, 1)), 3)


def test_bicubic_upsample_of_a_constant_is_constant():
  low = np.full((2, 7, 7, 3), 0.3, np.float32)
  high = images.bicubic_upsample(low, 4)
  assert high.shape == (2, SIZE, SIZE, 3)
  np.testing.assert_allclose(high, 0.3, atol=1e-6)


def test_bicubic_upsample_clips_overshoot():
  checks = np.where(np.indices((7, 7)).sum(axis=0) % 2, 1.0, -1.0)
  high = images.bicubic_upsample(checks[None, ..., None].astype(np.float32),
                                 4)
  assert high.min() == -1.0 and high.max() == 1.0


@pytest.mark.parametrize("fill", [0.0, -1.0, 0.25])
def test_apply_mask_sets_holes_to_fill(fill):
  a = _structured(2)
  mask = _center_hole(2)
  masked = images.apply_mask(a, mask, fill=fill)
  assert masked.dtype == np.float32
  np.testing.assert_array_equal(masked[mask[..., 0] == 1],
                                a[mask[..., 0] == 1])
  np.testing.assert_array_equal(masked[mask[..., 0] == 0], fill)


def test_mean_fill_fills_holes_with_the_known_mean_per_channel():
  a = _structured(2, channels=3)
  mask = images.MASKS.get("random_boxes")(2, SIZE, 0)
  filled = images.mean_fill(a, mask)
  known = mask[..., 0] == 1
  for image, original, image_known in zip(filled, a, known):
    np.testing.assert_array_equal(image[image_known], original[image_known])
    means = original[image_known].mean(axis=0, dtype=np.float64)  # [C]
    holes = image[~image_known]  # [hole pixels, C]
    np.testing.assert_allclose(holes, np.broadcast_to(means, holes.shape),
                               atol=1e-6)


def test_diffusion_fill_reproduces_a_linear_ramp():
  y, x = np.mgrid[:SIZE, :SIZE] / (SIZE - 1)
  ramp = (0.8 * x - 0.6 * y + 0.1)[None, ..., None].astype(np.float32)
  filled = images.diffusion_fill(ramp, _center_hole(1))
  np.testing.assert_allclose(filled, ramp, atol=1e-3)
  # Mean filling alone does not: the test can tell them apart.
  assert np.abs(images.mean_fill(ramp, _center_hole(1)) - ramp).max() > 0.1


@pytest.mark.parametrize("name", ["center", "left_half", "random_boxes"])
def test_diffusion_fill_keeps_known_pixels_and_stays_in_their_range(name):
  a = _structured(2, channels=3)
  mask = images.MASKS.get(name)(2, SIZE, 1)
  filled = images.diffusion_fill(a, mask, iterations=300)
  known = mask[..., 0] == 1
  np.testing.assert_array_equal(filled[known], a[known])
  # A harmonic function takes its extremes on the boundary.
  for image, original, image_known in zip(filled, a, known):
    assert image.min() >= original[image_known].min() - 1e-6
    assert image.max() <= original[image_known].max() + 1e-6
