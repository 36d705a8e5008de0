"""The command line, `python -m trainer.main`, run as a user runs it.

Bad input must give one clear message that says what was wrong and what is
valid, as the last thing printed, with no traceback and a non-zero exit,
before any training and without writing to the workdir.

Each real process costs seconds of TensorFlow start-up, so real processes
check what only the command line does: its flags, the default workdir, the
log, and that a refusal is the last line printed. What the library decides
(a config value, the data, the workdir's model, resuming) is checked by
calling `trainer.loop.run` in this process, as `trainer.main` calls it.
"""

import hashlib
import json
import logging
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import (PROCESS_TIMEOUT_SECONDS, REPO, cpu_strategy,
                            load_config, run_command, smoke_flags)
from trainer import cli
from trainer.errors import UserError
from trainer import loop

TWO_REPLICAS = ("--strategy=mirrored", "--num_cpu_devices=2")
# The config of smoke_flags() (the smoke variant, tiny, on the real MNIST test
# split) as overrides of tests.conftest.load_config, for in-process runs.
_TINY = {"model.g_width": 8, "model.d_width": 8, "train.batch_size": 8}


def run_main(*args: str, cwd: pathlib.Path = REPO) -> tuple[int, str, str]:
  """Runs `python -m trainer.main *args`; returns (code, stdout, stderr)."""
  return run_command(sys.executable, "-m", "trainer.main", *args, cwd=cwd)


def smoke_args(mnist_dir: pathlib.Path, *overrides: str,
               workdir: pathlib.Path | None) -> list[str]:
  """The smoke config on the real MNIST test split, tiny.

  Without a `workdir` there is no --workdir flag (the default applies).
  """
  workdir_flags = [f"--workdir={workdir}"] if workdir else []
  return smoke_flags(mnist_dir, *workdir_flags, *overrides)


def smoke_config(mnist_dir: pathlib.Path, **overrides):
  """In-process, the config that smoke_args() gives the command line."""
  return load_config("smoke", **{
      "data.source": f"idx:{mnist_dir}", "data.split": "test", **_TINY,
      **overrides})


def last_message(stderr: str) -> str:
  """The last line printed, not counting absl's hint about --helpshort."""
  lines = [line for line in stderr.splitlines()
           if line.strip() and not line.startswith("Pass --helpshort")]
  return lines[-1] if lines else ""


def assert_has_words(message: str, words: list[str]) -> None:
  missing = [w for w in words if w.lower() not in message.lower()]
  assert not missing, f"{missing} not in the message {message!r}"


def assert_clear_error(returncode: int, stderr: str, words: list[str]) -> None:
  """One clear message, printed last, that holds all of `words`."""
  assert returncode != 0, stderr
  assert "Traceback" not in stderr, stderr
  assert "Training from step" not in stderr, stderr
  message = last_message(stderr)
  assert "error" in message.lower(), stderr
  assert_has_words(message, words)


def snapshot(directory: pathlib.Path) -> dict[str, tuple[str, int]]:
  """{relative path: (sha256, mtime in ns)} of every file under `directory`."""
  files = sorted(p for p in directory.rglob("*") if p.is_file())
  return {str(path.relative_to(directory)):
              (hashlib.sha256(path.read_bytes()).hexdigest(),
               path.stat().st_mtime_ns)
          for path in files}


