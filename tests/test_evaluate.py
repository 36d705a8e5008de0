"""`python -m trainer.evaluate` as a user runs it: real processes and files.

The runs it evaluates are trained in this process (trainer.loop.run, as
`trainer.main` runs it); what the evaluation library refuses is checked in
this process too, and once through the command line.
"""

import json
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from tests.conftest import (PROCESS_TIMEOUT_SECONDS, REPO, TINY_STYLEGAN2,
                            assert_ended_with_line, cpu_strategy, load_config,
                            run_command, smoke_flags)
from trainer import config as config_lib
from trainer.errors import UserError
from trainer import loop
from trainer.metrics import evaluator as evaluator_lib

# Small sample counts: these runs check behaviour, not image quality.
_EVAL = {"eval.num_samples": 400, "eval.num_real": 400,
         "eval.kid_subsets": 10, "eval.kid_subset_size": 200,
         "eval.batch_size": 200, "train.histogram_samples": 64}


def _config(mnist_dir, cache_dir: pathlib.Path, **overrides):
  """The tiny smoke config of smoke_flags() with _EVAL, in this process."""
  return load_config("smoke", **{
      "data.source": f"idx:{mnist_dir}", "data.split": "test",
      "model.g_width": 8, "model.d_width": 8, "train.batch_size": 8,
      **_EVAL, "eval.cache_dir": str(cache_dir), **overrides})


def _flags(mnist_dir, cache_dir, workdir, *extra) -> list[str]:
  """_config() on the command line, on 2 replicas."""
  return [*smoke_flags(mnist_dir),
          *(f"--config.{k}={v}" for k, v in _EVAL.items()),
          f"--config.eval.cache_dir={cache_dir}", f"--workdir={workdir}",
          "--num_cpu_devices=2", *extra]


def _train(mnist_dir, cache_dir, workdir) -> None:
  """The smoke run (checkpoints at steps 20 and 40), as _flags() trains."""
  loop.run(_config(mnist_dir, cache_dir), str(workdir), cpu_strategy(2))


def _evaluate(mnist_dir, cache_dir, workdir, *extra) -> tuple[int, str]:
  code, _, err = run_command(sys.executable, "-m", "trainer.evaluate",
                             *_flags(mnist_dir, cache_dir, workdir, *extra))
  return code, err


def _records(workdir: pathlib.Path) -> list[dict]:
  lines = (workdir / "eval" / "metrics.jsonl").read_text().splitlines()
  return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def trained(mnist_dir, tmp_path_factory) -> tuple[pathlib.Path, pathlib.Path]:
  """A finished smoke run (checkpoints at steps 20 and 40), and a cache."""
  root = tmp_path_factory.mktemp("evaluate")
  _train(mnist_dir, root / "cache", root / "run")
  return root / "run", root / "cache"


def _copy(trained, tmp_path) -> pathlib.Path:
  workdir = tmp_path / "run"
  shutil.copytree(trained[0], workdir)
  return workdir


def _checkpoint_files(workdir: pathlib.Path) -> list[str]:
  return sorted(p.name for p in (workdir / "checkpoints").iterdir())


_METRICS = ("fid", "kid", "kid_std", "inception_score", "inception_score_std",
            "precision", "recall", "modes", "mode_kl")


@pytest.mark.slow
def test_latest_checkpoint_is_evaluated_into_jsonl_tensorboard_and_png(
    trained, mnist_dir, tmp_path):
  _, cache = trained
  workdir = _copy(trained, tmp_path)
  code, err = _evaluate(mnist_dir, cache, workdir)
  assert code == 0, err[-3000:]

  [record] = _records(workdir)
  assert record["step"] == 40
  assert record["checkpoint"].endswith("ckpt-40")
  for name in _METRICS:
    assert np.isfinite(record[name]), name
  assert record["fid"] > 0 and 1 <= record["modes"] <= 10
  protocol = record["protocol"]
  assert protocol["extractor"] == "mnist_classifier"
  assert protocol["num_samples"] == protocol["num_real"] == 400
  assert protocol["dataset"] == f"idx:{mnist_dir}"
  assert protocol["generator"] == "generator_ema"

  events = event_accumulator.EventAccumulator(
      str(workdir / "eval"), size_guidance={"images": 0, "histograms": 0,
                                            "tensors": 0, "scalars": 0})
  events.Reload()
  tags = events.Tags()
  scalars = {t for t in tags["tensors"] + tags["scalars"]}
  assert {f"metrics/{name}" for name in _METRICS} <= scalars, scalars
  assert {"discriminator", "samples/generator_ema",
          "d_probability/real", "d_probability/fake"} <= scalars | set(
              tags["images"]) | set(tags["histograms"]), tags
  fid = events.Tensors("metrics/fid")[0]
  assert fid.step == 40
  assert float(tf.make_ndarray(fid.tensor_proto)) == pytest.approx(
      record["fid"], rel=1e-5)

  png = (workdir / "eval" / "discriminator" / "step_00000040.png").read_bytes()
  assert tf.io.decode_png(png).shape[-1] in (3, 4)


