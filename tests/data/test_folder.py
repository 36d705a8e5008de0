"""Tests for trainer.data.folder, the folder: source of PNG and JPEG files."""

import io
import pathlib

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from tests.data import read_all
from trainer.data import sources
from trainer.errors import BadImage
from trainer.errors import UserError


def _save(path: pathlib.Path, image: np.ndarray) -> None:
  """Writes uint8 [H, W] or [H, W, 3] as PNG/JPEG, by the suffix of `path`."""
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(image).save(path, quality=95)


def _smooth_rgb(seed: int, size: tuple[int, int] = (8, 8)) -> np.ndarray:
  """A distinct, smooth uint8 [H, W, 3] image (JPEG keeps it close)."""
  rows, cols = np.mgrid[:size[0], :size[1]]
  channels = [rows * 10 + seed * 30, cols * 10 + seed * 20,
              (rows + cols) * 5 + seed * 40]
  return (np.stack(channels, axis=-1) % 200 + 20).astype(np.uint8)


def _folder_request(**overrides) -> sources.Request:
  fields = dict(split="train", image_size=8, channels=3, resize=False)
  fields.update(overrides)
  return sources.Request(**fields)


def _match(read: np.ndarray, written: list[np.ndarray], atol: float) -> int:
  """Index of the written image that `read` decodes, within `atol` (mean)."""
  errors = [np.abs(read.astype(int) - w.astype(int)).mean() for w in written]
  best = int(np.argmin(errors))
  assert errors[best] <= atol, f"no written image matches (error {errors})"
  return best


@pytest.mark.parametrize("suffix, atol", [(".png", 0), (".jpg", 3)])
def test_folder_flat_is_one_class_with_the_written_pixels(
    tmp_path, suffix, atol):
  written = [_smooth_rgb(seed) for seed in range(4)]
  for i, image in enumerate(written):
    _save(tmp_path / f"img{i}{suffix}", image)
  source = sources.load(f"folder:{tmp_path}", _folder_request())
  assert (source.num_examples, source.num_classes) == (4, 1)
  assert source.image_shape == (8, 8, 3)
  images, labels = read_all(source)
  np.testing.assert_array_equal(labels, [0, 0, 0, 0])
  matched = sorted(_match(image, written, atol) for image in images)
  assert matched == [0, 1, 2, 3]


def test_folder_class_subfolders_give_sorted_labels(tmp_path):
  # Created out of order: labels must follow the sorted names.
  class_names = ["zebra", "ant", "mouse"]
  written, expected_labels = [], []
  for i, name in enumerate(class_names):
    for j in range(2):
      image = _smooth_rgb(seed=2 * i + j)
      _save(tmp_path / name / f"{j}.png", image)
      written.append(image)
      expected_labels.append(sorted(class_names).index(name))
  source = sources.load(f"folder:{tmp_path}", _folder_request())
  assert (source.num_examples, source.num_classes) == (6, 3)
  images, labels = read_all(source)
  matched = [_match(image, written, atol=0) for image in images]
  assert sorted(matched) == list(range(6))
  np.testing.assert_array_equal(labels, [expected_labels[m] for m in matched])


def test_folder_mixed_sizes_need_resize(tmp_path):
  _save(tmp_path / "a_small.png", _smooth_rgb(0, size=(8, 8)))
  _save(tmp_path / "b_large.png", _smooth_rgb(1, size=(10, 12)))
  # Listed, not decoded, at start: the first image gives the size.
  source = sources.load(f"folder:{tmp_path}", _folder_request())
  with pytest.raises(tf.errors.OpError) as error:
    read_all(source)
  bad = BadImage.found_in(error.value)
  assert bad.path == str(tmp_path / "b_large.png")
  assert "10x12" in bad.reason and "data.resize=True" in bad.reason

  source = sources.load(f"folder:{tmp_path}",
                        _folder_request(image_size=16, resize=True))
  assert source.image_shape == (16, 16, 3)
  images, _ = read_all(source)
  assert images.shape == (2, 16, 16, 3)
  assert images.dtype == np.uint8
  # Both images are bright (values 20..219); resizing must keep them so.
  assert images.min() >= 20 and images.max() <= 219


