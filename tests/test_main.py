"""The command line, `python -m trainer.main`, run as a user runs it.

Every test starts real processes (about 5 s of TensorFlow start-up each). Bad
input must give one clear message that says what was wrong and what is valid,
as the last thing printed, with no traceback and a non-zero exit, before any
training and without writing to the workdir.
"""

import hashlib
import json
import pathlib
import re
import shutil
import sys

import pytest

from tests.conftest import REPO, run_command, smoke_flags

TWO_REPLICAS = ("--strategy=mirrored", "--num_cpu_devices=2")


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


def last_message(stderr: str) -> str:
  """The last line printed, not counting absl's hint about --helpshort."""
  lines = [line for line in stderr.splitlines()
           if line.strip() and not line.startswith("Pass --helpshort")]
  return lines[-1] if lines else ""


def assert_clear_error(returncode: int, stderr: str, words: list[str]) -> None:
  """One clear message, printed last, that holds all of `words`."""
  assert returncode != 0, stderr
  assert "Traceback" not in stderr, stderr
  assert "Training from step" not in stderr, stderr
  message = last_message(stderr)
  assert "error" in message.lower(), stderr
  missing = [w for w in words if w.lower() not in message.lower()]
  assert not missing, f"{missing} not in the message {message!r}:\n{stderr}"


def snapshot(directory: pathlib.Path) -> dict[str, tuple[str, int]]:
  """{relative path: (sha256, mtime in ns)} of every file under `directory`."""
  files = sorted(p for p in directory.rglob("*") if p.is_file())
  return {str(path.relative_to(directory)):
              (hashlib.sha256(path.read_bytes()).hexdigest(),
               path.stat().st_mtime_ns)
          for path in files}


# (flags after the smoke flags, words the message must hold). "{tmp}" is a
# fresh temporary directory. A case with its own --config= runs without the
# smoke flags.
BAD_INPUT = [
    pytest.param(
        ["--strategy=nope"],
        ["--strategy=nope", "default", "mirrored", "multi_worker",
         "one_device", "tpu"],
        id="unknown_strategy"),
    pytest.param(
        ["--config.model.loss=nope"],
        ["'nope'", "model.loss", "non_saturating", "minimax", "hinge",
         "wgan_gp"],
        id="unknown_loss"),
    pytest.param(
        ["--config.data.source=nope:x"],
        ["'nope'", "data.source", "folder", "idx", "tfds"],
        id="unknown_source_kind"),
    pytest.param(
        ["--config.data.source=idx:/no/such/dir"],
        ["/no/such/dir", "no such directory"],
        id="missing_idx_dir"),
    # Offline (as on this machine) the host check fails within seconds.
    pytest.param(
        ["--config.data.source=tfds:mnist",
         "--config.data.tfds_data_dir={tmp}"],
        ["tfds:mnist", "not prepared", "{tmp}", "cannot be downloaded",
         "idx:", "folder:"],
        id="tfds_offline"),
    pytest.param(
        ["--config.model.image_size=32"],
        ["28x28", "32x32", "model.image_size=28", "data.resize"],
        id="image_size_mismatch"),
    pytest.param(
        [*TWO_REPLICAS, "--config.train.batch_size=7"],
        ["train.batch_size=7", "not divisible", "2 replicas"],
        id="batch_not_divisible"),
    pytest.param(
        ["--config.train.steps=0"],
        ["train.steps=0", ">= 1"],
        id="steps_out_of_range"),
    pytest.param(
        ["--config.optim.beta1=1.5"],
        ["optim.beta1=1.5", "[0, 1)"],
        id="beta1_out_of_range"),
    pytest.param(
        ["--config.runtime.mixed_precision=float64"],
        ["runtime.mixed_precision", "float64", "float32", "mixed_bfloat16",
         "mixed_float16"],
        id="unknown_precision"),
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
    pytest.param(
        [*TWO_REPLICAS, "--config.runtime.jit_compile=True"],
        ["jit_compile", "logical CPU devices", "--num_cpu_devices=1",
         "jit_compile=False"],
        id="xla_on_logical_cpus"),
]


@pytest.mark.parametrize("flags,words", BAD_INPUT)
def test_bad_input_is_one_clear_error(flags, words, mnist_dir, tmp_path):
  scratch = tmp_path / "scratch"
  scratch.mkdir()
  flags = [f.format(tmp=scratch) for f in flags]
  words = [w.format(tmp=scratch) for w in words]
  workdir = tmp_path / "run"
  if flags[0].startswith("--config="):
    args = [*flags, f"--workdir={workdir}"]
  else:
    args = smoke_args(mnist_dir, "--config.train.steps=2", *flags,
                      workdir=workdir)

  returncode, _, stderr = run_main(*args)

  assert_clear_error(returncode, stderr, words)
  assert not workdir.exists()


