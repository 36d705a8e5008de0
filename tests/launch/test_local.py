"""`python launch/local.py`: several workers of one training on this machine.

The training tests start real TensorFlow workers (the launcher as a user runs
it); the tests of how the launcher supervises processes call `run_workers`
with tiny Python programs instead, so that one worker can fail while another
still runs.
"""

import io
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

from launch import local
from tests.conftest import (PEAK_SECONDS, PROCESS_TIMEOUT_SECONDS, REPO,
                            checkpoint_values, run_command, saved_step,
                            smoke_flags)

# Real processes: the launcher and its TensorFlow workers.
pytestmark = pytest.mark.slow

# A small step for the benchmark through the launcher.
TINY_BENCH = ("--config.model.g_width=8", "--config.model.d_width=8",
              "--config.train.batch_size=16")
# A worker that would outlive any test unless the launcher stops it.
_SLEEPER = "import time; time.sleep(600)"
_STEPS = 4
# ADA adjusting p every step by 0.1 (8 * 1 / 80) and a lazy R1 every 2
# steps: p must be one value for the whole cluster, from the global r_t.
ADA_AND_R1 = ("--config.augment.name=ada", "--config.augment.p=0.3",
              "--config.augment.interval=1", "--config.augment.speed_kimg=0.08",
              "--config.penalties.names=r1", "--config.penalties.r1.interval=2")


def tiny_args(mnist_dir: pathlib.Path, workdir: pathlib.Path,
              *overrides: str) -> list[str]:
  """Trainer flags: the smoke config, tiny, on the real MNIST test split.

  No dropout, so that the run does not depend on how the batch is split.
  """
  return smoke_flags(mnist_dir, "--config.model.d_dropout=0.0",
                     f"--config.train.steps={_STEPS}",
                     f"--config.train.checkpoint_every={_STEPS}",
                     f"--workdir={workdir}", *overrides)


def launch(*args: str) -> tuple[int, str, str]:
  return run_command(sys.executable, "launch/local.py", *args)


def last_line(text: str) -> str:
  lines = [line for line in text.splitlines() if line.strip()]
  return lines[-1] if lines else ""


def float_variables(checkpoint: pathlib.Path) -> dict[str, np.ndarray]:
  """The float variables of the latest checkpoint in a directory."""
  return {name: value for name, value in checkpoint_values(checkpoint).items()
          if value.dtype.kind == "f"}


@pytest.mark.parametrize("args,words", [
    (["--workers=0"], ["--workers=0", ">= 1"]),
    (["--workers=two"], ["--workers", "'two'"]),
    (["--config.train.steps=2"],
     ["unrecognized arguments: --config.train.steps=2", "after --"]),
    (["--", "--strategy=mirrored"],
     ["--strategy=mirrored", "not allowed", "--strategy=multi_worker"]),
    (["--", "--strategy", "mirrored"], ["--strategy", "not allowed"]),
    (["--port_base=80"], ["--port_base=80", "[1024, 65534]"]),
    (["--module=trainer.apply"], ["--module", "'trainer.apply'",
                                  "trainer.bench"]),
], ids=["no_workers", "workers_not_a_number", "trainer_flag_before_separator",
        "strategy", "strategy_separate_value", "privileged_port",
        "unknown_module"])
def test_bad_input_is_one_clear_error(args, words):
  returncode, stdout, stderr = launch(*args)

  assert returncode == 2, stderr
  message = last_line(stderr)
  assert "error" in message, stderr
  missing = [w for w in words if w not in message]
  assert not missing, f"{missing} not in the message {message!r}"
  assert "[worker" not in stdout  # Nothing was started.


def eval_args(cache_dir: pathlib.Path) -> list[str]:
  """An evaluation at the last step, with small sample counts."""
  return [f"--config.train.eval_every={_STEPS}",
          "--config.eval.num_samples=200", "--config.eval.num_real=200",
          "--config.eval.kid_subsets=5", "--config.eval.kid_subset_size=100",
          "--config.eval.batch_size=100", f"--config.eval.cache_dir={cache_dir}"]


