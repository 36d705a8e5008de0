"""Stopping, with real processes: SIGTERM and Ctrl-C save, SIGKILL fails fast.

A run is started with far more steps than it will take and interrupted once
it has trained a few steps; a restart then goes on from where it stopped.
The checkpoints say where it stopped and where it ended. The last restart of
each test runs in this process (trainer.loop.run, as trainer.main runs it).
"""

import logging
import os
import pathlib
import re
import shlex
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from launch import local
from tests.conftest import (PROCESS_TIMEOUT_SECONDS, REPO, TINY_FLAGS,
                            assert_ended_with_line, cpu_strategy, load_config,
                            run_command, saved_step, smoke_flags)
from trainer import checkpoint as checkpoint_lib
from trainer import cli
from trainer import loop
from trainer import signals
from trainer.errors import UserError

# 128 + the signal, as a shell reports a process ended by it.
_PREEMPTED_EXIT_CODE = 128 + signal.SIGTERM
_INTERRUPTED_EXIT_CODE = 128 + signal.SIGINT
# Far more steps than a run takes before it is interrupted.
_MANY_STEPS = 100_000
_CHECKPOINT_EVERY = 20
# The runs' config, besides the tiny smoke config of smoke_flags().
_OVERRIDES = {"train.steps_per_loop": 5, "train.log_every": 5,
              "train.checkpoint_every": _CHECKPOINT_EVERY,
              "train.image_every": 100000}


def _flags(mnist_dir, workdir, steps: int) -> list[str]:
  return smoke_flags(mnist_dir, f"--config.train.steps={steps}",
                     *(f"--config.{k}={v}" for k, v in _OVERRIDES.items()),
                     f"--workdir={workdir}")


def _config(mnist_dir, steps: int):
  """In-process, the config of _flags()."""
  return load_config("smoke", **{
      "data.source": f"idx:{mnist_dir}", "data.split": "test",
      "model.g_width": 8, "model.d_width": 8, "train.batch_size": 8,
      "train.steps": steps, **_OVERRIDES})


def _command(args: list[str]) -> list[str]:
  return [sys.executable, "-m", "trainer.main", *args]


def _start(args: list[str], log: pathlib.Path, tf_config: str | None = None):
  env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
  if tf_config:
    env["TF_CONFIG"] = tf_config
  with open(log, "w") as out:
    return subprocess.Popen(_command(args), cwd=REPO, env=env, stdout=out,
                            stderr=subprocess.STDOUT)


def _start_workers(count: int, flags: list[str], logs: pathlib.Path):
  logs.mkdir(exist_ok=True)
  ports = local.free_ports(count)
  return [_start(["--strategy=multi_worker", *flags], logs / f"w{i}.log",
                 local.tf_config(ports, i)) for i in range(count)]


def _wait_for_training(log: pathlib.Path, past_step: int) -> None:
  """Waits (bounded) until the log shows a step beyond `past_step`."""
  deadline = time.monotonic() + PROCESS_TIMEOUT_SECONDS
  while time.monotonic() < deadline:
    steps = [int(s) for s in re.findall(r"step (\d+)/", log.read_text())]
    if steps and max(steps) > past_step:
      return
    time.sleep(0.5)
  pytest.fail(f"no training step past {past_step} in {log}:\n"
              f"{log.read_text()[-3000:]}")


def _checkpoint_steps(workdir: pathlib.Path) -> list[int]:
  return sorted(int(p.name[len("ckpt-"):-len(".index")])
                for p in (workdir / "checkpoints").glob("ckpt-*.index"))


def _saved_step(workdir: pathlib.Path, number: int) -> int:
  return saved_step(workdir / "checkpoints" / f"ckpt-{number}")


def _finish(processes) -> list[int]:
  return [p.wait(timeout=PROCESS_TIMEOUT_SECONDS) for p in processes]


def _stopped_at(log: str) -> list[int]:
  return [int(s) for s in re.findall(r"stopped on request at step (\d+)",
                                     log)]


