"""`python -m trainer.bench.modconv`, its main run in this process on a
tiny shape: both modulated convolutions timed, one line per pass."""

import re

from absl.testing import flagsaver

from trainer.bench import modconv

_LINE = re.compile(r"^ *(\S+) (train|infer): scaled +([\d.]+)  grouped "
                   r"+([\d.]+)  grouped/scaled ([\d.]+)$")


def test_each_pass_of_each_shape_times_both_modes(capsys):
  with flagsaver.as_parsed(dtype="float32", shapes="2x8x8,1x4x4", trials="2",
                           repeats="1"):
    modconv.main([])
  header, *lines = capsys.readouterr().out.splitlines()
  assert header == "dtype float32; median of 2 trials of 1 passes; ms per pass"
  matches = [_LINE.match(line) for line in lines]
  assert all(matches), lines
  assert [m.group(1, 2) for m in matches] == [
      ("2x8x8", "train"), ("2x8x8", "infer"), ("1x4x4", "train"),
      ("1x4x4", "infer")]
  assert all(float(value) > 0 for m in matches for value in m.group(3, 4, 5))
