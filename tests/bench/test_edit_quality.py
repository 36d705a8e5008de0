"""trainer.bench.edit_quality on edits whose effect is known: real digits
whose ink is scaled step by step, read by the real MNIST classifier."""

import sys

import numpy as np
import pytest

from tests.conftest import assert_one_error_line, real_digits, run_command
from trainer.bench import edit_quality


def _faded(digits: np.ndarray, factors: np.ndarray) -> np.ndarray:
  """Each digit's ink times each factor: [N, T, 28, 28, 1]."""
  ink = (digits + 1.0) / 2.0
  return (ink[:, None] * factors[None, :, None, None, None]) * 2.0 - 1.0


def test_an_edit_that_fades_the_ink_is_measured_so():
  factors = np.array([0.5, 0.75, 1.0])
  images = _faded(real_digits(40), factors)
  result = edit_quality.quality(images, np.array([-1.0, 0.0, 1.0]), "ink",
                                other="slant")
  assert result["direction_raises"]
  assert result["monotonic"] == 1.0
  assert result["correlation"] > 0.3  # the digits' ink varies too
  np.testing.assert_allclose(np.array(result["mean"]) / result["mean"][2],
                             factors, rtol=1e-5)
  assert result["class_kept"][1] == 1.0
  # Slant is a ratio of moments: scaling the ink changes none of it.
  np.testing.assert_allclose(result["other"]["mean_change"], 0.0, atol=1e-4)
  assert result["other"]["spread_at_0"] > 0


def test_monotonic_counts_the_images_that_follow_the_direction():
  images = _faded(real_digits(20), np.array([0.5, 0.75, 1.0]))
  images[:5] = images[:5, ::-1]  # a quarter falls where the rest rise
  result = edit_quality.quality(images, np.array([-1.0, 0.0, 1.0]), "ink")
  assert result["monotonic"] == 0.75


def test_reach_stops_where_the_class_goes():
  kept = np.array([0.5, 0.95, 1.0, 0.92, 0.8])
  assert edit_quality._reach(np.array([-2.0, -1.0, 0.0, 1.0, 2.0]), kept,
                             0.9) == [-1.0, 1.0]


@pytest.mark.parametrize("args, message", [
    (["--edit=<tmp>/missing.npz"], "--edit=<tmp>/missing.npz does not exist"),
    (["--edit=<tmp>/bad.npz"], "--edit=<tmp>/bad.npz is not an edit.npz"),
    (["--edit=<tmp>/bad.npz", "--measure=thickness"],
     "--measure=thickness is not a measure; valid: ink, slant, width"),
])
def test_bad_input_is_one_error_line(tmp_path, args, message):
  (tmp_path / "bad.npz").write_bytes(b"not an npz")
  args = [a.replace("<tmp>", str(tmp_path)) for a in args]
  assert_one_error_line(
      *run_command(sys.executable, "-m", "trainer.bench.edit_quality", *args),
      message.replace("<tmp>", str(tmp_path)))
