"""What the entry points share: run flags, flag parsing and error exits.

Flags say where and how to run; the config (an ml_collections file) says what
to train and evaluate, and any of its fields can be overridden, e.g.
`--config.train.steps=500`.
"""

import contextlib
import os
import re
import sys
from typing import Iterator

# Before TensorFlow loads: keep its C++ start-up notices out of the log.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import logging  # pylint: disable=g-import-not-at-top,wrong-import-position
import ml_collections
from ml_collections import config_flags
import tensorflow as tf

import trainer
from trainer import config as config_lib
from trainer import distribute
from trainer.errors import UserError

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_DEFAULT_CONFIG = os.path.join(_REPO, "configs", "dcgan_mnist.py")

CONFIG = config_flags.DEFINE_config_file(
    "config", _DEFAULT_CONFIG,
    "Experiment config file, optionally with a variant: "
    "configs/dcgan_mnist.py:smoke.", lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "The run's directory (checkpoints, summaries, "
    "config.json, eval/); default runs/<config name>[_<variant>].")
_STRATEGY = flags.DEFINE_enum(
    "strategy", "mirrored", distribute.STRATEGIES.names(),
    "How to distribute the computation.")
_NUM_CPU_DEVICES = flags.DEFINE_integer(
    "num_cpu_devices", 1, "Split the CPU into this many logical devices, so "
    "that --strategy=mirrored runs several replicas without GPUs.")
_TPU = flags.DEFINE_string(
    "tpu", "", "TPU name or grpc:// address for --strategy=tpu.")


def default_workdir(config_arg: str) -> str:
  """runs/<config file stem>[_<variant>] for --config=<file>[:<variant>]."""
  path, _, variant = config_arg.partition(":")
  name = os.path.splitext(os.path.basename(path))[0]
  return os.path.join("runs", f"{name}_{variant}" if variant else name)


def workdir() -> str:
  """--workdir, or the default for --config."""
  return _WORKDIR.value or default_workdir(
      flags.FLAGS["config"].serialize().partition("=")[2])


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, where a bad --config file also gives one line.

  ml_collections raises an OSError for a config file it cannot read (when the
  config is first used) and turns an error of get_config() into a flag error
  that holds its traceback; the reason is the last line of either.
  """
  try:
    args = flags.FLAGS(argv)
    CONFIG.value.keys()  # A config file that failed to load raises here.
  except (flags.Error, OSError) as e:
    reason = str(e).strip().splitlines()[-1].strip()
    reason = re.sub(r"^\w+Error: ", "", reason)  # "ValueError: ..." -> "..."
    sys.exit(f"error: {reason}\nPass --helpshort or --helpfull to see help "
             "on flags.")
  return args


def config() -> ml_collections.ConfigDict:
  """--config with its overrides, resolved (trainer.config.resolve).

  Raises:
    UserError: a field out of range or a name that is not valid.
  """
  return config_lib.resolve(CONFIG.value)


def configure_threads() -> None:
  """TensorFlow's thread pools as the config's `runtime` section says."""
  runtime = config().runtime
  distribute.configure_threads(runtime.intra_op_threads,
                               runtime.inter_op_threads)


def create_strategy() -> tf.distribute.Strategy:
  """The strategy of --strategy, after setting up the CPU's threads and
  splitting it into devices if asked."""
  # tf.distribute logs every collective it builds at INFO.
  tf.get_logger().setLevel("WARNING")
  logging.info("TensorFlow %s, %s=%s", tf.__version__, trainer.ONEDNN_ENV,
               os.environ.get(trainer.ONEDNN_ENV, "(unset: TensorFlow's "
                              "choice)"))
  configure_threads()
  distribute.configure_cpu_devices(_NUM_CPU_DEVICES.value)
  return distribute.create_strategy(_STRATEGY.value, tpu=_TPU.value)


@contextlib.contextmanager
def errors_as_messages(*errors: type[Exception]) -> Iterator[None]:
  """Turns UserError and `errors` into `error: <message>` and exit code 1."""
  try:
    yield
  except (UserError, *errors) as e:
    # TensorFlow's warnings while the process shuts down (e.g. about the
    # values of a checkpoint that failed to restore) would bury the message.
    tf.get_logger().setLevel("ERROR")
    sys.exit(f"error: {e}")
