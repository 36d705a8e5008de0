"""Shared test setup: two logical CPU devices and the real MNIST location.

The real digits are the package's embedded MNIST test split
(trainer/data/assets/mnist, the data source embedded:mnist); the environment
variable GAN_TEST_MNIST_DIR points the tests at another copy of the IDX files.
"""

import contextlib
import functools
import importlib.util
import os
import pathlib
import subprocess

# The package first: it sets TensorFlow's oneDNN switch, which TensorFlow
# reads when it loads, so that the tests run the kernels the product runs.
from trainer import distribute  # pylint: disable=g-bad-import-order

from trainer import config as config_lib
from trainer.data import sources

import numpy as np
import pytest
import tensorflow as tf

REPO = pathlib.Path(__file__).resolve().parents[1]
MNIST_DIR = pathlib.Path(os.environ.get(
    "GAN_TEST_MNIST_DIR", sources.embedded_dir("mnist")))

# Mirrored tests need two replicas on a machine without GPUs. This must run
# before TensorFlow starts its devices, i.e. at collection time.
distribute.configure_cpu_devices(2)


# The test files that take longest in the full suite, longest first (the
# heavier files of `-m "not slow"` are among them). pytest-xdist hands out
# whole files in collection order (pyproject.toml: --no-loadscope-reorder),
# so these start first and the workers finish together, instead of one of
# them running a long file alone at the end.
_SLOWEST_FIRST = (
    "tests/test_loop.py", "tests/test_step.py",
    "tests/launch/test_local.py", "tests/test_preemption.py",
    "tests/bench/test_main.py", "tests/metrics/test_evaluator.py",
    "tests/apply/test_export.py", "tests/test_main.py",
    "tests/test_evaluate.py", "tests/models/test_stylegan2.py",
    "tests/apply/test_stylegan2.py", "tests/launch/test_slurm.py",
    "tests/test_learning_stylegan2.py", "tests/test_resume_families.py",
    "tests/test_learning.py", "tests/apply/test_tasks.py",
    "tests/test_learning_r3gan.py", "tests/apply/test_main.py",
    "tests/apply/test_directions.py",
    "tests/test_schedules.py", "tests/models/test_r3gan.py",
    "tests/features/test_mnist_classifier.py", "tests/data/test_main.py",
    "tests/data/test_sources.py", "tests/test_config.py",
    "tests/bench/test_curves.py", "tests/bench/test_flops.py",
    "tests/test_configs.py", "tests/bench/test_metric_plot.py",
    "tests/data/test_pipeline.py", "tests/test_augment.py",
    "tests/test_summaries.py", "tests/data/test_packed.py",
    "tests/features/test_inception_v3.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
  """The slowest files first; each file's tests stay together, in order."""
  rank = {name: i for i, name in enumerate(_SLOWEST_FIRST)}
  items.sort(key=lambda item: rank.get(
      item.path.relative_to(REPO).as_posix(), len(rank)))


@pytest.fixture(scope="session")
def mnist_dir() -> pathlib.Path:
  """The real MNIST IDX directory (by default the embedded copy); fails (not
  skips) if it is missing."""
  images = MNIST_DIR / "t10k-images-idx3-ubyte.gz"
  if not images.exists():
    pytest.fail(
        f"real MNIST not found: {images} is missing. Set GAN_TEST_MNIST_DIR "
        "to a directory with the MNIST IDX files (t10k-images-idx3-ubyte.gz, "
        "t10k-labels-idx1-ubyte.gz).", pytrace=False)
  return MNIST_DIR


@contextlib.contextmanager
def functions_run_eagerly():
  """Within it, tf.functions run op by op instead of building a graph.

  For tests that check values over many combinations of parts (the step's
  matrix, replica agreement, exact resume, schedules): building a step's graph
  is nearly all of such a test's time, 6x to 10x its eager run. The same
  Python code runs the same ops. What only a graph does (autograph's
  conversion of the loop, tf.cond around the lazy phases, grappler's rewrites)
  is checked by the traced tests of each path: a traced step of every loss,
  penalty and augmentation (tests/test_step.py), the DCGAN's replica agreement
  with ADA, lazy R1 and the path length, its exact resume
  (tests/test_loop.py), one traced step of each family and their learning
  checks. tf.data's functions are traced either way. Eager execution cannot
  gather from replicas (strategy.gather, which loop.run's image grids use),
  so a whole eager training run is on one device.
  """
  tf.config.run_functions_eagerly(True)
  try:
    yield
  finally:
    tf.config.run_functions_eagerly(False)


@pytest.fixture
def eager():
  """Runs the test's tf.functions eagerly (functions_run_eagerly)."""
  with functions_run_eagerly():
    yield


@functools.cache
def cpu_strategy(replicas: int) -> tf.distribute.Strategy:
  """MirroredStrategy over the first `replicas` logical CPUs.

  One per replica count for the whole session: as in a real run, one process
  uses one strategy (several strategies' collectives could share keys).
  """
  return tf.distribute.MirroredStrategy(
      [f"/cpu:{i}" for i in range(replicas)])


def load_config(variant: str | None = "smoke", *, resolved: bool = True,
                **overrides):
  """configs/dcgan_mnist.py's config, with dotted-path overrides.

  Resolved (trainer.config.resolve) as the entry points resolve it, unless
  `resolved` is False (to test what resolving refuses).
  Example: load_config("smoke", **{"model.loss": "hinge"}).
  """
  spec = importlib.util.spec_from_file_location(
      "dcgan_mnist", REPO / "configs" / "dcgan_mnist.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(variant)
  for path, value in overrides.items():
    *parents, leaf = path.split(".")
    node = config
    for parent in parents:
      node = node[parent]
    node[leaf] = value
  return config_lib.resolve(config) if resolved else config


def _values_before_and_after(config, source, replicas: int, steps: int):
  """Every value of the training state before and after `steps` steps on
  `replicas`, and how many of them are G's and D's (they come first).

  Networks (G_ema too), both optimizers, ADA's p and r_t sum and the
  penalties' state: what two runs that agree must hold alike.
  """
  from trainer import state as state_lib  # pylint: disable=g-import-not-at-top
  from trainer import step as step_lib  # pylint: disable=g-import-not-at-top
  strategy = cpu_strategy(replicas)
  state = state_lib.build_state(config, strategy)
  variables = (state.generator.variables + state.discriminator.variables
               + state.generator_ema.variables + state.d_optimizer.variables
               + state.g_optimizer.variables
               + [state.augment.p, state.augment.rt_sum]
               + list(state.penalties.variables))
  values = lambda: [np.array(v.numpy()) for v in variables]
  before = values()
  step_lib.make_train_steps(config, strategy, state, source, 0)(steps)
  counts = (len(state.generator.variables), len(state.discriminator.variables))
  return before, values(), counts


def assert_replicas_agree(config, source, steps: int = 2) -> None:
  """1 and 2 replicas train `config` alike.

  Measured against the training's own movement: for every value of the state,
  the two runs differ by less than 1% of how far the one-replica run moved it
  plus a few float32 roundings of the value itself (the same sums in another
  order differ by far less; a replica that saw other examples, other noise or
  a missed all-reduce differs by about the movement itself). An element-wise
  tolerance fails now and then instead: Adam divides by the root of a second
  moment, so a weight whose gradient is near zero turns a last-digit
  difference into a visible one, and a weight stored at 100x its scale (the
  mapping network's learning-rate multiplier) moves by few of its ulps.
  The control: G's and D's weights moved in the one-replica run.
  """
  before, one, (g_count, d_count) = _values_before_and_after(
      config, source, 1, steps)
  _, two, _ = _values_before_and_after(config, source, 2, steps)
  assert len(one) == len(two)
  moved = [float(np.linalg.norm(a - b)) for a, b in zip(one, before)]
  for index, (a, b) in enumerate(zip(one, two)):
    differ = float(np.linalg.norm(a - b))
    rounding = 1e-6 * (float(np.linalg.norm(a)) + np.sqrt(a.size))
    assert differ <= 0.01 * moved[index] + rounding, (
        f"value {index} of shape {a.shape}: 1 and 2 replicas differ by "
        f"{differ:.3g}, the one-replica run moved it by {moved[index]:.3g}")
  assert max(moved[:g_count]) > 1e-3
  assert max(moved[g_count:g_count + d_count]) > 1e-3


def synthetic_32(count: int = 16):
  """`count` random 32x32 grey images with labels 0..9 in turn, in memory."""
  images = np.random.default_rng(0).integers(
      0, 256, size=(count, 32, 32, 1), dtype=np.uint8)
  return sources.in_memory(
      "synthetic", images, np.arange(count) % 10, 10,
      sources.Request(split="train", image_size=32, channels=1,
                      resize=False))


def real_digits(count: int) -> np.ndarray:
  """The first `count` real MNIST test digits [N, 28, 28, 1] in [-1, 1]
  (embedded:mnist)."""
  source = sources.load("embedded:mnist", sources.Request(
      split=f"test[:{count}]", image_size=28, channels=1, resize=False))
  images = source.read(tf.range(count, dtype=tf.int64))["image"].numpy()
  return images.astype(np.float32) / 127.5 - 1.0


def assert_float32_finite_ends(g, d, z, labels) -> None:
  """G's images and D's logits are float32 and finite, in both modes.

  For networks whose inner layers may run in a reduced dtype.
  """
  for training in (False, True):
    images = g([z, labels], training=training)
    logits = d([images, labels], training=training)
    assert images.dtype == logits.dtype == tf.float32
    assert np.isfinite(images.numpy()).all()
    assert np.isfinite(logits.numpy()).all()


# Generous: a TensorFlow process takes seconds; this only stops a hung one.
PROCESS_TIMEOUT_SECONDS = 300
# Small networks and batches: these runs check behaviour, not image quality.
TINY_FLAGS = ("--config.model.g_width=8", "--config.model.d_width=8",
              "--config.train.batch_size=8")


# A tiny StyleGAN2 on MNIST resized to 32x32 (8 ws of 16 numbers): overrides
# of load_config's for tests of what needs a mapping network.
# trainer.bench's --peak_seconds in tests: short trials of the matmul peak,
# whose figure the tests check for consistency only (2 dtypes x 5 trials of
# the default second would be most of a small benchmark's time).
PEAK_SECONDS = 0.1

# R3GAN's: channels 32 at 4x4 to 16x16, 16 at 32x32, 8 at 64x64, 4 at
# 128x128; 8 groups at 32 channels, 4 at 16, 2 at 8, 1 at 4.
TINY_R3GAN = {"model.architecture": "r3gan", "model.image_size": 32,
              "model.channels": 1, "model.channel_base": 512,
              "model.channel_max": 32, "model.cardinality": 8,
              "model.expansion": 2, "model.blocks_per_stage": 2,
              "model.latent_dim": 8, "train.batch_size": 4}

TINY_STYLEGAN2 = {"model.architecture": "stylegan2", "model.image_size": 32,
                  "data.resize": True, "model.channel_base": 128,
                  "model.channel_max": 16, "model.w_dim": 16,
                  "model.mapping_layers": 2, "model.latent_dim": 8,
                  "train.batch_size": 8}


def smoke_flags(mnist_dir: pathlib.Path, *overrides: str) -> list[str]:
  """Trainer flags: the smoke config, tiny, on the real MNIST test split."""
  return [f"--config={REPO / 'configs' / 'dcgan_mnist.py'}:smoke",
          f"--config.data.source=idx:{mnist_dir}", "--config.data.split=test",
          *TINY_FLAGS, *overrides]


def run_command(*command: str,
                cwd: pathlib.Path = REPO) -> tuple[int, str, str]:
  """Runs a real process without GPUs; returns (code, stdout, stderr)."""
  env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
  process = subprocess.run(command, cwd=cwd, env=env, capture_output=True,
                           text=True, timeout=PROCESS_TIMEOUT_SECONDS,
                           check=False)
  return process.returncode, process.stdout, process.stderr


def assert_ended_with_line(code: int, stderr: str, expected_code: int,
                           line: str) -> None:
  """A process ended with `expected_code`, no traceback, `line` last."""
  assert code == expected_code and "Traceback" not in stderr, stderr[-3000:]
  assert stderr.strip().splitlines()[-1] == line, stderr[-3000:]


def assert_one_error_line(code: int, stdout: str, stderr: str,
                          message: str) -> None:
  """A process refused its input: exit code 1, no traceback, nothing on
  stdout and one `error:` line that holds `message`."""
  assert code == 1 and "Traceback" not in stderr, stderr[-2000:]
  lines = [l for l in stderr.splitlines() if l.startswith("error:")]
  assert len(lines) == 1 and message in lines[0], stderr[-2000:]
  assert stdout == ""


def checkpoint_values(path: pathlib.Path | str) -> dict[str, np.ndarray]:
  """Every saved value of a checkpoint (or a directory's latest one).

  Leaves out the object graph and the save counter, which say how and how
  often it was saved, not what was trained.
  """
  reader = tf.train.load_checkpoint(str(path))
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()
          if name != "_CHECKPOINTABLE_OBJECT_GRAPH"
          and "save_counter" not in name}


def saved_step(path: pathlib.Path | str) -> int:
  """The training step held by a checkpoint (or a directory's latest one)."""
  return int(tf.train.load_checkpoint(str(path)).get_tensor(
      "step/.ATTRIBUTES/VARIABLE_VALUE"))