@pytest.fixture(scope="module")
def trained_workdir(mnist_dir, tmp_path_factory) -> pathlib.Path:
  """A workdir with a real 2-step run of the tiny smoke model (g_width 8)."""
  workdir = tmp_path_factory.mktemp("trained") / "run"
  returncode, _, stderr = run_main(*smoke_args(
      mnist_dir, "--config.train.steps=2", "--config.train.checkpoint_every=2",
      workdir=workdir))
  assert returncode == 0, stderr
  assert list((workdir / "checkpoints").glob("ckpt-2.*")), stderr
  return workdir


@pytest.mark.parametrize("keep_config_json,words", [
    (True, ["holds a run of a different model", "model.g_width", "saved 8",
            "now 16", "--workdir"]),
    # Without config.json only the checkpoint itself can tell.
    (False, ["checkpoint", "cannot be restored", "--workdir"]),
], ids=["config_json_tells", "checkpoint_tells"])
def test_other_models_workdir_is_refused_untouched(
    keep_config_json, words, trained_workdir, mnist_dir, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(trained_workdir, workdir)
  if not keep_config_json:
    (workdir / "config.json").unlink()
  before = snapshot(workdir)

  returncode, _, stderr = run_main(*smoke_args(
      mnist_dir, "--config.train.steps=2", "--config.train.checkpoint_every=2",
      "--config.model.g_width=16", workdir=workdir))

  assert_clear_error(returncode, stderr, words)
  assert snapshot(workdir) == before  # same files, bytes and mtimes


_LOG_LINE = re.compile(
    r"step (\d+)/(\d+) \| [\d.]+ examples/sec \|.*\| time left "
    r"(\d+:\d\d:\d\d|\?)$", re.MULTILINE)


def test_trains_resumes_and_does_not_repeat(mnist_dir, tmp_path):
  workdir = tmp_path / "run"
  args = smoke_args(mnist_dir, *TWO_REPLICAS, "--config.train.steps=4",
                    "--config.train.log_every=2", workdir=workdir)

  returncode, _, stderr = run_main(*args)
  assert returncode == 0, stderr
  assert "Training from step 0 to 4" in stderr, stderr
  assert [m[:2] for m in _LOG_LINE.findall(stderr)] == [
      ("2", "4"), ("4", "4")], stderr
  saved = json.loads((workdir / "config.json").read_text())
  assert saved["data"]["source"] == f"idx:{mnist_dir}"
  assert saved["data"]["split"] == "test"
  assert (saved["model"]["g_width"], saved["model"]["d_width"]) == (8, 8)
  assert saved["train"]["batch_size"] == 8
  assert (saved["train"]["steps"], saved["train"]["log_every"]) == (4, 2)
  checkpoints = snapshot(workdir / "checkpoints")

  # The same command again: already done, nothing trained or saved.
  returncode, _, stderr = run_main(*args)
  assert returncode == 0, stderr
  assert "Already trained to step 4" in stderr, stderr
  assert "Training from step" not in stderr, stderr
  assert snapshot(workdir / "checkpoints") == checkpoints

  # More steps: resumes from the saved step.
  returncode, _, stderr = run_main(*args, "--config.train.steps=6")
  assert returncode == 0, stderr
  assert "Restored" in stderr and "ckpt-4" in stderr, stderr
  assert "Training from step 4 to 6" in stderr, stderr
  assert [m[:2] for m in _LOG_LINE.findall(stderr)] == [("6", "6")], stderr
  assert json.loads(
      (workdir / "config.json").read_text())["train"]["steps"] == 6


def test_default_workdir_is_under_runs_in_the_cwd(mnist_dir, tmp_path):
  args = smoke_args(mnist_dir, "--config.train.steps=2", workdir=None)

  returncode, _, stderr = run_main(*args, cwd=tmp_path)

  assert returncode == 0, stderr
  workdir = tmp_path / "runs" / "dcgan_mnist_smoke"
  saved = json.loads((workdir / "config.json").read_text())
  assert saved["train"]["steps"] == 2
  assert list((workdir / "checkpoints").glob("ckpt-2.*"))
