"""The restructured step and loop train exactly as the code before them.

tests/golden.py says how the recorded checksums were made (20 steps of each
family, on one device and on two replicas, by the code of 2026-12-07); the
runs here must give bit-identical weights, optimizer slots and counters.
tests/fixtures/sg2_step10 is a workdir that code wrote (StyleGAN2's smoke
run stopped at step 10): it must resume under today's code. It ended where
the uninterrupted run ends until StyleGAN2's resampling convolutions became
the reference's (a new function from step 10 on); since, it ends at the
checksums recorded for it by that code (golden.RESUMED).
"""

import json
import shutil

import pytest

from tests import golden

_RECORDED = json.loads(golden.RECORDED.read_text())


def _assert_recorded(workdir: str, key: str) -> None:
  found, recorded = golden.checksums(workdir), _RECORDED[key]
  differing = sorted(group for group in recorded if group != "all"
                     and found.get(group) != recorded[group])
  assert found["all"] == recorded["all"], (
      f"{key}: the weights differ from the recorded run's (groups: "
      f"{', '.join(differing) or 'renamed only'})")


@pytest.mark.slow
@pytest.mark.parametrize("strategy", list(golden.STRATEGIES))
@pytest.mark.parametrize("run", list(golden.RUNS))
def test_twenty_steps_are_bit_identical(run, strategy, tmp_path):
  golden.train(run, strategy, str(tmp_path))
  _assert_recorded(str(tmp_path), f"{run}/{strategy}")


@pytest.mark.slow
def test_workdir_of_old_code_resumes_to_the_same_weights(tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(golden.FIXTURES / "sg2_step10", workdir)
  golden.train("stylegan2", "one_device", str(workdir))
  _assert_recorded(str(workdir), golden.RESUMED)
