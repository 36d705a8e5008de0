"""Importing the package turns TensorFlow's oneDNN kernels on (x86-64), as
TensorFlow itself reports it, and an explicit setting in the environment
wins."""

import os
import platform
import subprocess
import sys

import pytest

import trainer
from tests.conftest import PROCESS_TIMEOUT_SECONDS, REPO

# Each test starts a fresh Python process that imports TensorFlow.
pytestmark = pytest.mark.slow

# What TensorFlow logs (at INFO) when it loads with its oneDNN kernels on.
_ONEDNN_ON = "oneDNN custom operations are on"


def _tensorflow_log(**env: str) -> str:
  """TensorFlow's C++ log when a fresh process imports the package first.

  The variable is taken out of the environment (this test process has it
  from the package) and set only as `env` says.
  """
  environ = {k: v for k, v in os.environ.items() if k != trainer.ONEDNN_ENV}
  environ.update(env, TF_CPP_MIN_LOG_LEVEL="0", CUDA_VISIBLE_DEVICES="")
  process = subprocess.run(
      [sys.executable, "-c", "import trainer; import tensorflow as tf; "
       "print(float(tf.constant(1.0) + 1.0))"],
      cwd=REPO, env=environ, capture_output=True, text=True,
      timeout=PROCESS_TIMEOUT_SECONDS, check=False)
  assert process.returncode == 0, process.stderr[-3000:]
  assert process.stdout.strip() == "2.0"
  return process.stderr


@pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"),
    reason="the package sets oneDNN on x86-64 CPUs only")
def test_importing_the_package_turns_onednn_on():
  assert _ONEDNN_ON in _tensorflow_log()


def test_an_explicit_setting_in_the_environment_wins():
  assert _ONEDNN_ON not in _tensorflow_log(**{trainer.ONEDNN_ENV: "0"})
