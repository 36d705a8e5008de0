"""Tests for the stacked_mnist: source, on the real MNIST test split."""

import dataclasses
import pathlib

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from trainer.data import pipeline
from trainer.data import sources
from trainer.errors import UserError

# The model side of a stacked MNIST run: 28x28 RGB images of the test split.
REQUEST = sources.Request(split="test", image_size=28, channels=3,
                          resize=False)
NUM_MODES = 1000
# Enough examples to see every digit of a 100-digit split in every channel.
SAMPLE = 2000


def _read(source: sources.Source, indices) -> tuple[np.ndarray, np.ndarray]:
  """The images and labels of `source` at `indices`, as numpy arrays."""
  data = source.read(tf.constant(indices, tf.int64))
  return data["image"].numpy(), data["label"].numpy()


def _channels(images: np.ndarray) -> list[np.ndarray]:
  """uint8 [n, H, W, 3] -> the R, G and B planes, each [n, H, W, 1]."""
  return [images[..., c:c + 1] for c in range(3)]


@pytest.fixture(scope="module")
def spec(mnist_dir: pathlib.Path) -> str:
  return f"stacked_mnist:idx:{mnist_dir}"


@pytest.fixture(scope="module")
def stacked(spec: str) -> sources.Source:
  return sources.load(spec, REQUEST)


@pytest.fixture(scope="module")
def digits(mnist_dir: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
  """The digit source's images uint8 [N, 28, 28, 1] and labels [N]."""
  source = sources.load(f"idx:{mnist_dir}",
                        dataclasses.replace(REQUEST, channels=1))
  return _read(source, np.arange(source.num_examples))


def _digit_indices(planes: np.ndarray, digit_images: np.ndarray) -> np.ndarray:
  """For each plane [n, H, W, 1], the index of the equal digit image."""
  index = {image.tobytes(): i for i, image in enumerate(digit_images)}
  found = [index.get(plane.tobytes()) for plane in planes]
  assert None not in found, "a channel is not one of the digit images"
  return np.array(found)


@pytest.mark.parametrize("size, resize", [(28, False), (32, True)])
def test_describes_rgb_images_of_the_model_size_and_1000_classes(
    spec, size, resize):
  source = sources.load(
      spec, dataclasses.replace(REQUEST, image_size=size, resize=resize))
  assert source.num_examples == sources.STACKED_MNIST_SIZE == 128_000
  assert source.image_shape == (size, size, 3)
  assert source.num_classes == NUM_MODES
  images, labels = _read(source, [0, 1, source.num_examples - 1])
  assert images.shape == (3, size, size, 3) and images.dtype == np.uint8
  assert labels.dtype == np.int32


def test_channels_are_digits_and_the_label_is_their_decimal_code(
    stacked, digits):
  digit_images, digit_labels = digits
  images, labels = _read(stacked, np.arange(SAMPLE))
  red, green, blue = (digit_labels[_digit_indices(plane, digit_images)]
                      for plane in _channels(images))
  np.testing.assert_array_equal(labels, 100 * red + 10 * green + blue)


def test_two_loads_read_the_same_examples(spec, stacked):
  indices = [0, 7, 64_000, sources.STACKED_MNIST_SIZE - 1]
  again = sources.load(spec, REQUEST)
  for first, second in zip(_read(stacked, indices), _read(again, indices)):
    np.testing.assert_array_equal(first, second)


def test_examples_are_pinned_across_runs_and_machines(stacked):
  # A change here changes every stacked MNIST run: the triples come from the
  # raw PCG64 stream, which numpy keeps fixed.
  _, labels = _read(stacked, np.arange(5))
  np.testing.assert_array_equal(labels, [538, 753, 543, 976, 682])


def test_split_selects_the_digits(spec, digits):
  digit_images, _ = digits
  first = 100
  source = sources.load(
      spec, dataclasses.replace(REQUEST, split=f"test[:{first}]"))
  assert source.num_examples == sources.STACKED_MNIST_SIZE
  images, _ = _read(source, np.arange(SAMPLE))
  for plane in _channels(images):
    used = _digit_indices(plane, digit_images[:first])
    assert set(used) == set(range(first))


def test_every_mode_occurs_about_as_often_as_its_digits_predict(
    stacked, digits):
  _, digit_labels = digits
  batch = 16_000  # reads in parts: the whole source is 300 MB of pixels
  labels = np.concatenate([
      _read(stacked, np.arange(start, start + batch))[1]
      for start in range(0, stacked.num_examples, batch)])
  counts = np.bincount(labels, minlength=NUM_MODES)
  assert len(counts) == NUM_MODES and counts.min() > 0
  # MNIST's digits are not equally frequent: a mode's expected count is the
  # product of its three digits' frequencies.
  digit_p = np.bincount(digit_labels, minlength=10) / len(digit_labels)
  expected = len(labels) * np.einsum("i,j,k->ijk", digit_p, digit_p,
                                     digit_p).reshape(-1)
  chi_square = np.sum((counts - expected) ** 2 / expected)
  # 999 degrees of freedom: mean 999, standard deviation 45.
  assert chi_square < 999 + 5 * 45


def test_training_input_is_rgb_in_unit_range(stacked):
  input_fn = pipeline.make_input_fn(stacked, global_batch=4, n_disc=2, seed=0,
                                    shuffle=True, start_step=0)
  element = next(iter(input_fn(tf.distribute.InputContext())))
  assert element["label"].shape == (2, 4)
  assert element["label"].numpy().max() < 1000
  element = element["image"].numpy()
  assert element.shape == (2, 4, 28, 28, 3) and element.dtype == np.float32
  first = pipeline.first_examples(stacked, 4)["image"]
  assert first.shape == (4, 28, 28, 3)
  for images in (element, first):
    assert images.min() == -1.0 and images.max() == 1.0


def _eleven_class_folder(directory: pathlib.Path) -> pathlib.Path:
  """A folder source of 11 classes of one grey 28x28 image each."""
  for label in range(11):
    (directory / f"class_{label:02d}").mkdir(parents=True)
    Image.fromarray(np.full((28, 28), label, np.uint8)).save(
        directory / f"class_{label:02d}" / "digit.png")
  return directory


def test_digit_source_with_more_than_ten_classes_is_a_user_error(tmp_path):
  folder = _eleven_class_folder(tmp_path / "eleven")
  with pytest.raises(UserError, match="has 11 classes.*at most 10"):
    sources.load(f"stacked_mnist:folder:{folder}", REQUEST)


@pytest.mark.parametrize("inner, message", [
    # The digit source has no kind: the message lists the kinds.
    ("foo", "stacked_mnist:foo: .*kinds: embedded, folder, idx, packed, "
     "stacked_mnist, tfds"),
    ("", "<kind>:<argument>"),
    ("idx:/does/not/exist", "no such directory"),
    # Stacked MNIST is RGB, so it cannot be the digits of another one.
    ("stacked_mnist:idx:{mnist_dir}", "3-channel images; stacked_mnist needs "
     r"grey \(1-channel\)"),
])
def test_bad_digit_source_is_a_user_error(mnist_dir, inner, message):
  with pytest.raises(UserError, match=message):
    sources.load(f"stacked_mnist:{inner.format(mnist_dir=mnist_dir)}", REQUEST)


def test_grey_model_suggests_three_channels(spec):
  with pytest.raises(UserError, match="set model.channels=3"):
    sources.load(spec, dataclasses.replace(REQUEST, channels=1))
