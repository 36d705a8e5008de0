"""`python -m trainer.apply` as a user runs it: real processes.

What the library behind it refuses (the task, the run, the images) is
checked by calling it in this process, as trainer/apply/__main__.py calls
it; the command line's own refusal is checked with a real process.
"""

import json
import os
import pathlib
import shlex
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from tests.conftest import (PROCESS_TIMEOUT_SECONDS, REPO, TINY_STYLEGAN2,
                            assert_ended_with_line, cpu_strategy, load_config,
                            run_command)
from trainer.apply import inversion
from trainer.apply import run as run_lib
from trainer.apply import tasks
from trainer import config as config_lib
from trainer.errors import UserError
from trainer import loop


def _apply(*args: str) -> tuple[int, str, str]:
  return run_command(sys.executable, "-m", "trainer.apply", *args)


@pytest.fixture(scope="module")
def run(mnist_dir, tmp_path_factory) -> pathlib.Path:
  """A finished tiny smoke run of the unconditional DCGAN (20 steps)."""
  workdir = tmp_path_factory.mktemp("apply") / "run"
  loop.run(load_config("smoke", **{
      "data.source": f"idx:{mnist_dir}", "data.split": "test",
      "model.g_width": 8, "model.d_width": 8, "train.batch_size": 8,
      "train.steps": 20}), str(workdir), cpu_strategy(1))
  return workdir


@pytest.mark.slow
def test_sample_from_the_command_line(run, tmp_path):
  code, out, err = _apply("sample", f"--workdir={run}", "--num=5",
                          "--num_cpu_devices=2", "--truncation=1.5")
  assert code == 0, err[-3000:]
  summary = json.loads(out.strip().splitlines()[-1])
  assert summary["task"] == "sample" and summary["step"] == 20
  out_dir = run / "apply" / "sample"
  assert summary["output_dir"] == str(out_dir)
  assert len(list((out_dir / "images").glob("*.png"))) == 5
  report = json.loads((out_dir / "report.json").read_text())
  assert report["checkpoint"].endswith("ckpt-20")
  assert np.abs(np.load(out_dir / "samples.npz")["z"]).max() <= 1.5


@pytest.mark.slow
def test_export_from_the_command_line(run, tmp_path):
  code, out, err = _apply("export", f"--workdir={run}",
                          f"--output_dir={tmp_path / 'model'}")
  assert code == 0, err[-3000:]
  assert (tmp_path / "model" / "saved_model.pb").exists()
  metadata = json.loads((tmp_path / "model" / "gan_metadata.json").read_text())
  assert metadata["latent_dim"] == 100 and metadata["image_size"] == 28
  # A second export to the same place is refused; the first one stays.
  with pytest.raises(UserError, match="already exists and is not empty"):
    tasks.TASKS.get("export")(
        run_lib.load(str(run), cpu_strategy(1)), cpu_strategy(1),
        tasks.Options(output_dir=str(tmp_path / "model")))
  assert (tmp_path / "model" / "saved_model.pb").exists()


def _error_line(err: str) -> str:
  errors = [line for line in err.splitlines() if line.startswith("error: ")]
  assert len(errors) == 1 and "Traceback" not in err, err[-3000:]
  return errors[0]


@pytest.mark.slow
def test_no_task_gives_one_error_line(run):
  code, _, err = _apply(f"--workdir={run}")
  assert code == 1, err[-3000:]
  assert "give one task" in _error_line(err)
  assert "sample" in _error_line(err)  # the valid tasks are listed


@pytest.mark.slow
def test_an_option_out_of_range_is_one_error_line(run, tmp_path):
  out = tmp_path / "out"
  code, _, err = _apply("sample", "--psi=1.5", f"--workdir={run}",
                        f"--output_dir={out}")
  assert code == 1, err[-3000:]
  assert ("--psi=1.5 is out of range; it must be in [0, 1]"
          in _error_line(err))
  assert not out.exists()


def _apply_in_process(workdir: pathlib.Path, task: str, **options) -> dict:
  """What `python -m trainer.apply <task> --workdir=<workdir>` runs."""
  run_task = tasks.TASKS.get(task)
  strategy = cpu_strategy(1)
  loaded = run_lib.load(str(workdir), strategy, options.pop("checkpoint", ""))
  return run_task(loaded, strategy, tasks.Options(
      output_dir=tasks.default_output_dir(str(workdir), task, loaded.step),
      **options))