# What the command line itself refuses, while it parses its flags: (flags,
# words the message must hold). A case that starts with its own --config= or
# an override (of the default config) runs without the smoke flags.
BAD_FLAGS = [
    pytest.param(
        ["--strategy=nope"],
        ["--strategy=nope", "default", "mirrored", "multi_worker",
         "one_device", "tpu"],
        id="unknown_strategy"),
    pytest.param(
        ["--config=configs/dcgan_mnist.py:nope"],
        ["'nope'", "smoke"],
        id="unknown_variant"),
    pytest.param(
        ["--config=configs/nope.py"],
        ["configs/nope.py", "no such file"],
        id="missing_config_file"),
    # With an override, ml_collections fails while parsing the flags.
    pytest.param(
        ["--config=configs/nope.py", "--config.train.steps=2"],
        ["configs/nope.py", "no such file"],
        id="missing_config_file_with_override"),
    # Without --config, ml_collections applies overrides to the default
    # config as trainer.cli defines the flag; with it, while parsing.
    pytest.param(
        ["--config.train.stepz=5"],
        ["--config.train.stepz", "no field 'stepz' in config.train",
         "did you mean 'steps'?"],
        id="misspelled_field_of_the_default_config"),
    pytest.param(
        ["--config=configs/dcgan_mnist.py:smoke", "--config.trian.steps=5"],
        ["--config.trian.steps", "no field 'trian' in config;",
         "did you mean 'train'?"],
        id="misspelled_section"),
    pytest.param(
        ["--config=configs/dcgan_mnist.py:smoke", "--config.nope.steps=5"],
        ["--config.nope.steps", "no field 'nope' in config;",
         "valid: augment, data, eval, init, model, optim, penalties, "
         "runtime, schedules, seed, train"],
        id="unknown_section"),
    # init.from, named by a Python keyword, is given as ml_collections reads
    # it (init["from"]): misspelled, and (without --config) refused by the
    # library for what it names.
    pytest.param(
        ["--config=configs/dcgan_mnist.py:smoke", "--config.init.fron=x"],
        ["--config.init.fron", "no field 'fron' in config.init",
         "did you mean 'from'?"],
        id="misspelled_keyword_field"),
    pytest.param(
        ["--config.init.from=network.pkl", "--config.train.steps=2"],
        ["init.from=network.pkl", "cannot read network pickle"],
        id="keyword_field_of_the_default_config"),
    pytest.param(
        ["--config=configs/dcgan_mnist.py:smoke", "--config.train.steps=abc"],
        ["--config.train.steps=abc", "takes an integer", "has 40"],
        id="value_of_another_type"),
]


@pytest.mark.slow
@pytest.mark.parametrize("flags,words", BAD_FLAGS)
def test_bad_flags_are_one_clear_error(flags, words, mnist_dir, tmp_path):
  workdir = tmp_path / "run"
  if flags[0].startswith("--config"):
    args = [*flags, f"--workdir={workdir}"]
  else:
    args = smoke_args(mnist_dir, "--config.train.steps=2", *flags,
                      workdir=workdir)

  returncode, _, stderr = run_main(*args)

  assert_clear_error(returncode, stderr, words)
  assert [line for line in stderr.splitlines()
          if line.startswith("error: ")] == [last_message(stderr)], stderr
  assert not workdir.exists()


# Overrides of configs/stylegan2.py, and what override_errors says of them.
@pytest.mark.parametrize("overrides,errors", [
    ([], []),
    (["--config.train.steps=5", "--noconfig.data.shuffle",
      "--config.model.w_dim", "64"], []),
    (["--config.model.w_dimm=64"],
     ["--config.model.w_dimm: no field 'w_dimm' in config.model; did you "
      "mean 'w_dim'?"]),
    # Nothing close: every field of the section.
    (["--config.runtime.xla", "true", "--config.traim.steps=5"],
     ["--config.runtime.xla: no field 'xla' in config.runtime; valid: "
      "inter_op_threads, intra_op_threads, jit_compile, mixed_precision",
      "--config.traim.steps: no field 'traim' in config; did you mean "
      "'train' or 'optim'?"]),
    (["--config.train.steps.every=5"],
     ["--config.train.steps.every: config.train.steps is a value (int), "
      "not a section"]),
])
def test_overrides_of_no_field_are_named_with_the_closest_fields(overrides,
                                                                 errors):
  argv = ["trainer.main", f"--config={REPO / 'configs' / 'stylegan2.py'}",
          *overrides]
  assert cli.override_errors(argv) == errors