def fid_at_the_end(workdir: pathlib.Path) -> float:
  [line] = (workdir / "eval" / "metrics.jsonl").read_text().splitlines()
  record = json.loads(line)
  assert record["step"] == _STEPS, record
  return record["fid"]


@pytest.fixture(scope="module")
def two_workers(mnist_dir, tmp_path_factory):
  """(code, stdout, stderr, workdir) of a 2-worker run of the tiny model.

  It evaluates at its last step: every worker computes, the chief writes.
  """
  root = tmp_path_factory.mktemp("two_workers")
  workdir = root / "run"
  return (*launch("--workers=2", "--", *tiny_args(mnist_dir, workdir),
                  *ADA_AND_R1, *eval_args(root / "cache")), workdir)


def test_two_workers_train(two_workers):
  returncode, stdout, stderr, workdir = two_workers

  assert returncode == 0, stdout + stderr
  assert saved_step(workdir / "checkpoints") == _STEPS
  for i in (0, 1):
    assert re.search(rf"^\[worker {i}\] .*step {_STEPS}/{_STEPS} \|", stdout,
                     re.MULTILINE), stdout
  unprefixed = [line for line in stdout.splitlines()
                if not re.match(r"\[worker [01]\] ", line)]
  assert not unprefixed, unprefixed
  # Both workers log the same global r_t and p at the last step, and p moved.
  augment = [re.search(rf"^\[worker {i}\] .*step {_STEPS}/{_STEPS} .*"
                       r"\| (r_t \S+ p (\S+)) \|", stdout, re.MULTILINE)
             for i in (0, 1)]
  assert all(augment), stdout
  assert augment[0].group(1) == augment[1].group(1)
  assert float(augment[0].group(2)) != 0.3


def test_two_workers_match_one_process_with_two_replicas(
    two_workers, mnist_dir, tmp_path):
  returncode, stdout, stderr, workdir = two_workers
  assert returncode == 0, stdout + stderr
  mirrored = tmp_path / "mirrored"

  returncode, _, stderr = run_command(
      sys.executable, "-m", "trainer.main", "--strategy=mirrored",
      "--num_cpu_devices=2", *tiny_args(mnist_dir, mirrored), *ADA_AND_R1,
      *eval_args(tmp_path / "cache"))

  assert returncode == 0, stderr
  assert saved_step(mirrored / "checkpoints") == _STEPS
  expected = float_variables(mirrored / "checkpoints")
  actual = float_variables(workdir / "checkpoints")
  assert sorted(actual) == sorted(expected)
  assert any("generator" in name for name in actual), sorted(actual)
  for name, value in expected.items():
    np.testing.assert_allclose(actual[name], value, rtol=1e-4, atol=1e-5,
                               err_msg=name)
  # The evaluation over two workers agrees with the one-process one.
  assert fid_at_the_end(workdir) == pytest.approx(fid_at_the_end(mirrored),
                                                  rel=1e-3)


def test_two_workers_run_the_benchmark(mnist_dir):
  code, stdout, stderr = launch(
      "--workers=2", "--module=trainer.bench", "--",
      f"--config={REPO / 'configs' / 'dcgan_mnist.py'}",
      f"--config.data.source=idx:{mnist_dir}", "--config.data.split=test",
      *TINY_BENCH, "--steps=10", "--rounds=1",
      f"--peak_seconds={PEAK_SECONDS}")
  assert code == 0, stderr[-3000:]
  records = {}
  for line in stdout.splitlines():
    match = re.match(r"\[worker (\d)\] (\{.*)", line)
    if match:
      records[int(match.group(1))] = json.loads(match.group(2))
  assert sorted(records) == [0, 1], stdout[-3000:]
  for record in records.values():
    assert record["strategy"] == "multi_worker" and record["replicas"] == 2
    assert record["workers"] == 2 and record["examples_per_sec"] > 0
    assert record["peak_fraction"] == pytest.approx(
        record["examples_per_sec"] * record["flops_per_example"]
        / (2 * record["peak_flops_per_sec"]["float32"]))
  # Both workers ran the same benchmark, steps of the one cluster: their
  # records differ only in what each timed on its own clock (its rates and
  # its matmul peak). Not a bound on timings: those depend on the machine.
  timed = {"examples_per_sec", "examples_per_sec_rounds",
           "peak_flops_per_sec", "peak_fraction"}
  first, second = ({k: v for k, v in r.items() if k not in timed}
                   for r in records.values())
  assert first == second, (first, second)
  assert first["steps"] == 10 and first["rounds"] == 1


