"""Preemption and crashes, with real processes: SIGTERM saves, SIGKILL fails fast.

A run is started with far more steps than it will take, interrupted once it
has trained a few steps, then restarted to a step count just past the one it
stopped at; the checkpoints say where it stopped and where it ended.
"""

import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import pytest

from launch import local
from tests.conftest import (PROCESS_TIMEOUT_SECONDS, REPO, saved_step,
                            smoke_flags)

_PREEMPTED_EXIT_CODE = 143


def _flags(mnist_dir, workdir, steps: int) -> list[str]:
  return smoke_flags(mnist_dir, f"--config.train.steps={steps}",
                     "--config.train.steps_per_loop=5",
                     "--config.train.log_every=5",
                     "--config.train.checkpoint_every=20",
                     "--config.train.image_every=100000",
                     f"--workdir={workdir}")


def _start(args: list[str], log: pathlib.Path, tf_config: str | None = None):
  env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
  if tf_config:
    env["TF_CONFIG"] = tf_config
  with open(log, "w") as out:
    return subprocess.Popen([sys.executable, "-m", "trainer.main", *args],
                            cwd=REPO, env=env, stdout=out,
                            stderr=subprocess.STDOUT)


def _start_workers(count: int, flags: list[str], logs: pathlib.Path):
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


def _resume_and_check(mnist_dir, workdir, stopped_at: int, logs,
                      workers: int) -> None:
  """Restarts to `stopped_at + 10` steps; checks it started and ended right."""
  flags = _flags(mnist_dir, workdir, stopped_at + 10)
  if workers == 1:
    processes = [_start(["--strategy=mirrored", "--num_cpu_devices=2",
                         *flags], logs / "resume.log")]
  else:
    processes = _start_workers(workers, flags, logs)
  assert _finish(processes) == [0] * workers
  log = (logs / ("resume.log" if workers == 1 else "w0.log")).read_text()
  assert f"Training from step {stopped_at} to {stopped_at + 10}" in log
  assert _checkpoint_steps(workdir)[-1] == stopped_at + 10
  assert _saved_step(workdir, stopped_at + 10) == stopped_at + 10


def test_sigterm_saves_the_current_step_and_a_restart_resumes_there(
    tmp_path, mnist_dir):
  workdir = tmp_path / "run"
  process = _start(["--strategy=mirrored", "--num_cpu_devices=2",
                    *_flags(mnist_dir, workdir, 100_000)], tmp_path / "a.log")
  _wait_for_training(tmp_path / "a.log", past_step=5)
  process.send_signal(signal.SIGTERM)
  assert _finish([process]) == [_PREEMPTED_EXIT_CODE]
  log = (tmp_path / "a.log").read_text()
  assert "Traceback" not in log
  (stopped_at,) = map(int, re.findall(r"stopped on request at step (\d+)",
                                      log))
  # Saved at the step where it stopped, not only at the periodic ones.
  assert stopped_at in _checkpoint_steps(workdir)
  assert _saved_step(workdir, stopped_at) == stopped_at
  assert stopped_at % 5 == 0  # the end of a loop call
  _resume_and_check(mnist_dir, workdir, stopped_at, tmp_path, workers=1)


def test_sigterm_to_one_worker_stops_all_at_one_saved_step(tmp_path,
                                                           mnist_dir):
  workdir = tmp_path / "run"
  workers = _start_workers(2, _flags(mnist_dir, workdir, 100_000), tmp_path)
  _wait_for_training(tmp_path / "w0.log", past_step=5)
  workers[1].send_signal(signal.SIGTERM)  # only the non-chief is preempted
  assert _finish(workers) == [_PREEMPTED_EXIT_CODE] * 2
  stops = [re.findall(r"stopped on request at step (\d+)",
                      (tmp_path / f"w{i}.log").read_text()) for i in (0, 1)]
  assert stops[0] == stops[1] and len(stops[0]) == 1
  stopped_at = int(stops[0][0])
  assert _checkpoint_steps(workdir)[-1] == stopped_at
  assert _saved_step(workdir, stopped_at) == stopped_at
  _resume_and_check(mnist_dir, workdir, stopped_at, tmp_path, workers=2)


def test_sigkill_of_a_worker_makes_the_other_fail_and_a_restart_completes(
    tmp_path, mnist_dir):
  workdir = tmp_path / "run"
  workers = _start_workers(2, _flags(mnist_dir, workdir, 100_000), tmp_path)
  # Past the first periodic checkpoint (every 20 steps).
  _wait_for_training(tmp_path / "w0.log", past_step=25)
  workers[1].send_signal(signal.SIGKILL)
  # The survivor must end by itself (the wait is bounded): no hang.
  code = workers[0].wait(timeout=PROCESS_TIMEOUT_SECONDS)
  workers[1].wait(timeout=PROCESS_TIMEOUT_SECONDS)
  log = (tmp_path / "w0.log").read_text()
  assert code not in (0, _PREEMPTED_EXIT_CODE)
  assert "error: another task of the cluster stopped" in log
  assert "Traceback" not in log
  last = _checkpoint_steps(workdir)[-1]
  assert last >= 20 and last % 20 == 0  # periodic checkpoints only
  _resume_and_check(mnist_dir, workdir, last, tmp_path, workers=2)
