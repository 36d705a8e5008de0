"""trainer.bench.mix_quality on mixes whose result is known: real digits
as the first and second images, the mix one of them or their average, read
by the real MNIST classifier."""

import sys

import numpy as np
import pytest

from tests.conftest import assert_one_error_line, real_digits, run_command
from trainer.bench import mix_quality


@pytest.fixture(scope="module")
def pairs() -> tuple[np.ndarray, np.ndarray]:
  """20 first and 20 second digits."""
  digits = real_digits(40)
  return digits[:20], digits[20:]


@pytest.mark.parametrize("mixed, taken", [("first", 0.0), ("second", 1.0)])
def test_a_mix_that_is_one_of_its_images_takes_all_or_nothing(pairs, mixed,
                                                              taken):
  first, second = pairs
  result = mix_quality.quality(first, second,
                               first if mixed == "first" else second)
  assert result["pairs"] == 20
  for name in ("ink", "slant", "width"):
    assert result[name]["taken"] == pytest.approx(taken, abs=1e-6)
    assert result[name]["closer_to_second"] == taken
  # Digits of the test split, paired by index: most pairs differ.
  digit = result["digit"]
  assert digit["pairs"] >= 10
  assert digit["of_first"] == 1 - taken and digit["of_second"] == taken


def test_the_average_of_two_digits_takes_half_of_their_ink(pairs):
  first, second = pairs
  result = mix_quality.quality(first, second, (first + second) / 2)
  # The ink is the mean pixel value: linear in the image.
  assert result["ink"]["taken"] == pytest.approx(0.5, abs=1e-5)
  assert result["ink"]["mixed"] == pytest.approx(
      (result["ink"]["first"] + result["ink"]["second"]) / 2, abs=1e-6)


@pytest.mark.parametrize("args, message", [
    ([], "--mix is required"),
    (["--mix=<tmp>/edit.npz", "--layers=0:4"],
     "--workdir and --layers go together"),
    (["--mix=<tmp>/missing.npz"], "--mix=<tmp>/missing.npz does not exist"),
    (["--mix=<tmp>/bad.npz"], "--mix=<tmp>/bad.npz is not a mix.npz"),
    (["--mix=<tmp>/edit.npz"], "--mix=<tmp>/edit.npz is not a mix.npz with "
     "first_images, second_images, images, first_ws, second_ws"),
])
def test_bad_input_is_one_error_line(tmp_path, args, message):
  (tmp_path / "bad.npz").write_bytes(b"not an npz")
  np.savez(tmp_path / "edit.npz", images=np.zeros((2, 3, 28, 28, 1)))
  args = [a.replace("<tmp>", str(tmp_path)) for a in args]
  assert_one_error_line(
      *run_command(sys.executable, "-m", "trainer.bench.mix_quality", *args),
      message.replace("<tmp>", str(tmp_path)))
