"""Exact resume for StyleGAN2 and R3GAN: w's average, noise, style mixing
and G's path-length state beside the step's modern parts.

On one device, in a file of its own so that the two test workers share the
suite's slowest checks (tests/test_train.py runs the DCGAN's on two
replicas; tests/models check that one and two replicas train these families
alike).
"""

import pytest

from tests.conftest import cpu_strategy
from tests.test_train import R3, STYLE, check_stop_and_restart


@pytest.mark.parametrize("parts", [STYLE, R3], ids=["stylegan2", "r3gan"])
def test_stop_and_restart_matches_an_uninterrupted_run(tmp_path, mnist_dir,
                                                       parts):
  check_stop_and_restart(tmp_path, mnist_dir, parts, cpu_strategy(1))