# What the library refuses before training: (config overrides, replicas,
# words the message must hold). "{tmp}" is a fresh temporary directory.
# trainer.main prints the message as its one `error:` line (checked with a
# real process in test_other_models_workdir_is_refused_untouched).
BAD_CONFIG = [
    pytest.param(
        {"model.loss": "nope"}, 1,
        ["'nope'", "model.loss", "non_saturating", "minimax", "hinge",
         "wgan_gp"],
        id="unknown_loss"),
    pytest.param(
        {"data.source": "nope:x"}, 1,
        ["'nope'", "data.source", "folder", "idx", "tfds"],
        id="unknown_source_kind"),
    pytest.param(
        {"data.source": "idx:/no/such/dir"}, 1,
        ["/no/such/dir", "no such directory"],
        id="missing_idx_dir"),
    # Offline (as on this machine) the host check fails within seconds.
    pytest.param(
        {"data.source": "tfds:mnist", "data.split": "train",
         "data.tfds_data_dir": "{tmp}"}, 1,
        ["tfds:mnist", "not prepared", "{tmp}", "cannot be downloaded",
         "--config.data.source=embedded:mnist --config.data.split=test;",
         "--config.data.source=idx:<dir>, folder:<dir> or packed:<dir>",
         "--config.data.tfds_data_dir"],
        id="tfds_offline"),
    # The evaluation's real images: the hint names the eval flags.
    pytest.param(
        {"eval.source": "tfds:mnist", "eval.split": "train",
         "data.tfds_data_dir": "{tmp}", "data.tfds_download": False,
         "train.eval_every": 1}, 1,
        ["tfds:mnist", "not prepared", "{tmp}",
         "--config.eval.source=embedded:mnist --config.eval.split=test;",
         "--config.eval.source=idx:<dir>"],
        id="tfds_eval_source_offline"),
    pytest.param(
        {"model.image_size": 32}, 1,
        ["28x28", "32x32", "model.image_size=28", "data.resize"],
        id="image_size_mismatch"),
    pytest.param(
        {"train.batch_size": 7}, 2,
        ["train.batch_size=7", "not divisible", "2 replicas"],
        id="batch_not_divisible"),
    pytest.param(
        {"train.steps": 0}, 1,
        ["train.steps=0", ">= 1"],
        id="steps_out_of_range"),
    pytest.param(
        {"optim.beta1": 1.5}, 1,
        ["optim.beta1=1.5", "[0, 1)"],
        id="beta1_out_of_range"),
    pytest.param(
        {"runtime.mixed_precision": "float64"}, 1,
        ["runtime.mixed_precision", "float64", "float32", "mixed_bfloat16",
         "mixed_float16"],
        id="unknown_precision"),
    pytest.param(
        {"runtime.jit_compile": True}, 2,
        ["jit_compile", "logical CPU devices", "--num_cpu_devices=1",
         "jit_compile=False"],
        id="xla_on_logical_cpus"),
]


@pytest.mark.parametrize("overrides,replicas,words", BAD_CONFIG)
def test_bad_config_is_refused_before_training(overrides, replicas, words,
                                               mnist_dir, tmp_path):
  scratch = tmp_path / "scratch"
  scratch.mkdir()
  overrides = {k: v.format(tmp=scratch) if isinstance(v, str) else v
               for k, v in overrides.items()}
  words = [w.format(tmp=scratch) for w in words]
  workdir = tmp_path / "run"

  # The config is built inside: checking it may already refuse it, as the
  # command line's check of --config does.
  with pytest.raises(UserError) as raised:
    loop.run(smoke_config(mnist_dir, **{"train.steps": 2, **overrides}),
              str(workdir), cpu_strategy(replicas))

  assert_has_words(str(raised.value), words)
  assert not workdir.exists()


_LOG_LINE = re.compile(
    r"step (\d+)/(\d+) \| [\d.]+ examples/sec \|.*\| time left "
    r"(\d+:\d\d:\d\d|\?)$", re.MULTILINE)
# The run of `trained`.
_STEPS, _LOG_EVERY = 4, 2


@pytest.fixture(scope="module")
def trained(mnist_dir, tmp_path_factory) -> tuple[pathlib.Path, str]:
  """(workdir, stderr) of a real 4-step run on 2 replicas without --workdir.

  It runs in a fresh directory, so its workdir is the default one there.
  """
  cwd = tmp_path_factory.mktemp("trained")
  returncode, _, stderr = run_main(*smoke_args(
      mnist_dir, *TWO_REPLICAS, f"--config.train.steps={_STEPS}",
      f"--config.train.log_every={_LOG_EVERY}", workdir=None), cwd=cwd)
  assert returncode == 0, stderr
  return cwd / "runs" / "dcgan_mnist_smoke", stderr