@pytest.mark.slow
def test_bad_input_gives_one_error_line(trained, mnist_dir, tmp_path):
  _, cache = trained
  workdir = _copy(trained, tmp_path)
  code, err = _evaluate(mnist_dir, cache, workdir,
                        "--checkpoint=/missing/ckpt-7")
  assert code == 1, err[-3000:]
  assert "Traceback" not in err, err[-3000:]
  errors = [line for line in err.splitlines() if line.startswith("error: ")]
  assert len(errors) == 1 and "no such checkpoint" in errors[0], err[-3000:]
  assert not (workdir / "eval").exists()
  assert _checkpoint_files(workdir) == _checkpoint_files(trained[0])


def test_a_checkpoint_of_another_architecture_is_named_in_one_line(
    trained, mnist_dir, tmp_path):
  other = tmp_path / "other"
  shutil.copytree(trained[0] / "checkpoints", other / "checkpoints")
  (other / "config.json").write_text(config_lib.to_json(load_config(
      **TINY_STYLEGAN2)))
  workdir = _copy(trained, tmp_path)
  with pytest.raises(UserError) as error:
    evaluator_lib.evaluate_checkpoints(
        _config(mnist_dir, trained[1]), str(workdir), cpu_strategy(1),
        checkpoint=str(other / "checkpoints" / "ckpt-20"))
  assert str(error.value) == (
      f"workdir {other} holds a run of a different model (model.architecture:"
      " saved 'stylegan2', now 'dcgan'). Use a checkpoint of this model.")
  assert not (workdir / "eval").exists()


@pytest.mark.slow
def test_another_architectures_config_gives_one_error_line(trained, tmp_path):
  workdir = _copy(trained, tmp_path)
  code, _, err = run_command(
      sys.executable, "-m", "trainer.evaluate", f"--workdir={workdir}",
      "--strategy=one_device", "--config=configs/r3gan.py:smoke")
  assert_ended_with_line(
      code, err, 1,
      f"error: workdir {workdir} holds a run of a different model "
      "(model.architecture: saved 'dcgan', now 'r3gan'). Use another "
      "--workdir, or the same config.")
  assert not (workdir / "eval").exists()


# More bad settings are checked in-process in tests/metrics/test_evaluator.py.
@pytest.mark.slow
@pytest.mark.parametrize("overrides, message", [
    ({"model.g_width": 16}, "holds a run of a different model"),
    ({"eval.num_samples": 100}, "eval.num_samples"),
])
def test_bad_settings_are_refused_untouched(trained, mnist_dir, tmp_path,
                                            overrides, message):
  _, cache = trained
  workdir = _copy(trained, tmp_path)
  with pytest.raises(UserError, match=message):
    evaluator_lib.evaluate_checkpoints(
        _config(mnist_dir, cache, **overrides), str(workdir), cpu_strategy(2))
  assert not (workdir / "eval").exists()
  assert _checkpoint_files(workdir) == _checkpoint_files(trained[0])


def test_a_workdir_without_checkpoints_is_refused(mnist_dir, tmp_path):
  with pytest.raises(UserError, match="has no checkpoint"):
    evaluator_lib.evaluate_checkpoints(
        _config(mnist_dir, tmp_path / "cache"), str(tmp_path / "empty"),
        cpu_strategy(2))


