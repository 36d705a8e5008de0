"""Exact resume for StyleGAN2 and R3GAN: w's average, noise, style mixing
and G's path-length state beside the step's modern parts.

On one device and op by op (conftest's `eager`: the state, not the graph,
is what a restart must get right; tests/test_loop.py checks the traced
DCGAN's on two replicas, tests/models that one and two replicas train these
families alike).
"""

import pytest

from tests.conftest import cpu_strategy
from tests.test_loop import R3, STYLE, check_stop_and_restart

# Two whole training runs and a restart per test.
pytestmark = pytest.mark.slow


@pytest.mark.usefixtures("eager")
@pytest.mark.parametrize("parts", [STYLE, R3], ids=["stylegan2", "r3gan"])
def test_stop_and_restart_matches_an_uninterrupted_run(tmp_path, mnist_dir,
                                                       parts):
  check_stop_and_restart(tmp_path, mnist_dir, parts, cpu_strategy(1))