def test_workers_that_fail_stop_the_launcher(mnist_dir, tmp_path):
  workdir = tmp_path / "run"

  returncode, stdout, stderr = launch(
      "--workers=2", "--",
      *tiny_args(mnist_dir, workdir, "--config.train.steps=0"))

  assert returncode == 1, stdout + stderr
  assert re.fullmatch(r"error: worker [01] failed with exit code 1; .*",
                      last_line(stderr)), stderr
  assert re.search(r"^\[worker [01]\] error: train.steps=0", stdout,
                   re.MULTILINE), stdout
  assert not workdir.exists()


def python(code: str) -> list[str]:
  return [sys.executable, "-c", code]


def test_run_workers_streams_every_line_with_its_worker():
  output = io.StringIO()
  talker = ("import sys; print('out {i}', flush=True); "
            "print('err {i}', file=sys.stderr, flush=True); "
            "sys.stdout.write('no newline {i}')")

  outcome = local.run_workers(
      [python(talker.format(i=i)) for i in range(2)], [dict(os.environ)] * 2,
      output=output)

  assert outcome == local.Outcome([0, 0])
  assert (outcome.exit_code, outcome.message()) == (0, "")
  for i in range(2):
    lines = [line for line in output.getvalue().splitlines()
             if line.startswith(f"[worker {i}] ")]
    assert sorted(lines) == sorted(
        f"[worker {i}] {text} {i}" for text in ("out", "err", "no newline"))


def test_a_failed_worker_stops_the_others():
  output = io.StringIO()
  failing = "import sys; print('giving up'); sys.exit(3)"

  outcome = local.run_workers(
      [python(_SLEEPER), python(failing)], [dict(os.environ)] * 2,
      output=output)

  assert outcome.failed == 1
  assert outcome.returncodes == [-signal.SIGTERM, 3]
  assert outcome.exit_code == 1
  assert outcome.message().startswith(
      "error: worker 1 failed with exit code 3;")
  assert "[worker 1] giving up\n" in output.getvalue()


def test_a_worker_that_ignores_sigterm_is_killed(tmp_path):
  ready = tmp_path / "ready"
  # It ignores SIGTERM before the other worker fails.
  stubborn = ("import pathlib, signal, time; "
              "signal.signal(signal.SIGTERM, signal.SIG_IGN); "
              f"pathlib.Path({str(ready)!r}).touch(); time.sleep(600)")
  # Bounded, so that a stubborn worker that never starts fails the test
  # (it would end by SIGTERM) instead of hanging it.
  failing = ("import os, sys, time\n"
             "for _ in range(1200):\n"
             f"  if os.path.exists({str(ready)!r}): break\n"
             "  time.sleep(0.05)\n"
             "sys.exit(1)")

  outcome = local.run_workers(
      [python(failing), python(stubborn)], [dict(os.environ)] * 2,
      output=io.StringIO(), grace_seconds=1.0)

  assert outcome.failed == 0
  assert outcome.returncodes == [1, -signal.SIGKILL]
  assert outcome.message().endswith(
      "(worker 1 did not exit on SIGTERM and got SIGKILL)")


def test_a_worker_killed_by_a_signal_is_named():
  outcome = local.Outcome([-signal.SIGKILL, -signal.SIGTERM], failed=0)

  assert outcome.exit_code == 1
  assert outcome.message().startswith("error: worker 0 was killed by SIGKILL;")