def _png_bytes(image: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="PNG")
  return buffer.getvalue()


def _truncated_png() -> bytes:
  """A PNG cut in the middle of its pixel data (noise does not compress)."""
  noise = np.random.default_rng(0).integers(0, 256, (8, 8, 3), np.uint8)
  data = _png_bytes(noise)
  return data[:len(data) // 2]


_CORRUPT = pytest.mark.parametrize("make_bytes", [
    lambda: b"this is not an image at all",
    _truncated_png,
], ids=["garbage", "truncated"])


@_CORRUPT
def test_folder_corrupt_image_is_met_when_read_naming_it(tmp_path, make_bytes):
  for i in range(3):
    _save(tmp_path / f"{i}.png", _smooth_rgb(i))
  (tmp_path / "1.png").write_bytes(make_bytes())
  source = sources.load(f"folder:{tmp_path}", _folder_request())
  good = source.read(tf.constant([0, 2], tf.int64))["image"].numpy()
  np.testing.assert_array_equal(good, [_smooth_rgb(0), _smooth_rgb(2)])
  with pytest.raises(tf.errors.OpError) as error:
    source.read(tf.constant([0, 1], tf.int64))
  assert BadImage.found_in(error.value).path == str(tmp_path / "1.png")
  assert source.skipped() == 0


@_CORRUPT
def test_folder_skip_replaces_a_corrupt_image_by_the_next_and_counts_it(
    tmp_path, make_bytes):
  for i in range(4):
    _save(tmp_path / f"{i}.png", _smooth_rgb(i))
  (tmp_path / "1.png").write_bytes(make_bytes())
  (tmp_path / "3.png").write_bytes(make_bytes())
  source = sources.load(f"folder:{tmp_path}",
                        _folder_request(on_bad_image="skip"))
  assert source.num_examples == 4  # the batch shapes stay as listed
  # In index order, wrapping around: 1 -> 2, 3 -> 0.
  images, _ = read_all(source)
  np.testing.assert_array_equal(
      images, [_smooth_rgb(i) for i in (0, 2, 2, 0)])
  read_all(source)
  assert source.skipped() == 2  # each bad file counted once


def test_folder_images_at_top_level_and_in_subfolders_is_a_user_error(
    tmp_path):
  _save(tmp_path / "top.png", _smooth_rgb(0))
  _save(tmp_path / "cls" / "nested.png", _smooth_rgb(1))
  with pytest.raises(UserError, match="both at its top level and in subf"):
    sources.load(f"folder:{tmp_path}", _folder_request())


@pytest.mark.parametrize("other_file", [None, "notes.txt"])
def test_folder_without_images_is_a_user_error(tmp_path, other_file):
  if other_file:
    (tmp_path / other_file).write_text("not an image")
  with pytest.raises(UserError, match="holds no PNG or JPEG images"):
    sources.load(f"folder:{tmp_path}", _folder_request())


_RGB = _smooth_rgb(3)
_GREY = _RGB[..., 0]


@pytest.mark.parametrize("written, channels, expected, atol", [
    # ITU-R BT.601 luma, the conversion of libpng and libjpeg.
    (_RGB, 1, (_RGB @ np.array([0.299, 0.587, 0.114]))[..., None], 1),
    (_GREY, 3, np.repeat(_GREY[..., None], 3, axis=-1), 0),
], ids=["rgb_as_grey", "grey_as_rgb"])
def test_folder_converts_to_the_model_channels(
    tmp_path, written, channels, expected, atol):
  _save(tmp_path / "image.png", written)
  source = sources.load(f"folder:{tmp_path}",
                        _folder_request(channels=channels))
  assert source.image_shape == (8, 8, channels)
  images, _ = read_all(source)
  assert images.shape == (1, 8, 8, channels)
  np.testing.assert_allclose(images[0], expected, atol=atol)