def trained_config(mnist_dir, **overrides):
  """In-process, the config of the `trained` run."""
  return smoke_config(mnist_dir, **{"train.steps": _STEPS,
                                    "train.log_every": _LOG_EVERY,
                                    **overrides})


@pytest.mark.slow
def test_trains_logs_and_writes_its_config(trained, mnist_dir):
  workdir, stderr = trained
  assert "Training from step 0 to 4" in stderr, stderr
  assert "Strategy mirrored with 2 replica(s)" in stderr, stderr
  assert [m[:2] for m in _LOG_LINE.findall(stderr)] == [
      ("2", "4"), ("4", "4")], stderr
  saved = json.loads((workdir / "config.json").read_text())
  assert saved["data"]["source"] == f"idx:{mnist_dir}"
  assert saved["data"]["split"] == "test"
  assert (saved["model"]["g_width"], saved["model"]["d_width"]) == (8, 8)
  assert saved["train"]["batch_size"] == 8
  assert (saved["train"]["steps"], saved["train"]["log_every"]) == (4, 2)


# What TensorFlow prints in a run that does not concern its user: notices of
# its C++ code (at levels up to ERROR) and INFO lines of its Python code.
_TENSORFLOW_NOTICES = (
    "failed call to cuInit", "oneDNN", "remapper failed",
    "Could not find cuda drivers", "cpu_feature_guard", "absl::InitializeLog",
    "Sharding callback duration")
# The start of the resolved config, as logged.
_CONFIG_DUMP = ("Resolved config:", '"augment": {')


@pytest.mark.slow
@pytest.mark.parametrize("verbose", [False, True], ids=["default", "-v=1"])
def test_the_console_shows_the_run_and_the_verbosity_flag_the_rest(
    verbose, mnist_dir, tmp_path):
  workdir = tmp_path / "run"
  # As a user's shell has it: neither the devices nor TensorFlow's log level
  # set.
  env = {k: v for k, v in os.environ.items()
         if k not in ("CUDA_VISIBLE_DEVICES", "TF_CPP_MIN_LOG_LEVEL")}
  process = subprocess.run(
      [sys.executable, "-m", "trainer.main", "--strategy=one_device",
       *smoke_args(mnist_dir, "--config.train.steps=2",
                   "--config.train.log_every=1", workdir=workdir),
       *(["-v=1"] if verbose else [])],
      cwd=REPO, env=env, capture_output=True, text=True,
      timeout=PROCESS_TIMEOUT_SECONDS, check=False)
  assert process.returncode == 0, process.stderr[-3000:]
  console = process.stdout + process.stderr

  assert [m[:2] for m in _LOG_LINE.findall(console)] == [
      ("1", "2"), ("2", "2")], console
  assert "Training from step 0 to 2 on idx:" in console, console
  assert (f"in {workdir}; its full config: {workdir / 'config.json'} and "
          "TensorBoard's Text tab") in console, console
  shown = [text for text in (*_TENSORFLOW_NOTICES, *_CONFIG_DUMP)
           if text in console]
  if verbose:
    assert set(_CONFIG_DUMP) <= set(shown), console
    assert set(shown) & set(_TENSORFLOW_NOTICES), console
  else:
    assert not shown, console


@pytest.mark.parametrize("argv,level", [
    ([], 0), (["-v=1"], 1), (["--verbosity", "2"], 2),
    (["-v", "1", "--workdir=x", "--v=-1"], -1), (["-v=much"], 0),
    (["--vmodule=train=2"], 0)])
def test_the_verbosity_is_read_before_the_flags_are_parsed(argv, level):
  assert cli.verbosity(["trainer.main", *argv]) == level


