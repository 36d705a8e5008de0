r"""Trains a GAN: `python -m trainer.main --strategy=mirrored`.

Flags say where and how to run; the config (an ml_collections file) says what
to train, and any of its fields can be overridden, e.g.
`--config.train.steps=500`. See README.md.
"""

import os
import re
import signal
import sys
import threading

# Before TensorFlow loads: keep its C++ start-up notices out of the log.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from absl import app  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags
from absl import logging
from ml_collections import config_flags
import tensorflow as tf

from trainer import distribute
from trainer import train
from trainer.errors import UserError

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_DEFAULT_CONFIG = os.path.join(_REPO, "configs", "dcgan_mnist.py")

_CONFIG = config_flags.DEFINE_config_file(
    "config", _DEFAULT_CONFIG,
    "Experiment config file, optionally with a variant: "
    "configs/dcgan_mnist.py:smoke.", lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Directory for checkpoints, summaries and config.json; "
    "default runs/<config name>[_<variant>].")
_STRATEGY = flags.DEFINE_enum(
    "strategy", "mirrored", distribute.STRATEGIES.names(),
    "How to distribute training.")
_NUM_CPU_DEVICES = flags.DEFINE_integer(
    "num_cpu_devices", 1, "Split the CPU into this many logical devices, so "
    "that --strategy=mirrored runs several replicas without GPUs.")
_TPU = flags.DEFINE_string(
    "tpu", "", "TPU name or grpc:// address for --strategy=tpu.")


# 128 + SIGTERM, as a shell reports a process ended by SIGTERM.
_PREEMPTED_EXIT_CODE = 143


def _sigterm_received():
  """Installs a SIGTERM handler; returns a callable: was SIGTERM received?

  Schedulers (Slurm, Kubernetes, Cloud TPU) send SIGTERM before they preempt
  a job; training then saves the current step and stops.
  """
  received = threading.Event()

  def handler(signum, frame):
    del frame
    logging.warning("Received signal %d: saving at the end of this loop and "
                    "stopping", signum)
    received.set()

  signal.signal(signal.SIGTERM, handler)
  return received.is_set


def default_workdir(config_arg: str) -> str:
  """runs/<config file stem>[_<variant>] for --config=<file>[:<variant>]."""
  path, _, variant = config_arg.partition(":")
  name = os.path.splitext(os.path.basename(path))[0]
  return os.path.join("runs", f"{name}_{variant}" if variant else name)


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, where a bad --config file also gives one line.

  ml_collections raises an OSError for a config file it cannot read (when the
  config is first used) and turns an error of get_config() into a flag error
  that holds its traceback; the reason is the last line of either.
  """
  try:
    args = flags.FLAGS(argv)
    _CONFIG.value.keys()  # A config file that failed to load raises here.
  except (flags.Error, OSError) as e:
    reason = str(e).strip().splitlines()[-1].strip()
    reason = re.sub(r"^\w+Error: ", "", reason)  # "ValueError: ..." -> "..."
    sys.exit(f"error: {reason}\nPass --helpshort or --helpfull to see help "
             "on flags.")
  return args


def main(argv) -> None:
  # tf.distribute logs every collective it builds at INFO.
  tf.get_logger().setLevel("WARNING")
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  workdir = _WORKDIR.value or default_workdir(
      flags.FLAGS["config"].serialize().partition("=")[2])
  try:
    distribute.configure_cpu_devices(_NUM_CPU_DEVICES.value)
    strategy = distribute.create_strategy(_STRATEGY.value, tpu=_TPU.value)
    train.run(_CONFIG.value, workdir, strategy,
              stop_requested=_sigterm_received())
  except train.Preempted as e:
    logging.info("%s", e)
    # Non-zero, so that a scheduler restarts the job rather than count it done.
    sys.exit(_PREEMPTED_EXIT_CODE)
  except (UserError, train.NonFiniteLoss, train.ClusterFailure) as e:
    # TensorFlow's warnings while the process shuts down (e.g. about the
    # values of a checkpoint that failed to restore) would bury the message.
    tf.get_logger().setLevel("ERROR")
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
