"""Tests for trainer.plots: the discriminator's judgement as a PNG."""

import numpy as np
import pytest
import tensorflow as tf

from trainer import plots

WIDTH, HEIGHT = 900, 400


def _probabilities(seed: int, n: int, a: float, b: float) -> np.ndarray:
  """n draws of Beta(a, b): D(x) values in [0, 1]."""
  return np.random.default_rng(seed).beta(a, b, size=n)


def _decode(png: bytes) -> np.ndarray:
  """PNG bytes -> uint8 [H, W, C]."""
  return tf.io.decode_png(png).numpy()


@pytest.fixture(scope="module")
def confident_d() -> bytes:
  """A D that tells real (near 1) from generated (near 0), sizes differing."""
  return plots.discriminator_png(_probabilities(0, 500, 8, 2),
                                 _probabilities(1, 300, 2, 8), step=1000)


def test_png_has_the_size_and_colour_channels(confident_d):
  assert confident_d.startswith(b"\x89PNG")
  image = _decode(confident_d)
  assert image.shape[:2] == (HEIGHT, WIDTH)
  assert image.shape[2] in (3, 4)


def test_png_is_not_blank(confident_d):
  rgb = _decode(confident_d)[..., :3].reshape(-1, 3)
  colours = np.unique(rgb, axis=0)
  # Text, axes and two coloured data sets, not one background colour.
  assert len(colours) > 50
  assert (rgb != rgb[0]).any(axis=1).mean() > 0.05


@pytest.mark.parametrize("real, fake, step", [
    # D fooled: both sets around 0.5.
    (_probabilities(0, 500, 5, 5), _probabilities(1, 300, 5, 5), 1000),
    # Same values, another step: the title differs.
    (_probabilities(0, 500, 8, 2), _probabilities(1, 300, 2, 8), 2000),
    # One value each is enough.
    (np.array([1.0]), np.array([0.0]), 1000),
])
def test_png_differs_for_other_inputs(confident_d, real, fake, step):
  other = plots.discriminator_png(real, fake, step=step)
  assert _decode(other).shape == _decode(confident_d).shape
  assert not np.array_equal(_decode(other), _decode(confident_d))


@pytest.mark.parametrize("real, fake, message", [
    ([], [0.5], "real is empty"),
    ([0.5], np.array([], np.float32), "fake is empty"),
    ([0.5, 1.2], [0.5], r"real must hold probabilities in \[0, 1\]"),
    ([0.5], [-0.1, 0.2], r"fake must hold probabilities in \[0, 1\]"),
    ([0.5, np.nan], [0.5], "1 of 2 values are not"),
    ([[0.5, 0.5]], [0.5], "1-D"),
])
def test_bad_inputs_raise(real, fake, message):
  with pytest.raises(ValueError, match=message):
    plots.discriminator_png(np.asarray(real), np.asarray(fake), step=0)