# Lines of stderr as TensorFlow 2.21 prints them, and their level (-1: not
# TensorFlow's log, always shown).
_STDERR_LINES = {
    "WARNING: All log messages before absl::InitializeLog() is called are "
    "written to STDERR": 0,
    "I0000 00:00:1796615234.670667    7354 port.cc:153] oneDNN custom "
    "operations are on.": 0,
    "W0000 00:00:1796615247.889262    7354 dataset.cc:997] Input of "
    "GeneratorDatasetOp::Dataset will not be optimized": 1,
    "E0000 00:00:1796615245.109386    7354 cuda_platform.cc:52] failed call "
    "to cuInit: INTERNAL: CUDA error": 2,
    "F0000 00:00:1796615245.109386    7354 check.cc:1] Check failed": 3,
    "Traceback (most recent call last):": -1,
    "error: tfds:mnist is not prepared": -1,
}


@pytest.mark.parametrize("min_level", [0, 1, 2, 3])
def test_tensorflows_log_is_shown_from_its_min_level(min_level):
  shown = [line for line in _STDERR_LINES
           if cli.cpp_log_shown(line, min_level)]
  assert shown == [line for line, level in _STDERR_LINES.items()
                   if level < 0 or level >= min_level]


@pytest.mark.slow
def test_default_workdir_is_under_runs_in_the_cwd(trained):
  workdir, _ = trained  # <cwd>/runs/dcgan_mnist_smoke
  saved = json.loads((workdir / "config.json").read_text())
  assert saved["train"]["steps"] == 4
  assert list((workdir / "checkpoints").glob("ckpt-4.*"))


@pytest.mark.slow
def test_runs_again_without_repeating_and_resumes_for_more_steps(
    trained, mnist_dir, tmp_path, caplog):
  caplog.set_level(logging.INFO)
  caplog.set_level(logging.INFO, logger="absl")
  workdir = tmp_path / "run"
  shutil.copytree(trained[0], workdir)
  checkpoints = snapshot(workdir / "checkpoints")

  # The same config again: already done, nothing trained or saved.
  state = loop.run(trained_config(mnist_dir), str(workdir), cpu_strategy(2))
  assert int(state.step.numpy()) == 4
  assert "Already trained to step 4" in caplog.text, caplog.text
  assert "Training from step" not in caplog.text, caplog.text
  assert snapshot(workdir / "checkpoints") == checkpoints

  # More steps: resumes from the saved step.
  caplog.clear()
  loop.run(trained_config(mnist_dir, **{"train.steps": 6}), str(workdir),
            cpu_strategy(2))
  assert "Restored" in caplog.text and "ckpt-4" in caplog.text, caplog.text
  assert "Training from step 4 to 6" in caplog.text, caplog.text
  assert [m[:2] for m in _LOG_LINE.findall(caplog.text)] == [("6", "6")]
  assert json.loads(
      (workdir / "config.json").read_text())["train"]["steps"] == 6


@pytest.mark.slow
def test_other_models_workdir_is_refused_untouched(trained, mnist_dir,
                                                   tmp_path):
  # Without config.json only the checkpoint itself can tell. This is a real
  # process: TensorFlow's warnings about the values that failed to restore
  # must not come after the message.
  workdir = tmp_path / "run"
  shutil.copytree(trained[0], workdir)
  (workdir / "config.json").unlink()
  before = snapshot(workdir)

  returncode, _, stderr = run_main(*smoke_args(
      mnist_dir, "--config.train.steps=4", "--config.model.g_width=16",
      workdir=workdir))

  assert_clear_error(returncode, stderr,
                     ["checkpoint", "cannot be restored", "--workdir"])
  assert snapshot(workdir) == before  # same files, bytes and mtimes


@pytest.mark.slow
def test_other_models_workdir_is_told_by_its_config_json(trained, mnist_dir,
                                                         tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(trained[0], workdir)
  before = snapshot(workdir)

  with pytest.raises(UserError) as raised:
    loop.run(trained_config(mnist_dir, **{"model.g_width": 16}),
              str(workdir), cpu_strategy(1))

  assert_has_words(str(raised.value), [
      "holds a run of a different model", "model.g_width", "saved 8",
      "now 16", "--workdir"])
  assert snapshot(workdir) == before  # same files, bytes and mtimes
