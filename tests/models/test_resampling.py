"""The [1, 3, 3, 1] resampling filter: values by the formula, per channel."""

import numpy as np
import pytest
import tensorflow as tf

from trainer.models import resampling


def _up(a: np.ndarray) -> np.ndarray:
  """1-D bilinear upsampling by 2 with zeros outside.

  Pixel 2i gets (a[i-1] + 3 a[i]) / 4, pixel 2i+1 (3 a[i] + a[i+1]) / 4.
  """
  padded = np.pad(a, 1)
  out = np.empty(2 * len(a))
  out[0::2] = (padded[:-2] + 3 * padded[1:-1]) / 4
  out[1::2] = (3 * padded[1:-1] + padded[2:]) / 4
  return out


def _down(a: np.ndarray) -> np.ndarray:
  """1-D low-pass [1, 3, 3, 1] / 8 around pixels 2j and 2j+1, zeros outside."""
  padded = np.pad(a, 1)
  return np.array([padded[2 * j:2 * j + 4] @ [1, 3, 3, 1] / 8
                   for j in range(len(a) // 2)])


def _separable(rows: list[np.ndarray], cols: list[np.ndarray]) -> np.ndarray:
  """Images [1, H, W, C]: channel c is the outer product rows[c] x cols[c]."""
  return np.stack([np.outer(r, c) for r, c in zip(rows, cols)],
                  axis=-1)[None].astype(np.float32)


@pytest.mark.parametrize(
    "resample,reference,factor",
    [(resampling.upsample, _up, 2.0), (resampling.downsample, _down, 0.5)],
    ids=["up", "down"])
def test_each_axis_is_filtered_by_the_formula(resample, reference, factor):
  # Separable images, one per channel: the filter is separable, so each
  # channel's output is the outer product of its rows' and columns'.
  rng = np.random.default_rng(0)
  rows = [rng.normal(size=8) for _ in range(3)]
  cols = [rng.normal(size=4) for _ in range(3)]
  out = resample(tf.constant(_separable(rows, cols))).numpy()
  assert out.shape == (1, int(8 * factor), int(4 * factor), 3)
  np.testing.assert_allclose(
      out, _separable([reference(r) for r in rows],
                      [reference(c) for c in cols]), rtol=1e-5, atol=1e-6)