def _blocked_signals(thread_id: int) -> set[int]:
  """The signals a thread of this process blocks (Linux's /proc)."""
  status = pathlib.Path(f"/proc/self/task/{thread_id}/status").read_text()
  [mask] = [line.split()[1] for line in status.splitlines()
            if line.startswith("SigBlk:")]
  bits = int(mask, 16)
  return {n for n in range(1, 65) if bits >> (n - 1) & 1}


def test_only_the_main_thread_takes_the_stop_signals():
  # The kernel may hand a signal to any thread that does not block it; one
  # taken by a helper thread left the launcher asleep after Ctrl-C.
  group = local._Group()
  group.start(python(_SLEEPER), dict(os.environ), io.StringIO())
  try:
    stops = {int(s) for s in local._STOP_SIGNALS}
    helpers = [thread.native_id for thread in group._threads]
    assert len(helpers) == 2
    for thread_id in helpers:
      assert stops <= _blocked_signals(thread_id), thread_id
    assert not stops & _blocked_signals(threading.get_native_id())
  finally:
    group.stop(grace_seconds=1.0)
  # The worker, started from the main thread, takes SIGTERM as usual.
  assert group.processes[0].returncode == -signal.SIGTERM


def start_launcher(on_sigterm: str, grace_seconds: float) -> subprocess.Popen:
  """`run_workers` in its own process, with 2 workers that print `ready`.

  Each worker runs `on_sigterm` (Python) when SIGTERM reaches it.
  """
  worker = ("import signal, sys, time\n"
            "def on_sigterm(*_):\n"
            f"  {on_sigterm}\n"
            "signal.signal(signal.SIGTERM, on_sigterm)\n"
            "print('ready', flush=True)\n"
            "while True: time.sleep(600)\n")
  launcher = ("import os, sys\n"
              "from launch import local\n"
              f"outcome = local.run_workers([{python(worker)!r}] * 2, "
              f"[dict(os.environ)] * 2, grace_seconds={grace_seconds})\n"
              "print(outcome.message(), file=sys.stderr)\n"
              "sys.exit(outcome.exit_code)\n")
  return subprocess.Popen(python(launcher), cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def read_until(process: subprocess.Popen, suffix: str, seen: list[str]):
  """Reads lines into `seen` until both workers printed one ending `suffix`.

  Stops early if the launcher exits.
  """
  count = 0
  for line in process.stdout:
    seen.append(line)
    count += line.endswith(f"] {suffix}\n")
    if count == 2:
      return


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM],
                         ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_the_launcher_reaches_the_workers(sent):
  # A grace period longer than the test's timeout: the workers must exit on
  # SIGTERM for the launcher to end in time.
  process = start_launcher(
      "print('got SIGTERM', flush=True); sys.exit(0)", grace_seconds=3600)
  seen = []
  try:
    read_until(process, "ready", seen)
    process.send_signal(sent)
    stdout, stderr = process.communicate(timeout=PROCESS_TIMEOUT_SECONDS)
  finally:
    process.kill()
    process.wait()
  stdout = "".join(seen) + stdout

  assert process.returncode == 128 + sent, stdout + stderr
  for i in (0, 1):
    assert f"[worker {i}] got SIGTERM\n" in stdout, stdout
  assert last_line(stderr) == (f"error: the launcher got {sent.name} and "
                               "stopped the workers"), stderr


def test_a_second_signal_kills_the_workers_at_once():
  # Workers that go on after SIGTERM, and a grace period longer than the
  # test's timeout: only the second signal can end them in time.
  process = start_launcher("print('ignoring SIGTERM', flush=True)",
                           grace_seconds=3600)
  seen = []
  try:
    read_until(process, "ready", seen)
    process.send_signal(signal.SIGINT)
    read_until(process, "ignoring SIGTERM", seen)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=PROCESS_TIMEOUT_SECONDS)
  finally:
    process.kill()
    process.wait()

  assert process.returncode == 128 + signal.SIGINT, "".join(seen) + stderr
  assert last_line(stderr) == (
      "error: the launcher got SIGINT and stopped the workers (worker 0, 1 "
      "did not exit on SIGTERM and got SIGKILL)"), stderr