def _resume_here(mnist_dir, workdir, stopped_at: int, caplog) -> None:
  """Restarts to `stopped_at + 10` steps; checks it started and ended right.

  The restart runs in this process, as trainer.main runs it: what is checked
  is where it resumes, not the command line.
  """
  caplog.set_level(logging.INFO)
  caplog.set_level(logging.INFO, logger="absl")
  loop.run(_config(mnist_dir, stopped_at + 10), str(workdir),
            cpu_strategy(2))
  assert (f"Training from step {stopped_at} to {stopped_at + 10}"
          in caplog.text), caplog.text
  assert _checkpoint_steps(workdir)[-1] == stopped_at + 10
  assert _saved_step(workdir, stopped_at + 10) == stopped_at + 10


@pytest.mark.slow
@pytest.mark.parametrize("stop,code", [
    (signal.SIGTERM, _PREEMPTED_EXIT_CODE),
    (signal.SIGINT, _INTERRUPTED_EXIT_CODE)], ids=["sigterm", "ctrl_c"])
def test_a_stop_signal_saves_the_current_step_and_a_restart_resumes_there(
    stop, code, tmp_path, mnist_dir, caplog):
  workdir = tmp_path / "run"
  args = ["--strategy=mirrored", "--num_cpu_devices=2",
          *_flags(mnist_dir, workdir, _MANY_STEPS)]
  process = _start(args, tmp_path / "a.log")
  # Past the first periodic checkpoint (step 20).
  _wait_for_training(tmp_path / "a.log", past_step=_CHECKPOINT_EVERY)
  process.send_signal(stop)
  assert _finish([process]) == [code]
  log = (tmp_path / "a.log").read_text()
  assert "Traceback" not in log
  (stopped_at,) = _stopped_at(log)
  # Saved at the step where it stopped, not only at the periodic ones.
  assert _checkpoint_steps(workdir)[-1] == stopped_at > _CHECKPOINT_EVERY
  assert _saved_step(workdir, stopped_at) == stopped_at
  assert stopped_at % 5 == 0  # the end of a loop call
  # The last line says so, and that the same command resumes.
  assert log.strip().splitlines()[-1] == (
      f"stopped on request at step {stopped_at} after saving "
      f"{workdir / 'checkpoints' / f'ckpt-{stopped_at}'}; run the same "
      f"command to resume: {shlex.join(_command(args))}")

  _resume_here(mnist_dir, workdir, stopped_at, caplog)


@pytest.mark.slow
def test_ctrl_c_before_the_first_steps_stops_at_once_in_one_line(
    tmp_path, mnist_dir):
  workdir = tmp_path / "run"
  args = ["--strategy=one_device", *_flags(mnist_dir, workdir, _MANY_STEPS)]
  process = _start(args, tmp_path / "a.log")
  # config.json is written before the loop, whose first call traces the
  # step (seconds): Ctrl-C comes while the run starts up.
  deadline = time.monotonic() + PROCESS_TIMEOUT_SECONDS
  while not (workdir / "config.json").exists():
    assert process.poll() is None and time.monotonic() < deadline
    time.sleep(0.1)
  process.send_signal(signal.SIGINT)
  (code,) = _finish([process])
  assert_ended_with_line(
      code, (tmp_path / "a.log").read_text(), _INTERRUPTED_EXIT_CODE,
      "stopped by Ctrl-C; the same command goes on from the last "
      f"checkpoint (if any): {shlex.join(_command(args))}")
  assert not _checkpoint_steps(workdir)


# trainer.main, which sends itself SIGINT (Ctrl-C) when it starts to import
# the module named by its first argument: a point of its start, reached the
# same way every time. One line, as the command is in the line it ends with.
_CTRL_C_AT_IMPORT = (
    "import os, runpy, signal, sys; module = sys.argv.pop(1); "
    "sys.addaudithook(lambda event, args: event == 'import' and args[0] == "
    "module and os.kill(os.getpid(), signal.SIGINT)); "
    "runpy.run_module('trainer.main', run_name='__main__', alter_sys=True)")