def _start_watcher(mnist_dir, cache, workdir, *extra) -> subprocess.Popen:
  return subprocess.Popen(
      [sys.executable, "-m", "trainer.evaluate",
       *_flags(mnist_dir, cache, workdir, "--continuous",
               "--poll_seconds=0.5", "--timeout=240", *extra)],
      cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_training_evaluates_the_untrained_g_first_when_asked(mnist_dir,
                                                              tmp_path):
  """train.eval_at_start: a new run evaluates at step 0, before its first
  step and without a checkpoint; a resumed run does not again, nor does a
  run that starts again from step 0 write a second record of it."""
  config = _config(mnist_dir, tmp_path / "cache", **{
      "train.steps": 20, "train.eval_every": 20, "train.eval_at_start": True})
  workdir = tmp_path / "run"
  strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
  loop.run(config, str(workdir), strategy)
  config.train.steps = 40
  loop.run(config, str(workdir), strategy)

  records = _records(workdir)
  assert [r["step"] for r in records] == [0, 20, 40]
  assert records[0]["checkpoint"] == ""
  assert records[1]["checkpoint"].endswith("ckpt-20")
  assert records[0]["fid"] != records[1]["fid"]  # the untrained G's own

  # As after a preemption before the first checkpoint: no checkpoint, the
  # step-0 record kept. The new start evaluates the same untrained G again.
  shutil.rmtree(workdir / "checkpoints")
  config.train.steps = 20
  loop.run(config, str(workdir), strategy)

  assert [r["step"] for r in _records(workdir)] == [0, 20, 40, 20]
  assert _records(workdir)[0] == records[0]


@pytest.mark.slow
def test_continuous_evaluates_each_checkpoint_next_to_training(
    trained, mnist_dir, tmp_path):
  _, cache = trained
  workdir = tmp_path / "run"
  # The watcher starts first, on a workdir that training has not made yet.
  watcher = _start_watcher(mnist_dir, cache, workdir)
  try:
    _train(mnist_dir, cache, workdir)
    _, err = watcher.communicate(timeout=PROCESS_TIMEOUT_SECONDS)
  finally:
    watcher.kill()
  assert watcher.returncode == 0, err[-3000:]
  steps = [r["step"] for r in _records(workdir)]
  # It ends with the final step; step 20 too unless it was gone by then.
  assert steps[-1] == 40 and steps in ([20, 40], [40]), steps


def _wait_for(condition, what: str, watcher: subprocess.Popen) -> None:
  deadline = time.monotonic() + PROCESS_TIMEOUT_SECONDS
  while not condition():
    assert watcher.poll() is None, f"the watcher exited while waiting: {what}"
    assert time.monotonic() < deadline, f"timed out waiting: {what}"
    time.sleep(0.5)


@pytest.mark.slow
def test_continuous_waits_through_a_half_written_checkpoint(
    trained, mnist_dir, tmp_path):
  source, cache = trained
  workdir = tmp_path / "run"
  (workdir / "checkpoints").mkdir(parents=True)
  shutil.copy(source / "config.json", workdir)
  new, old = source / "checkpoints", workdir / "checkpoints"

  def publish(step: int, data: bytes | None = None) -> None:
    """Copies ckpt-<step> over, optionally with other bytes as its data."""
    for path in new.glob(f"ckpt-{step}.*"):
      shutil.copy(path, old / path.name)
    if data is not None:
      [data_file] = old.glob(f"ckpt-{step}.data-*")
      data_file.write_bytes(data)
    (old / "checkpoint").write_text(
        f'model_checkpoint_path: "ckpt-{step}"\n'
        f'all_model_checkpoint_paths: "ckpt-{step}"\n')

  publish(20)
  watcher = _start_watcher(mnist_dir, cache, workdir)
  try:
    _wait_for(lambda: (workdir / "eval" / "metrics.jsonl").exists(),
              "the evaluation of step 20", watcher)
    [full] = new.glob("ckpt-40.data-*")
    publish(40, full.read_bytes()[:len(full.read_bytes()) // 2])
    time.sleep(3)  # several polls on the half-written checkpoint
    if watcher.poll() is not None:
      pytest.fail("the watcher stopped on a half-written checkpoint:\n"
                  + watcher.communicate()[1][-3000:])
    publish(40)  # the write completes
    _, err = watcher.communicate(timeout=PROCESS_TIMEOUT_SECONDS)
  finally:
    watcher.kill()
  assert watcher.returncode == 0, err[-3000:]
  assert "Cannot read" in err and "ckpt-40" in err, err[-3000:]
  assert [r["step"] for r in _records(workdir)] == [20, 40]


@pytest.mark.slow
def test_ctrl_c_stops_the_watcher_in_one_line_keeping_its_records(
    trained, mnist_dir, tmp_path):
  _, cache = trained
  workdir = _copy(trained, tmp_path)
  # A final step that training never reaches: it evaluates steps 20 and
  # 40, then waits for more.
  watcher = _start_watcher(mnist_dir, cache, workdir,
                           "--config.train.steps=1000")
  try:
    metrics = workdir / "eval" / "metrics.jsonl"
    _wait_for(lambda: metrics.exists() and len(_records(workdir)) == 2,
              "the evaluations of steps 20 and 40", watcher)
    watcher.send_signal(signal.SIGINT)
    _, err = watcher.communicate(timeout=PROCESS_TIMEOUT_SECONDS)
  finally:
    watcher.kill()
  assert_ended_with_line(
      watcher.returncode, err, 128 + signal.SIGINT,
      "stopped by Ctrl-C; the evaluations finished before it are in "
      f"{metrics}")
  assert [r["step"] for r in _records(workdir)] == [20, 40]