@pytest.mark.parametrize("task, options, message", [
    ("paint", {}, "unknown task 'paint'"),
    ("transfer", {}, "needs a class-conditional model"),
    ("inpaint", {"input": "<run>/wrong.png"},
     "is 32x32 but the model takes 28x28"),
    ("inpaint", {"input": "<run>/missing.png"}, "does not exist"),
    ("sample", {"checkpoint": "<run>/checkpoints/ckpt-7"},
     "no such checkpoint"),
    # What needs a mapping network, asked of the DCGAN.
    ("sample", {"psi": 0.5},
     "--psi=0.5 truncates w toward the average w, and "
     "model.architecture=dcgan has no mapping network"),
    ("inpaint", {"inversion": inversion.Settings(space="w")},
     "--space=w needs a mapping network, and model.architecture=dcgan has "
     "no mapping network; valid for it: z"),
    ("mix", {}, "mix takes some layers' styles \\(ws\\) of one latent "
     "into another's, and model.architecture=dcgan has no mapping network"),
    ("sample", {"noise_mode": "const"}, "--noise_mode=const sets "
     "StyleGAN2's noise inputs, and model.architecture=dcgan has none"),
    ("sample", {"noise_mode": "fixed"}, "--noise_mode='fixed' is not one; "
     "valid: random, const, none"),
])
def test_bad_input_is_refused_untouched(run, tmp_path, task, options,
                                        message):
  workdir = tmp_path / "run"
  shutil.copytree(run, workdir, ignore=shutil.ignore_patterns("apply"))
  Image.fromarray(np.zeros((32, 32), np.uint8)).save(workdir / "wrong.png")
  options = {k: v.replace("<run>", str(workdir)) if isinstance(v, str) else v
             for k, v in options.items()}
  with pytest.raises(UserError, match=message):
    _apply_in_process(workdir, task, **options)
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == sorted(
      p.name for p in (run / "checkpoints").iterdir())
  assert not (workdir / "apply").exists()


@pytest.mark.parametrize("make", ["missing", "no_checkpoint"])
def test_a_workdir_that_is_not_a_trained_run_is_refused(run, tmp_path, make):
  workdir = tmp_path / "run"
  if make == "no_checkpoint":
    shutil.copytree(run, workdir)
    shutil.rmtree(workdir / "checkpoints")
  with pytest.raises(UserError, match=("has no config.json" if make == "missing"
                                       else "has no checkpoint")):
    _apply_in_process(workdir, "sample")


def test_a_checkpoint_of_another_architecture_is_named_in_one_line(run,
                                                                   tmp_path):
  other = tmp_path / "other"
  shutil.copytree(run / "checkpoints", other / "checkpoints")
  (other / "config.json").write_text(config_lib.to_json(load_config(
      **TINY_STYLEGAN2)))
  with pytest.raises(UserError) as error:
    _apply_in_process(run, "sample",
                      checkpoint=str(other / "checkpoints" / "ckpt-20"))
  assert str(error.value) == (
      f"workdir {other} holds a run of a different model (model.architecture:"
      f" saved 'stylegan2', now 'dcgan'). Use a checkpoint of {run}'s model.")


@pytest.mark.slow
def test_ctrl_c_stops_a_task_in_one_line_leaving_whole_files(run, tmp_path):
  out = tmp_path / "out"
  command = [sys.executable, "-m", "trainer.apply", "sample",
             f"--workdir={run}", "--num=10000", f"--output_dir={out}"]
  process = subprocess.Popen(
      command, cwd=REPO, env=dict(os.environ, CUDA_VISIBLE_DEVICES=""),
      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  try:
    deadline = time.monotonic() + PROCESS_TIMEOUT_SECONDS
    while not list(out.glob("images/*.png")):
      assert process.poll() is None and time.monotonic() < deadline
      time.sleep(0.1)
    process.send_signal(signal.SIGINT)  # while it writes the images
    _, err = process.communicate(timeout=PROCESS_TIMEOUT_SECONDS)
  finally:
    process.kill()
  assert_ended_with_line(
      process.returncode, err, 128 + signal.SIGINT,
      "stopped by Ctrl-C before the task finished; run the same command to "
      f"do it again: {shlex.join(command)}")
  # Some images, each one whole; no temporary file and no report.
  written = sorted(p.name for p in (out / "images").iterdir())
  assert 0 < len(written) < 10000
  assert all(name.endswith(".png") and not name.startswith(".")
             for name in written)
  for name in written:
    with Image.open(out / "images" / name) as image:
      assert np.asarray(image).shape == (28, 28)
  assert not (out / "report.json").exists()