@pytest.mark.slow
@pytest.mark.parametrize("module", ["tensorflow", "trainer.loop"],
                         ids=["while_tensorflow_loads", "before_main"])
def test_ctrl_c_while_the_program_starts_stops_in_one_line(
    module, tmp_path, mnist_dir):
  workdir = tmp_path / "run"
  command = [sys.executable, "-c", _CTRL_C_AT_IMPORT, module,
             *_flags(mnist_dir, workdir, _MANY_STEPS)]
  code, _, err = run_command(*command)
  assert_ended_with_line(
      code, err, _INTERRUPTED_EXIT_CODE, "stopped by Ctrl-C; run the same "
      f"command to start again: {shlex.join(command)}")
  assert not workdir.exists()


@pytest.mark.slow
def test_a_corrupt_image_stops_in_one_line_keeping_the_last_checkpoint(
    tmp_path):
  # Unshuffled batches of 8 from 24 files: index 20 is read by step 3.
  images = tmp_path / "images"
  images.mkdir()
  for i in range(24):
    tf.io.write_file(str(images / f"{i:02d}.png"), tf.io.encode_png(
        tf.fill([28, 28, 1], tf.constant(i * 10, tf.uint8))))
  bad = images / "20.png"
  bad.write_bytes(b"not a PNG")
  workdir = tmp_path / "run"
  code, _, err = run_command(
      sys.executable, "-m", "trainer.main", "--strategy=one_device",
      f"--config={REPO / 'configs' / 'dcgan_mnist.py'}:smoke", *TINY_FLAGS,
      f"--config.data.source=folder:{images}", "--config.data.shuffle=False",
      "--config.data.on_bad_image=stop", "--config.train.steps=4",
      "--config.train.histogram_samples=8", "--config.train.steps_per_loop=4",
      "--config.train.checkpoint_every=2", f"--workdir={workdir}")
  assert code == 1 and "Traceback" not in err, err[-3000:]
  # The one line that names the image is the last one.
  naming = [line for line in err.splitlines() if str(bad) in line]
  assert naming == [err.strip().splitlines()[-1]], err[-3000:]
  assert re.fullmatch(
      rf"error: cannot read image {re.escape(str(bad))} \(.+\), met at step "
      rf"3; training stopped, the last good checkpoint is "
      rf"{re.escape(str(workdir / 'checkpoints' / 'ckpt-2'))} \(nothing was "
      r"saved after it\)\. Replace or remove the file, or set "
      r"data\.on_bad_image=skip", naming[0]), naming[0]
  assert _checkpoint_steps(workdir) == [2]
  assert saved_step(workdir / "checkpoints") == 2


class _CtrlCWhileSaved(tf.train.experimental.PythonState):
  """A part of the state that sends SIGINT (Ctrl-C) while it is saved."""

  def serialize(self) -> str:
    os.kill(os.getpid(), signal.SIGINT)
    return ""

  def deserialize(self, string_value: str) -> None:
    del string_value


def test_ctrl_c_while_a_checkpoint_is_written_stops_once_it_is_complete(
    tmp_path, capsys):
  checkpointer = checkpoint_lib.Checkpointer(
      str(tmp_path), {"step": tf.Variable(7, dtype=tf.int64),
                      "ctrl_c": _CtrlCWhileSaved()}, keep=1, is_chief=True)
  with pytest.raises(SystemExit) as stopped:
    with signals.interrupt_as_line("stopped by Ctrl-C"):
      checkpointer.save(7)
  assert stopped.value.code == _INTERRUPTED_EXIT_CODE
  assert capsys.readouterr().err.strip().splitlines()[-1] == (
      "stopped by Ctrl-C")
  # The checkpoint is whole and listed as the latest.
  assert checkpointer.latest == str(tmp_path / "checkpoints" / "ckpt-7")
  assert saved_step(checkpointer.latest) == 7


