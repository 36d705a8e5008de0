"""What a test's first training call costs: building the step's graph.

Times the first and the second call of train_steps(2) for one of the test
suite's tiny configs, on one device, and counts the ops the trace creates.
From the repository's root:

    python -m tests.trace_cost stylegan2_pl
    python -m tests.trace_cost dcgan_r1_r2_ada
"""

import cProfile
import pstats
import sys
import time

from tests.conftest import load_config, synthetic_32
from tests.models.test_stylegan2 import _AGREEMENT, _config
from tests.test_step import TINY, _synthetic
from trainer import state as state_lib
from trainer import step as step_lib

import tensorflow as tf

CASES = {
    # tests/models/test_stylegan2.py's agreement config.
    "stylegan2_pl": lambda: (_config(**_AGREEMENT), synthetic_32()),
    # The heaviest of tests/test_step.py's matrix.
    "dcgan_r1_r2_ada": lambda: (load_config(**TINY, **{
        "model.loss": "wgan_gp", "penalties.names": "r1,r2",
        "penalties.r1.interval": 1, "penalties.r2.interval": 1,
        "augment.name": "ada", "augment.p": 0.5,
        "augment.p_mode": "fixed"}), _synthetic()),
}


def main(name: str) -> None:
  if name not in CASES:
    sys.exit(f"error: unknown case {name!r}; valid: {', '.join(CASES)}")
  config, source = CASES[name]()
  strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
  state = state_lib.build_state(config, strategy)
  train_steps = step_lib.make_train_steps(config, strategy, state, source, 0)
  profile = cProfile.Profile()
  start = time.perf_counter()
  profile.enable()
  train_steps(2)
  profile.disable()
  first = time.perf_counter() - start
  start = time.perf_counter()
  train_steps(2)
  second = time.perf_counter() - start
  stats = pstats.Stats(profile).stats
  ops = sum(calls for (path, _, function), (_, calls, *_) in stats.items()
            if path.endswith("framework/ops.py")
            and function == "_create_op_internal")
  prepare = sum(total for (_, _, function), (_, _, total, *_) in stats.items()
                if function == "TFE_Py_Execute"
                or "TFE_Py_Execute" in function)
  print(f"{name}: first call {first:.1f} s (under cProfile; {ops} ops "
        f"created, {prepare:.1f} s preparing and running the function), "
        f"second call {second:.2f} s")


if __name__ == "__main__":
  main(sys.argv[1] if len(sys.argv) > 1 else "stylegan2_pl")
