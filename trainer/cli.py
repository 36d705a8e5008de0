"""What the entry points share: run flags, flag parsing, the console's log and
error exits.

Flags say where and how to run; the config (an ml_collections file) says what
to train and evaluate, and any of its fields can be overridden, e.g.
`--config.train.steps=500`.

The console shows what a user needs: where a run goes, what it trains on,
its progress, warnings and errors. absl's verbosity flag brings back the
rest: with `-v=1` (`--verbosity=1`) the resolved config is logged too, and
TensorFlow's own log (its C++ notices, its INFO lines) is shown.
"""

import contextlib
import difflib
import keyword
import os
import re
import sys
import tempfile
from typing import Iterator

from trainer import signals

# Ctrl-C from here on, while TensorFlow loads (seconds) and the flags are
# parsed too, ends the program in one line with the exit code 130; the entry
# points' main then says more (trainer/signals.py).
signals.stop_in_one_line()

def _last_value(argv: list[str], flag: re.Pattern[str]) -> str | None:
  """The value of the last flag of `argv` that `flag` matches: its group 1
  (--flag=value), else the next argument (--flag value); None if none."""
  value = None
  for i, arg in enumerate(argv[1:], start=1):
    match = flag.match(arg)
    if match:
      value = match.group(1)
      if value is None:
        value = argv[i + 1] if i + 1 < len(argv) else ""
  return value


_VERBOSITY_FLAG = re.compile(r"^--?(?:v|verbosity)(?:=(.*))?$")


def verbosity(argv: list[str]) -> int:
  """The -v/--verbosity of `argv`, read before absl parses the flags.

  0 where there is none or it is not an integer (absl then says so).
  """
  value = _last_value(argv, _VERBOSITY_FLAG)
  return int(value) if value and re.fullmatch(r"-?\d+", value) else 0


_VERBOSE = verbosity(sys.argv) >= 1
# TensorFlow reads this once, when it loads (below). What its C++ code logs
# does not concern a run: notices (oneDNN's, no CUDA driver, "failed call to
# cuInit") and grappler's "remapper failed", up to ERROR; a real failure
# reaches Python as an exception. An explicit setting in the environment wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if _VERBOSE else "3")

# A line of TensorFlow's C++ log: "I0000 00:00:1796615234.670667    7354
# port.cc:153] oneDNN custom operations are on. ..."
_CPP_LOG_LINE = re.compile(r"^([IWEF])\d{4} \S+ +\d+ \S+:\d+\] ")
# absl's notice, before the first of those lines, that its log is not set up.
_ABSL_NOT_SET_UP = "WARNING: All log messages before absl::InitializeLog()"


def cpp_log_shown(line: str, min_level: int) -> bool:
  """Whether TF_CPP_MIN_LOG_LEVEL=`min_level` lets `line` of stderr through.

  Lines other than TensorFlow's C++ log always pass.
  """
  if line.startswith(_ABSL_NOT_SET_UP):
    return min_level < 1
  match = _CPP_LOG_LINE.match(line)
  return not match or "IWEF".index(match.group(1)) >= min_level


@contextlib.contextmanager
def _cpp_log_filtered(min_level: int) -> Iterator[None]:
  """Holds back what is written to stderr (file descriptor 2) within it, and
  then writes the lines that `cpp_log_shown` lets through.

  TensorFlow 2.21 logs its notices of loading (oneDNN's, "Could not find
  cuda drivers") through absl's C++ log before that log is set up, where
  TF_CPP_MIN_LOG_LEVEL does not apply; here it does.
  """
  if min_level < 1:
    yield
    return
  try:
    held = tempfile.TemporaryFile()
  except OSError:  # Nowhere to hold it: all of it is shown.
    yield
    return
  sys.stderr.flush()
  saved = os.dup(2)
  with held:
    os.dup2(held.fileno(), 2)
    try:
      yield
    finally:
      os.dup2(saved, 2)
      os.close(saved)
      held.seek(0)
      lines = held.read().decode(errors="replace").splitlines(keepends=True)
      sys.stderr.write("".join(
          line for line in lines if cpp_log_shown(line, min_level)))
      sys.stderr.flush()


_TF_LOG_LEVEL = os.environ["TF_CPP_MIN_LOG_LEVEL"]
with _cpp_log_filtered(int(_TF_LOG_LEVEL) if _TF_LOG_LEVEL.isdigit() else 0):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags
from absl import logging
import ml_collections
from ml_collections import config_flags

import trainer
from trainer import config as config_lib
from trainer import distribute
from trainer.errors import UserError
# pylint: enable=g-import-not-at-top,wrong-import-position

if not _VERBOSE:
  # TensorFlow's Python code logs through absl too, e.g. the duration of
  # every checkpoint's sharding callback.
  _TENSORFLOW_DIR = os.path.dirname(tf.__file__) + os.sep
  logging.get_absl_handler().addFilter(
      lambda record: record.levelno > logging.converter.STANDARD_INFO
      or not record.pathname.startswith(_TENSORFLOW_DIR))

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_DEFAULT_CONFIG = os.path.join(_REPO, "configs", "dcgan_mnist.py")