def test_ctrl_c_stops_in_its_line_whatever_error_replaces_it(capsys):
  # Code that the KeyboardInterrupt unwinds may raise another error in its
  # place: TensorFlow tracing a step did (autograph's AssertionError of a
  # half-entered scope, pybind11's RuntimeError, a SystemError). Here one
  # that errors_as_messages would end with its own line and exit code 1.
  with pytest.raises(SystemExit) as stopped:
    with signals.interrupt_as_line("stopped by Ctrl-C"), (
        cli.errors_as_messages()):
      try:
        signal.raise_signal(signal.SIGINT)  # Ctrl-C, raised from here
      finally:
        raise UserError("a scope left half-entered")
  assert stopped.value.code == _INTERRUPTED_EXIT_CODE
  assert capsys.readouterr().err.strip().splitlines() == ["stopped by Ctrl-C"]


class _SwallowsCtrlC:
  """Library code that swallows Ctrl-C: what a `__del__` raises, Python
  reports as ignored and goes on."""

  def __del__(self):
    signal.raise_signal(signal.SIGINT)


def test_a_ctrl_c_that_library_code_swallowed_still_stops_in_one_line(
    capsys):
  went_on = False
  with pytest.raises(SystemExit) as stopped:
    with signals.interrupt_as_line("stopped by Ctrl-C"):
      _SwallowsCtrlC()  # dropped at once: its __del__ runs here
      went_on = True
  assert went_on
  assert stopped.value.code == _INTERRUPTED_EXIT_CODE
  assert capsys.readouterr().err.strip().splitlines()[-1] == (
      "stopped by Ctrl-C")


@pytest.mark.slow
def test_two_workers_sigterm_stops_all_at_one_step_sigkill_fails_fast(
    tmp_path, mnist_dir, caplog):
  """One cluster of two workers: preempted, restarted, crashed, restarted."""
  workdir = tmp_path / "run"
  flags = _flags(mnist_dir, workdir, _MANY_STEPS)

  # SIGTERM to the non-chief only: both save one step and stop.
  logs = tmp_path / "sigterm"
  workers = _start_workers(2, flags, logs)
  _wait_for_training(logs / "w0.log", past_step=5)
  workers[1].send_signal(signal.SIGTERM)
  assert _finish(workers) == [_PREEMPTED_EXIT_CODE] * 2
  stops = [_stopped_at((logs / f"w{i}.log").read_text()) for i in (0, 1)]
  assert stops[0] == stops[1] and len(stops[0]) == 1
  stopped_at = stops[0][0]
  assert _checkpoint_steps(workdir)[-1] == stopped_at
  assert _saved_step(workdir, stopped_at) == stopped_at

  # The restarted cluster resumes there; SIGKILL to a worker once it is
  # past its next periodic checkpoint makes the other one fail by itself.
  logs = tmp_path / "sigkill"
  workers = _start_workers(2, flags, logs)
  periodic = (stopped_at // _CHECKPOINT_EVERY + 1) * _CHECKPOINT_EVERY
  _wait_for_training(logs / "w0.log", past_step=periodic + 5)
  workers[1].send_signal(signal.SIGKILL)
  # The survivor must end by itself (the wait is bounded): no hang.
  code = workers[0].wait(timeout=PROCESS_TIMEOUT_SECONDS)
  workers[1].wait(timeout=PROCESS_TIMEOUT_SECONDS)
  log = (logs / "w0.log").read_text()
  assert f"Training from step {stopped_at} to {_MANY_STEPS}" in log
  assert code not in (0, _PREEMPTED_EXIT_CODE)
  assert "error: another task of the cluster stopped" in log
  assert "Traceback" not in log
  last = _checkpoint_steps(workdir)[-1]
  # Periodic checkpoints only, none where it was killed.
  assert last >= periodic and last % _CHECKPOINT_EVERY == 0

  # What the crash left is a run that a restart completes (a restart of two
  # workers was checked above; this one runs here, on 2 replicas).
  _resume_here(mnist_dir, workdir, last, caplog)