# An override of the config on the command line: --config.<path>[=value].
_OVERRIDE = re.compile(r"^--?(?:no)?config\.([^=]+)")
_CONFIG_FLAG = re.compile(r"^--?config(?:=(.*))?$")
# A field named by a Python keyword as ml_collections reads it: init["from"].
_SUBSCRIPT = re.compile(r'\["(\w+)"\]')


def _keywords_subscripted(arg: str) -> str:
  """--config.init.from=x as --config.init["from"]=x; other args as they are.

  ml_collections parses an override's path as Python, where a field named
  by a keyword (init.from) is a syntax error and a subscript is not.
  """
  match = _OVERRIDE.match(arg)
  if not match:
    return arg
  first, *rest = match.group(1).split(".")
  path = first + "".join(f'["{name}"]' if keyword.iskeyword(name)
                         else f".{name}" for name in rest)
  return arg[:match.start(1)] + path + arg[match.end(1):]


# ml_collections reads sys.argv itself, when the flag below is defined (the
# default config's overrides) and when the flags are parsed.
sys.argv[1:] = [_keywords_subscripted(arg) for arg in sys.argv[1:]]


def _field_error(config: ml_collections.ConfigDict, path: str) -> str | None:
  """Why config.<path> is not a field of `config`; None if it is one."""
  node, where = config, "config"
  for name in path.split("."):
    if not isinstance(node, ml_collections.ConfigDict):
      return f"{where} is a value ({type(node).__name__}), not a section"
    if name not in node:
      fields = sorted(node.keys())
      close = difflib.get_close_matches(name, fields, n=3)
      valid = (f"did you mean {' or '.join(map(repr, close))}?" if close
               else f"valid: {', '.join(fields)}")
      return f"no field {name!r} in {where}; {valid}"
    node, where = node[name], f"{where}.{name}"
  return None


def override_errors(argv: list[str]) -> list[str]:
  """The overrides (--config.<path>) in `argv` that name no field of the
  config of --config, each as "--config.<path>: <why>"; none where the
  config file does not load (parsing the flags says why)."""
  argv = flags.FLAGS.read_flags_from_files(argv, force_gnu=False)
  spec = _last_value(argv, _CONFIG_FLAG) or _DEFAULT_CONFIG
  path, _, variant = spec.partition(":")
  try:
    config = config_lib.from_file(path, variant or None)
  except Exception:  # pylint: disable=broad-except
    return []
  errors = []
  for arg in argv:
    match = _OVERRIDE.match(arg)
    path = match and _SUBSCRIPT.sub(r".\1", match.group(1))
    error = path and _field_error(config, path)
    if error:
      errors.append(f"--config.{path}: {error}")
  return errors


def _exit_on_bad_overrides(argv: list[str]) -> None:
  """Exits with an error line for the first override of no field, if any."""
  errors = override_errors(argv)
  if errors:
    sys.exit(f"error: {errors[0]}")


try:
  CONFIG = config_flags.DEFINE_config_file(
      "config", _DEFAULT_CONFIG,
      "Experiment config file, optionally with a variant: "
      "configs/dcgan_mnist.py:smoke.", lock_config=True)
except (KeyError, AttributeError):
  # Without --config, ml_collections applies the overrides to the default
  # config here, and an override of no field raises one of these.
  _exit_on_bad_overrides(sys.argv)
  raise
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

# What absl says of a value that does not parse, for a field of the config.
_BAD_VALUE = re.compile(r"^flag --config\.([^=]+)=(.*?): ")
_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number"}


def default_workdir(config_arg: str) -> str:
  """runs/<config file stem>[_<variant>] for --config=<file>[:<variant>]."""
  path, _, variant = config_arg.partition(":")
  name = os.path.splitext(os.path.basename(path))[0]
  return os.path.join("runs", f"{name}_{variant}" if variant else name)


def workdir() -> str:
  """--workdir, or the default for --config."""
  return _WORKDIR.value or default_workdir(
      flags.FLAGS["config"].serialize().partition("=")[2])


def _bad_value(message: str) -> str | None:
  """absl's message for a config field's value that did not parse, as
  "--config.<path>=<value>: config.<path> takes <type> (the config has
  <value>)"; None for other messages."""
  match = _BAD_VALUE.match(message)
  if not match:
    return None
  path, value = match.groups()
  # The flag itself: FlagValues refuses to give values before parsing ends.
  current = flags.FLAGS["config"].value
  for name in path.split("."):
    current = current[name]
  kind = _TYPE_WORDS.get(type(current), type(current).__name__)
  return (f"--config.{path}={value}: config.{path} takes {kind} (the config "
          f"has {current!r})")


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, where bad flags and a bad --config give one line.

  ml_collections raises a KeyError or AttributeError for an override of a
  field that does not exist, an OSError for a config file it cannot read
  (when the config is first used), and turns an error of get_config() into
  a flag error that holds its traceback, whose last line is the reason.
  """
  try:
    args = flags.FLAGS(argv)
    CONFIG.value.keys()  # A config file that failed to load raises here.
  except (KeyError, AttributeError):
    _exit_on_bad_overrides(argv)
    raise
  except (flags.Error, OSError) as e:
    reason = str(e).strip().splitlines()[-1].strip()
    bad_value = _bad_value(reason)
    if bad_value:
      sys.exit(f"error: {bad_value}")
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
  logging.vlog(1, "TensorFlow %s, %s=%s", tf.__version__, trainer.ONEDNN_ENV,
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
